package e2e

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

const (
	graphAppID  = "00000003-0000-0000-c000-000000000000"
	intuneAppID = "c161e42e-d4df-4a3d-9b42-e7a3c31f59d4"
	userReadID  = "e1fe6dd8-ba31-4d61-89e7-88639da4683d"
)

func TestProvisionFreshTenantThenNothingToDo(t *testing.T) {
	t.Parallel()
	a := start(t, setup{})
	var p provisionResponse
	if got := a.call(http.MethodPost, "/api/provision", "", &p); got != http.StatusCreated {
		t.Fatalf("first provision: status %d, want 201 (%+v)", got, p)
	}
	s := a.tenant.Snapshot()
	app := s.Application("scepman")
	if app == nil {
		t.Fatal("no application scepman in the tenant after provision")
	}
	if p.TenantID != a.tenant.TenantID() || p.AppID != app.AppID || p.ObjectID != app.ID || p.DisplayName != "SCEPman" || p.UniqueName != "scepman" {
		t.Errorf("provision ids = %+v, want tenant %s, app %s/%s", p, a.tenant.TenantID(), app.AppID, app.ID)
	}
	if app.SignInAudience != "AzureADMyOrg" {
		t.Errorf("signInAudience = %q, want AzureADMyOrg", app.SignInAudience)
	}
	sp := s.ServicePrincipalByAppID(app.AppID)
	if sp == nil || p.ServicePrincipalID != sp.ID {
		t.Fatalf("service principal = %+v, response says %q", sp, p.ServicePrincipalID)
	}
	if len(p.Permissions) != 2 {
		t.Errorf("permissions = %+v, want the two of level 0", p.Permissions)
	}
	for _, perm := range p.Permissions {
		if !perm.Consented {
			t.Errorf("permission %s not consented", perm.Value)
		}
	}
	if got := len(s.AssignmentsOf(sp.ID)); got != 2 {
		t.Errorf("app role assignments = %d, want 2", got)
	}
	if p.Secret == nil || !strings.HasPrefix(p.Secret.ID, a.tenant.VaultURL()+"secrets/"+secretName+"/") {
		t.Fatalf("secret = %+v, want a versioned id in %s", p.Secret, a.tenant.VaultURL())
	}
	if want := time.Now().Add(180 * 24 * time.Hour); p.Secret.ExpiresOn.Before(want.Add(-time.Hour)) || p.Secret.ExpiresOn.After(want.Add(time.Hour)) {
		t.Errorf("secret expires %s, want about %s (180 days)", p.Secret.ExpiresOn, want)
	}
	cur := s.Secret(secretName).Current()
	if cur.Tags["keyId"] != p.Secret.KeyID || cur.Tags["appId"] != app.AppID || cur.ContentType == "" {
		t.Errorf("Key Vault version tags %v, contentType %q; want keyId %s and appId %s", cur.Tags, cur.ContentType, p.Secret.KeyID, app.AppID)
	}
	checkConverged(t, a.tenant)
	if len(p.Changes) == 0 {
		t.Error("changes is empty after creating everything")
	}

	a.tenant.ResetStats()
	var again provisionResponse
	if got := a.call(http.MethodPost, "/api/provision", "{}", &again); got != http.StatusOK {
		t.Fatalf("second provision: status %d, want 200", got)
	}
	if len(again.Changes) != 0 || again.AppID != p.AppID || again.Secret == nil || again.Secret.KeyID != p.Secret.KeyID {
		t.Errorf("second provision = %+v, want no changes and the same app and secret", again)
	}
	if got := a.writes(); got != 0 {
		t.Errorf("second provision made %d writes, want 0", got)
	}
	var st statusResponse
	if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || !st.Compliant || len(st.Findings) != 0 {
		t.Errorf("status = %d %+v, want 200, compliant, no findings", got, st)
	}
	if st.Secret == nil || st.Secret.KeyID != p.Secret.KeyID || st.Secret.RenewAfter == nil ||
		!st.Secret.RenewAfter.Equal(p.Secret.ExpiresOn.Add(-30*24*time.Hour)) {
		t.Errorf("status secret = %+v, want keyId %s, renewAfter 30 days before %s", st.Secret, p.Secret.KeyID, p.Secret.ExpiresOn)
	}
	if got := a.writes(); got != 0 {
		t.Errorf("status made %d writes, want 0", got)
	}
}

