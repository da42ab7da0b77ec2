package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
)

// The sign-in check (contract, "The sign-in check"): the function signs in with the stored secret as
// SCEPman does, and trusts that over what Key Vault and Graph show.

// signInOf reads secret.signIn of a status.
type signedStatus struct {
	statusResponse
	Secret *struct {
		KeyID  string `json:"keyId"`
		SignIn string `json:"signIn"`
	} `json:"secret"`
}

type signedProvision struct {
	provisionResponse
	Secret *struct {
		ID     string `json:"id"`
		KeyID  string `json:"keyId"`
		SignIn string `json:"signIn"`
	} `json:"secret"`
	AdminConsentURL string `json:"adminConsentUrl"`
}

func findingWith(st statusResponse, code string) (finding, bool) {
	for _, f := range st.Findings {
		if f.Code == code {
			return f, true
		}
	}
	return finding{}, false
}

func TestSignInAcceptedAfterProvision(t *testing.T) {
	t.Parallel()
	a := start(t, setup{})
	var p signedProvision
	if got := a.call(http.MethodPost, "/api/provision", "", &p); got != http.StatusCreated || p.Secret == nil || p.Secret.SignIn != "accepted" {
		t.Fatalf("provision: %d secret %+v, want 201 and signIn accepted", got, p.Secret)
	}
	a.tenant.ResetStats()
	var st signedStatus
	if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || !st.Compliant || st.Secret == nil || st.Secret.SignIn != "accepted" {
		t.Fatalf("status: %d %+v, want compliant and signIn accepted", got, st)
	}
	stats := a.tenant.Stats()
	// One token request per resource of the level; what azidentity reads first is kept across checks.
	if got := stats.Op(emulator.OpLoginToken).Requests; got != 2 {
		t.Errorf("token requests of a status = %d, want 2 (Microsoft Graph and the Intune API)", got)
	}
	if got := stats.Op(emulator.OpLoginOpenIDConfiguration).Requests + stats.Op(emulator.OpLoginInstanceDiscovery).Requests; got != 0 {
		t.Errorf("metadata requests of a second check = %d, want 0 (kept from the first)", got)
	}
	if got := stats.Service(emulator.ServiceGraph).Requests + stats.Service(emulator.ServiceKeyVault).Requests; got != 2 {
		t.Errorf("Graph and Key Vault requests of a status = %d, want 2", got)
	}
}

func TestTamperedSecretIsCaughtAndRepaired(t *testing.T) {
	t.Parallel()
	a, p := provisioned(t, setup{})
	// An hour later, someone pastes a wrong value into the vault, as a new version with the right tags.
	// (Within 10 minutes of its credential's start, a refused secret counts as pending: TamperSecret
	// moves the credential's start an hour back.)
	if keyID, err := a.tenant.TamperSecret(secretName); err != nil || keyID != p.Secret.KeyID {
		t.Fatalf("TamperSecret = %s, %v; want the current credential %s", keyID, err, p.Secret.KeyID)
	}
	var st signedStatus
	if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || st.Compliant {
		t.Fatalf("status with a tampered secret: %d compliant=%v, want not compliant", got, st.Compliant)
	}
	f, ok := findingWith(st.statusResponse, "SECRET_REJECTED")
	if !ok || !strings.Contains(f.Message, "AADSTS7000215") || st.Secret == nil || st.Secret.SignIn != "rejected" {
		t.Fatalf("findings %+v signIn %+v, want SECRET_REJECTED with AADSTS7000215 and signIn rejected", st.Findings, st.Secret)
	}
	var again signedProvision
	if got := a.call(http.MethodPost, "/api/provision", "", &again); got != http.StatusOK || again.Secret == nil ||
		again.Secret.KeyID == p.Secret.KeyID || again.Secret.SignIn != "accepted" {
		t.Fatalf("provision with a rejected secret: %d %+v, want 200, a new secret, accepted", got, again.Secret)
	}
	if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || !st.Compliant {
		t.Errorf("status after the repair: %d %v, want compliant", got, st.codes())
	}
	checkConverged(t, a.tenant)
}