func TestFindingsFromDrift(t *testing.T) {
	t.Parallel()
	for _, tt := range drifts {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := start(t, setup{})
			var p provisionResponse
			if got := a.call(http.MethodPost, "/api/provision", "", &p); got != http.StatusCreated {
				t.Fatalf("provision: %d", got)
			}
			a.tenant.Mutate(func(s *emulator.State) { tt.drift(s, p.AppID) })
			a.tenant.ResetStats()
			var st statusResponse
			if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK {
				t.Fatalf("status: %d", got)
			}
			if !slices.Contains(st.codes(), tt.want) {
				t.Errorf("status findings = %v, want %s among them", st.codes(), tt.want)
			}
			for _, f := range st.Findings {
				if f.Message == "" || (f.Severity != "error" && f.Severity != "warning") {
					t.Errorf("finding %+v: want a message and severity error or warning", f)
				}
			}
			if got := a.writes(); got != 0 {
				t.Errorf("status made %d writes, want 0", got)
			}
			if tt.want == "SECRET_EXPIRING" || tt.want == "CREDENTIAL_STALE" {
				if !st.Compliant {
					t.Errorf("compliant = false with only the warning %s", tt.want)
				}
				return // warnings are rotate's to act on
			}
			if st.Compliant {
				t.Errorf("compliant = true with the error %s", tt.want)
			}
			var fixed provisionResponse
			if got := a.call(http.MethodPost, "/api/provision", "", &fixed); got != http.StatusOK && got != http.StatusCreated {
				t.Fatalf("repairing provision: %d", got)
			}
			if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || !st.Compliant {
				t.Errorf("status after repair = %+v, want compliant", st)
			}
			checkConverged(t, a.tenant)
		})
	}
}

// drifts are the changes an admin (or a script) can make to a provisioned tenant, each with the finding
// it must produce.
var drifts = []struct {
	name  string
	drift func(s *emulator.State, appID string)
	want  string
}{
	{"application deleted", func(s *emulator.State, appID string) {
		s.Applications = slices.DeleteFunc(s.Applications, func(a emulator.Application) bool { return a.AppID == appID })
	}, "APP_MISSING"},
	{"audience changed", func(s *emulator.State, appID string) {
		s.ApplicationByAppID(appID).SignInAudience = "AzureADandPersonalMicrosoftAccount"
	}, "AUDIENCE_WRONG"},
	{"permission removed", func(s *emulator.State, appID string) {
		app := s.ApplicationByAppID(appID)
		app.RequiredResourceAccess = slices.DeleteFunc(app.RequiredResourceAccess, func(r emulator.RequiredResourceAccess) bool { return r.ResourceAppID == intuneAppID })
	}, "PERMISSION_MISSING"},
	{"User.Read back", func(s *emulator.State, appID string) {
		app := s.ApplicationByAppID(appID)
		for i := range app.RequiredResourceAccess {
			if app.RequiredResourceAccess[i].ResourceAppID == graphAppID {
				app.RequiredResourceAccess[i].ResourceAccess = append(app.RequiredResourceAccess[i].ResourceAccess, emulator.ResourceAccess{ID: userReadID, Type: "Scope"})
			}
		}
	}, "PERMISSION_UNEXPECTED"},
	{"service principal deleted", func(s *emulator.State, appID string) {
		sp := s.ServicePrincipalByAppID(appID)
		s.AppRoleAssignments = slices.DeleteFunc(s.AppRoleAssignments, func(a emulator.AppRoleAssignment) bool { return a.PrincipalID == sp.ID })
		s.ServicePrincipals = slices.DeleteFunc(s.ServicePrincipals, func(p emulator.ServicePrincipal) bool { return p.AppID == appID })
	}, "SERVICE_PRINCIPAL_MISSING"},
	{"consent revoked", func(s *emulator.State, appID string) {
		sp := s.ServicePrincipalByAppID(appID)
		s.AppRoleAssignments = slices.DeleteFunc(s.AppRoleAssignments, func(a emulator.AppRoleAssignment) bool {
			return a.PrincipalID == sp.ID && a.AppRoleID == "7ab1d382-f21e-4acd-a863-ba3e13f7da61"
		})
	}, "CONSENT_MISSING"},
	{"secret deleted", func(s *emulator.State, appID string) {
		s.Secrets = nil
	}, "SECRET_MISSING"},
	{"credential removed from the application", func(s *emulator.State, appID string) {
		s.ApplicationByAppID(appID).PasswordCredentials = nil
	}, "SECRET_NOT_ON_APP"},
	{"secret about to expire", func(s *emulator.State, appID string) {
		setExpiry(s, appID, time.Now().Add(10*24*time.Hour))
	}, "SECRET_EXPIRING"},
	{"secret expired", func(s *emulator.State, appID string) {
		setExpiry(s, appID, time.Now().Add(-time.Hour))
	}, "SECRET_EXPIRED"},
	{"stale credential", func(s *emulator.State, appID string) {
		app := s.ApplicationByAppID(appID)
		sec := s.Secret(secretName)
		old := time.Now().Add(-90 * 24 * time.Hour).UTC().Truncate(time.Second)
		app.PasswordCredentials = append(app.PasswordCredentials, emulator.PasswordCredential{KeyID: "0b7c1c7e-0000-4000-8000-000000000001",
			DisplayName: "old", StartDateTime: old, EndDateTime: old.Add(180 * 24 * time.Hour), SecretText: "stale-secret-value-0001"})
		sec.Versions = append([]emulator.SecretVersion{{Version: "00000000000000000000000000000001", Value: "stale-secret-value-0001", Enabled: true,
			Created: old, Updated: old, Expires: old.Add(180 * 24 * time.Hour), Tags: map[string]string{"keyId": "0b7c1c7e-0000-4000-8000-000000000001", "appId": appID}}},
			sec.Versions...)
		sec.Versions[len(sec.Versions)-1].Created = time.Now().Add(-49 * time.Hour).UTC().Truncate(time.Second)
	}, "CREDENTIAL_STALE"},
}

// setExpiry moves the current credential's and version's expiry.
func setExpiry(s *emulator.State, appID string, end time.Time) {
	end = end.UTC().Truncate(time.Second)
	cur := s.Secret(secretName).Current()
	cred := s.ApplicationByAppID(appID).PasswordCredential(cur.Tags["keyId"])
	cred.EndDateTime, cur.Expires = end, end
}

func TestProvisionUnderReplicationDelay(t *testing.T) {
	t.Parallel()
	a := start(t, setup{before: func(tn *emulator.Tenant) { tn.SetReplicationDelay(3 * time.Second) }})
	var p provisionResponse
	if got := a.call(http.MethodPost, "/api/provision", "", &p); got != http.StatusCreated {
		t.Fatalf("provision with 3 s replication delay: status %d, want 201", got)
	}
	for _, perm := range p.Permissions {
		if !perm.Consented {
			t.Errorf("permission %s not consented", perm.Value)
		}
	}
	checkConverged(t, a.tenant)
	time.Sleep(3 * time.Second) // let everything replicate, then nothing must be left to do
	a.tenant.ResetStats()
	if got := a.call(http.MethodPost, "/api/provision", "", &p); got != http.StatusOK || len(p.Changes) != 0 || a.writes() != 0 {
		t.Errorf("second provision: %d, changes %v, %d writes; want 200, none, 0", got, p.Changes, a.writes())
	}
}

func TestProvisionUnderThrottlingAndOutages(t *testing.T) {
	t.Parallel()
	a := start(t, setup{opts: emulator.Options{Seed: 7}, before: func(tn *emulator.Tenant) {
		for _, svc := range []string{emulator.ServiceGraph, emulator.ServiceKeyVault} {
			tn.AddFault(emulator.Fault{Service: svc, Kind: emulator.FaultStatus, Status: http.StatusTooManyRequests, RetryAfter: 1, Probability: 1.0 / 6})
			tn.AddFault(emulator.Fault{Service: svc, Kind: emulator.FaultStatus, Status: http.StatusServiceUnavailable, Probability: 1.0 / 6})
		}
	}})
	var p provisionResponse
	if got := a.call(http.MethodPost, "/api/provision", "", &p); got != http.StatusCreated {
		t.Fatalf("provision with 429s and 503s on a third of the requests: status %d, want 201", got)
	}
	checkConverged(t, a.tenant)
	if o := unnamed(a.tenant); len(o) > 0 {
		t.Errorf("credentials no version names: %v", o)
	}
	if got := a.tenant.Stats().FaultsFired; got == 0 {
		t.Error("no fault fired: the test proves nothing")
	}
	var st statusResponse
	if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || !st.Compliant {
		t.Errorf("status = %d %+v, want compliant", got, st)
	}
}