// TestRenewalWaitsForAcceptance: the token service needs tens of seconds to accept a new password; the
// renewal stores it in Key Vault only after the first accepted sign-in, and the old credential stays.
func TestRenewalWaitsForAcceptance(t *testing.T) {
	t.Parallel()
	a, p := provisioned(t, setup{})
	const delay = 12 * time.Second
	a.tenant.SetSignInAcceptanceDelay(delay)
	dueIn(a.tenant, 20*24*time.Hour)
	started := time.Now()
	status, res := a.rotate()
	if status != http.StatusOK || !res.Renewed || res.Secret == nil {
		t.Fatalf("rotate: %d %+v, want a renewal", status, res)
	}
	s := a.tenant.Snapshot()
	versions := s.Secret(secretName).Versions
	if len(versions) != 2 {
		t.Fatalf("Key Vault versions = %d, want 2", len(versions))
	}
	cred := s.Application("scepman").PasswordCredential(res.Secret.KeyID)
	if cred == nil {
		t.Fatal("the new credential is not on the application")
	}
	if stored := versions[1].Created; stored.Sub(cred.StartDateTime) < delay-time.Second {
		t.Errorf("the new version was stored %s after its credential was added, want at least the acceptance delay %s",
			stored.Sub(cred.StartDateTime), delay)
	}
	if refused := a.tenant.Stats().Op(emulator.OpLoginToken).Statuses[http.StatusUnauthorized]; refused == 0 {
		t.Error("no sign-in was refused while the new secret was not accepted: the test proves nothing")
	}
	if s.Application("scepman").PasswordCredential(p.Secret.KeyID) == nil {
		t.Error("the old credential was removed; it must stay for the overlap")
	}
	t.Logf("renewal with a %s acceptance delay took %s", delay, time.Since(started).Round(time.Millisecond))
	var st signedStatus
	if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || !st.Compliant || st.Secret.SignIn != "accepted" {
		t.Errorf("status after the renewal: %d %v %+v, want compliant and accepted", got, st.codes(), st.Secret)
	}
	checkExact(t, a.tenant, 2, 2)
}

func TestProvisionReportsPending(t *testing.T) {
	t.Parallel()
	a := start(t, setup{before: func(tn *emulator.Tenant) { tn.SetSignInAcceptanceDelay(time.Minute) }})
	var p signedProvision
	if got := a.call(http.MethodPost, "/api/provision", "", &p); got != http.StatusCreated || p.Secret == nil || p.Secret.SignIn != "pending" {
		t.Fatalf("provision: %d %+v, want 201 and signIn pending", got, p.Secret)
	}
	var st signedStatus
	if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || !st.Compliant || !slices.Contains(st.codes(), "SECRET_PENDING") {
		t.Errorf("status while pending: %d %v, want compliant with the warning SECRET_PENDING", got, st.codes())
	}
	if status, res := a.rotate(); status != http.StatusOK || res.Renewed {
		t.Errorf("rotate while pending: %d renewed=%v, want no renewal of a pending secret", status, res.Renewed)
	}
	checkExact(t, a.tenant, 1, 1)
}

func TestConsentRevokedShowsInTheToken(t *testing.T) {
	t.Parallel()
	a, p := provisioned(t, setup{})
	a.tenant.Mutate(func(s *emulator.State) {
		graph := s.ServicePrincipalByAppID("00000003-0000-0000-c000-000000000000")
		s.AppRoleAssignments = slices.DeleteFunc(s.AppRoleAssignments, func(x emulator.AppRoleAssignment) bool {
			return strings.EqualFold(x.PrincipalID, p.ServicePrincipalID) && strings.EqualFold(x.ResourceID, graph.ID)
		})
	})
	var st signedStatus
	if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || st.Compliant {
		t.Fatalf("status: %d compliant=%v, want not compliant", got, st.Compliant)
	}
	for _, code := range []string{"CONSENT_MISSING", "ROLE_NOT_IN_TOKEN"} {
		if !slices.Contains(st.codes(), code) {
			t.Errorf("findings %v lack %s", st.codes(), code)
		}
	}
}

func TestDisabledApplicationIsRejected(t *testing.T) {
	t.Parallel()
	a, p := provisioned(t, setup{})
	if err := a.tenant.SetServicePrincipalEnabled(p.AppID, false); err != nil {
		t.Fatal(err)
	}
	var st signedStatus
	if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || st.Compliant {
		t.Fatalf("status: %d compliant=%v, want not compliant", got, st.Compliant)
	}
	if f, ok := findingWith(st.statusResponse, "SECRET_REJECTED"); !ok || !strings.Contains(f.Message, "AADSTS7000112") {
		t.Errorf("findings %+v, want SECRET_REJECTED with AADSTS7000112", st.Findings)
	}
}