func TestConcurrentProvisionOnFreshTenant(t *testing.T) {
	t.Parallel()
	for _, delay := range []time.Duration{0, 2 * time.Second} {
		t.Run(fmt.Sprintf("replication delay %s", delay), func(t *testing.T) {
			a := start(t, setup{before: func(tn *emulator.Tenant) { tn.SetReplicationDelay(delay) }})
			const n = 8
			statuses := make([]int, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					statuses[i] = a.call(http.MethodPost, "/api/provision", "", nil)
				}()
			}
			wg.Wait()
			created := 0
			for _, s := range statuses {
				switch s {
				case http.StatusCreated:
					created++
				case http.StatusOK:
				default:
					t.Errorf("a concurrent provision answered %d", s)
				}
			}
			if created != 1 {
				t.Errorf("%d calls answered 201, want exactly 1", created)
			}
			s := a.tenant.Snapshot()
			if len(s.Applications) != 1 {
				t.Errorf("%d applications, want 1", len(s.Applications))
			}
			app := s.Application("scepman")
			sps := 0
			for _, sp := range s.ServicePrincipals {
				if sp.AppID == app.AppID {
					sps++
				}
			}
			if sps != 1 {
				t.Errorf("%d service principals of the application, want 1", sps)
			}
			sp := s.ServicePrincipalByAppID(app.AppID)
			perRole := map[string]int{}
			for _, as := range s.AssignmentsOf(sp.ID) {
				perRole[as.AppRoleID]++
			}
			if len(perRole) != 2 || perRole["7ab1d382-f21e-4acd-a863-ba3e13f7da61"] != 1 || perRole["39d724e8-6a34-4930-9a36-364082c35716"] != 1 {
				t.Errorf("assignments per role = %v, want one per permission", perRole)
			}
			checkConverged(t, a.tenant)
		})
	}
}

func TestKeyVaultDownLeavesNoOrphanedCredential(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		fault      emulator.Fault
		roles      []string
		wantStatus int
		wantText   string
	}{
		{"set secret unavailable", emulator.Fault{Service: emulator.ServiceKeyVault, Operation: emulator.OpSetSecret, Kind: emulator.FaultStatus,
			Status: http.StatusServiceUnavailable, Times: emulator.Always}, nil, http.StatusServiceUnavailable, "Key Vault"},
		{"set secret refused", emulator.Fault{Service: emulator.ServiceKeyVault, Operation: emulator.OpSetSecret, Kind: emulator.FaultStatus,
			Status: http.StatusForbidden, Code: "Forbidden", Times: emulator.Always}, nil, http.StatusBadGateway, "Key Vault Secrets Officer"},
		{"no role on the vault", emulator.Fault{}, []string{}, http.StatusBadGateway, "Key Vault Secrets Officer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := start(t, setup{opts: emulator.Options{VaultRoles: tt.roles}, before: func(tn *emulator.Tenant) {
				if tt.fault.Service != "" {
					tn.AddFault(tt.fault)
				}
			}})
			var e apiError
			if got := a.call(http.MethodPost, "/api/provision", "", &e); got != tt.wantStatus {
				t.Fatalf("provision with Key Vault down: %d %+v, want %d", got, e, tt.wantStatus)
			}
			if !strings.Contains(e.Error.Message, tt.wantText) {
				t.Errorf("error message %q, want it to name %q", e.Error.Message, tt.wantText)
			}
			if app := a.tenant.Snapshot().Application("scepman"); app != nil && len(app.PasswordCredentials) > 0 {
				t.Errorf("the application holds %d credentials that Key Vault does not: want none", len(app.PasswordCredentials))
			}
		})
	}
}

func TestGraphPermissionsOfTheIdentity(t *testing.T) {
	t.Parallel()
	t.Run("exactly the three least-privilege permissions suffice", func(t *testing.T) {
		a := start(t, setup{opts: emulator.Options{GraphRoles: []string{"Application.ReadWrite.OwnedBy", "Application.Read.All", "AppRoleAssignment.ReadWrite.All"}}})
		if got := a.call(http.MethodPost, "/api/provision", "", nil); got != http.StatusCreated {
			t.Fatalf("provision: %d, want 201", got)
		}
		var st statusResponse
		if a.call(http.MethodGet, "/api/status", "", &st); !st.Compliant {
			t.Errorf("status = %+v, want compliant", st)
		}
	})
	for _, missing := range []string{"AppRoleAssignment.ReadWrite.All", "Application.ReadWrite.OwnedBy", "Application.Read.All"} {
		t.Run("without "+missing, func(t *testing.T) {
			roles := slices.DeleteFunc([]string{"Application.ReadWrite.OwnedBy", "Application.Read.All", "AppRoleAssignment.ReadWrite.All"},
				func(r string) bool { return r == missing })
			a := start(t, setup{opts: emulator.Options{GraphRoles: roles}})
			var e apiError
			if got := a.call(http.MethodPost, "/api/provision", "", &e); got != http.StatusBadGateway {
				t.Fatalf("provision without %s: %d %+v, want 502", missing, got, e)
			}
			if !strings.Contains(e.Error.Message, missing) {
				t.Errorf("error %q does not name the missing permission %s", e.Error.Message, missing)
			}
		})
	}
}

func TestPermissionLevels(t *testing.T) {
	t.Parallel()
	for level, want := range []int{2, 4, 5} {
		t.Run(fmt.Sprintf("level %d", level), func(t *testing.T) {
			a := start(t, setup{settings: map[string]string{"APPREG_PERMISSION_LEVEL": fmt.Sprint(level)}})
			var p provisionResponse
			if got := a.call(http.MethodPost, "/api/provision", "", &p); got != http.StatusCreated {
				t.Fatalf("provision: %d", got)
			}
			if len(p.Permissions) != want {
				t.Errorf("permissions = %d, want %d", len(p.Permissions), want)
			}
			s := a.tenant.Snapshot()
			app := s.Application("scepman")
			n := 0
			for _, r := range app.RequiredResourceAccess {
				for _, ra := range r.ResourceAccess {
					if ra.Type != "Role" {
						t.Errorf("requiredResourceAccess holds %s of type %s, want Role only", ra.ID, ra.Type)
					}
					n++
				}
			}
			if n != want || len(s.AssignmentsOf(p.ServicePrincipalID)) != want {
				t.Errorf("requiredResourceAccess %d, assignments %d; want %d each", n, len(s.AssignmentsOf(p.ServicePrincipalID)), want)
			}
		})
	}
}

func TestTenantWithoutIntune(t *testing.T) {
	t.Parallel()
	a := start(t, setup{opts: emulator.Options{NoIntune: true}})
	var p provisionResponse
	if got := a.call(http.MethodPost, "/api/provision", "", &p); got != http.StatusCreated {
		t.Fatalf("provision: %d", got)
	}
	if len(p.Warnings) != 1 || p.Warnings[0].Code != "RESOURCE_UNAVAILABLE" {
		t.Errorf("warnings = %+v, want RESOURCE_UNAVAILABLE", p.Warnings)
	}
	for _, perm := range p.Permissions {
		if want := perm.ResourceAppID == graphAppID; perm.Consented != want {
			t.Errorf("%s consented = %v, want %v", perm.Value, perm.Consented, want)
		}
	}
	var st statusResponse
	a.call(http.MethodGet, "/api/status", "", &st)
	if !st.Compliant || !slices.Equal(st.codes(), []string{"RESOURCE_UNAVAILABLE"}) {
		t.Errorf("status = %+v, want compliant with the RESOURCE_UNAVAILABLE warning only", st)
	}
}

func TestUniqueNameHeldByDeletedApplication(t *testing.T) {
	t.Parallel()
	a := start(t, setup{})
	if got := a.call(http.MethodPost, "/api/provision", "", nil); got != http.StatusCreated {
		t.Fatalf("provision: %d", got)
	}
	a.tenant.SoftDeleteApplication("scepman")
	var e apiError
	if got := a.call(http.MethodPost, "/api/provision", "", &e); got != http.StatusBadGateway {
		t.Fatalf("provision with the name held by a deleted application: %d %+v, want 502", got, e)
	}
	for _, want := range []string{"deleted application", "restore", "APPREG_UNIQUE_NAME"} {
		if !strings.Contains(e.Error.Message, want) {
			t.Errorf("error %q does not say %q", e.Error.Message, want)
		}
	}
}