// TestUnexpectedConsent: an assignment outside the level (the level was lowered, or granted by hand) is
// an error; provision removes it in grant mode, and only reports it in admin mode.
func TestUnexpectedConsent(t *testing.T) {
	t.Parallel()
	// From level 2, three extra assignments: revoking them one by one must not lose track of the others.
	for _, from := range []struct{ level, extra int }{{1, 2}, {2, 3}} {
		for _, mode := range []string{"grant", "admin"} {
			t.Run(fmt.Sprintf("from level %d, %s", from.level, mode), func(t *testing.T) {
				t.Parallel()
				a := start(t, setup{settings: map[string]string{"APPREG_PERMISSION_LEVEL": strconv.Itoa(from.level)}})
				if got := a.call(http.MethodPost, "/api/provision", "", nil); got != http.StatusCreated {
					t.Fatalf("provision at level %d: %d", from.level, got)
				}
				a.host.Close()
				b := start(t, setup{tenant: a.tenant, settings: map[string]string{"APPREG_PERMISSION_LEVEL": "0", "APPREG_CONSENT": mode}})
				var st signedStatus
				if got := b.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || st.Compliant {
					t.Fatalf("status after lowering the level: %d %v, want not compliant", got, st.codes())
				}
				n := 0
				for _, c := range st.codes() {
					if c == "CONSENT_UNEXPECTED" {
						n++
					}
				}
				if n != from.extra {
					t.Errorf("findings %v, want CONSENT_UNEXPECTED for each of the %d permissions above level 0", st.codes(), from.extra)
				}
				var p signedProvision
				if got := b.call(http.MethodPost, "/api/provision", "", &p); got != http.StatusOK {
					t.Fatalf("provision: %d", got)
				}
				b.call(http.MethodGet, "/api/status", "", &st)
				if mode == "grant" && !st.Compliant {
					t.Errorf("status after provision in grant mode: %v, want compliant (the extra assignments removed)", st.codes())
				}
				if mode == "admin" && !slices.Contains(st.codes(), "CONSENT_UNEXPECTED") {
					t.Errorf("status after provision in admin mode: %v, want CONSENT_UNEXPECTED still reported", st.codes())
				}
			})
		}
	}
}

// TestCrashWhileWaitingForAcceptance: the handler dies while the token service does not accept the new
// credential yet. The current secret is never touched; the orphan rule removes the credential later.
func TestCrashWhileWaitingForAcceptance(t *testing.T) {
	t.Parallel()
	a, p := provisioned(t, setup{})
	a.tenant.SetSignInAcceptanceDelay(10 * time.Minute)
	dueIn(a.tenant, 20*24*time.Hour)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = a.host.Invoke(t.Context(), "rotate") // the handler is killed under it
	}()
	deadline := time.Now().Add(time.Minute)
	for a.tenant.Stats().Op(emulator.OpLoginToken).Statuses[http.StatusUnauthorized] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the renewal never signed in with its new credential")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.host.Kill(); err != nil {
		t.Fatalf("killing the handler: %v", err)
	}
	<-done
	s := a.tenant.Snapshot()
	if cur := s.Secret(secretName).Current(); len(s.Secret(secretName).Versions) != 1 || cur.Tags["keyId"] != p.Secret.KeyID {
		t.Fatalf("after the kill Key Vault holds %d versions, current keyId %s; want the current secret untouched (%s)",
			len(s.Secret(secretName).Versions), cur.Tags["keyId"], p.Secret.KeyID)
	}
	if o := unnamed(a.tenant); len(o) != 1 {
		t.Fatalf("credentials no version names after the kill: %v, want the one being accepted", o)
	}
	checkConverged(t, a.tenant)

	// An hour later the token service has long accepted new secrets, and the next rotation cleans up.
	a.tenant.SetSignInAcceptanceDelay(0)
	emulatortest.Age(a.tenant, time.Hour+time.Minute)
	b := start(t, setup{tenant: a.tenant})
	if status, res := b.rotate(); status != http.StatusOK || !res.Renewed || len(res.Removed) != 1 {
		t.Fatalf("rotate in a new process: %d %+v, want a renewal and the orphan removed", status, res)
	}
	if o := unnamed(a.tenant); len(o) != 0 {
		t.Errorf("credentials no version names: %v", o)
	}
	checkExact(t, a.tenant, 2, 2)
}