func TestLifetimePolicyCapsTheSecret(t *testing.T) {
	t.Parallel()
	for _, policyReadable := range []bool{true, false} {
		t.Run(fmt.Sprintf("policy readable %v", policyReadable), func(t *testing.T) {
			roles := []string{"Application.ReadWrite.OwnedBy", "Application.Read.All", "AppRoleAssignment.ReadWrite.All"}
			if policyReadable {
				roles = append(roles, "Policy.Read.All")
			}
			a := start(t, setup{opts: emulator.Options{GraphRoles: roles}, before: func(tn *emulator.Tenant) { tn.SetMaxPasswordLifetime(90 * 24 * time.Hour) }})
			var p provisionResponse
			if got := a.call(http.MethodPost, "/api/provision", "", &p); got != http.StatusCreated {
				t.Fatalf("provision: %d", got)
			}
			if max := time.Now().Add(90 * 24 * time.Hour); p.Secret == nil || p.Secret.ExpiresOn.After(max) || p.Secret.ExpiresOn.Before(max.Add(-24*time.Hour)) {
				t.Errorf("secret = %+v, want it to expire within a day below the policy's 90 days", p.Secret)
			}
			checkConverged(t, a.tenant)
		})
	}
}

func TestInvalidSettingsWriteNothing(t *testing.T) {
	t.Parallel()
	a := start(t, setup{settings: map[string]string{"APPREG_PERMISSION_LEVEL": "7", "APPREG_SECRET_OVERLAP_HOURS": "soon"}})
	for _, r := range []struct{ method, path string }{{http.MethodPost, "/api/provision"}, {http.MethodGet, "/api/status"}} {
		var e apiError
		if got := a.call(r.method, r.path, "", &e); got != http.StatusInternalServerError || e.Error.Code != "InvalidConfiguration" {
			t.Errorf("%s %s = %d %+v, want 500 InvalidConfiguration", r.method, r.path, got, e)
		}
		for _, want := range []string{"APPREG_PERMISSION_LEVEL", "0, 1 or 2", "APPREG_SECRET_OVERLAP_HOURS"} {
			if !strings.Contains(e.Error.Message, want) {
				t.Errorf("%s: message %q does not say %q", r.path, e.Error.Message, want)
			}
		}
	}
	for _, fn := range []string{"compliance", "rotate"} {
		if got, _ := a.invoke(fn); got != http.StatusInternalServerError {
			t.Errorf("%s with invalid settings: %d, want 500", fn, got)
		}
	}
	st := a.tenant.Stats()
	if n := st.Service(emulator.ServiceGraph).Requests + st.Service(emulator.ServiceKeyVault).Requests; n != 0 {
		t.Errorf("%d requests reached Graph and Key Vault with invalid settings, want 0", n)
	}
	if !strings.Contains(string(a.logs.Bytes()), "APPREG_PERMISSION_LEVEL") {
		t.Error("the invalid setting is not named in the log at start")
	}
}

func TestHandlerListensOnLoopbackOnly(t *testing.T) {
	t.Parallel()
	a := start(t, setup{})
	_, port, err := net.SplitHostPort(strings.TrimPrefix(a.host.HandlerURL(), "http://"))
	if err != nil {
		t.Fatalf("handler URL %q: %v", a.host.HandlerURL(), err)
	}
	resp, err := http.Get(a.host.HandlerURL() + "/")
	if err != nil {
		t.Fatalf("GET / on loopback: %v", err)
	}
	resp.Body.Close()
	addrs, _ := net.InterfaceAddrs()
	tried := 0
	for _, ad := range addrs {
		ipn, ok := ad.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() {
			continue
		}
		tried++
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(ipn.IP.String(), port), time.Second); err == nil {
			c.Close()
			t.Errorf("the handler accepted a connection on %s, want loopback only", ipn.IP)
		}
	}
	t.Logf("non-loopback addresses tried: %d", tried)
}
