package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
)

// The tests of this file drive the built handler through what real Azure does and a default emulated
// tenant does not (reference section 8), each turned on in the emulator, and check the end state exactly.

// checkExact checks the end state exactly: the converged invariants at level 0 (one application with the
// uniqueName, one service principal, one assignment per permission and nothing else, the current version
// naming a credential the application holds), creds credentials and versions versions of the secret, and
// every credential named by a version.
func checkExact(t *testing.T, tenant *emulator.Tenant, creds, versions int) {
	t.Helper()
	emulatortest.Verify(t, "end state", tenant, emulatortest.Want{Credentials: creds, Versions: versions, AllNamed: true}, emulatortest.Converged)
}

// rotateResult is the ReturnValue of the rotate timer.
type rotateResult struct {
	Renewed bool     `json:"renewed"`
	Reason  string   `json:"reason"`
	Removed []string `json:"removedKeyIds"`
	Changes []string `json:"changes"`
	Secret  *struct {
		ID    string `json:"id"`
		KeyID string `json:"keyId"`
	} `json:"secret"`
	Refresh []struct {
		SiteID string `json:"siteId"`
		Status int    `json:"status"`
		Error  string `json:"error"`
	} `json:"refresh"`
}

func (a *app) rotate() (int, rotateResult) {
	a.t.Helper()
	status, r := a.invoke("rotate")
	var res rotateResult
	if status == http.StatusOK {
		if err := json.Unmarshal(r.ReturnValue, &res); err != nil {
			a.t.Fatalf("rotate: ReturnValue %s: %v", r.ReturnValue, err)
		}
	}
	return status, res
}

func TestFreshProvisionUnderAzureReplication(t *testing.T) {
	t.Parallel()
	// met is an answer the tenant must have given to a write: the test proves nothing unless the
	// handler met the answer it is about.
	type met struct {
		op     string
		status int
	}
	// behind makes the write of op meet a replica that does not have the fresh object yet (as when the
	// engine's read-back was served by another replica): right before the first such write, the object
	// becomes invisible for a second.
	behind := func(op string, hide func(s *emulator.State) *time.Time) emulator.Fault {
		return emulator.Fault{Service: emulator.ServiceGraph, Operation: op, Kind: emulator.FaultHook, Hook: func(tn *emulator.Tenant) {
			tn.Mutate(func(s *emulator.State) { *hide(s) = time.Now().Add(time.Second) })
		}}
	}
	app := func(s *emulator.State) *time.Time { return &s.Application("scepman").VisibleAt }
	principal := func(s *emulator.State) *time.Time {
		return &s.ServicePrincipalByAppID(s.Application("scepman").AppID).VisibleAt
	}
	tests := []struct {
		name    string
		delay   time.Duration
		realism emulator.GraphRealism
		faults  []emulator.Fault
		met     []met
	}{
		{name: "403 backing application not in the local tenant", delay: time.Second,
			realism: emulator.GraphRealism{SPCreateForbidden: true},
			faults:  []emulator.Fault{behind(emulator.OpCreateServicePrincipal, app)},
			met:     []met{{emulator.OpCreateServicePrincipal, http.StatusForbidden}}},
		{name: "400 not a valid reference update and plain 404 on assignments", delay: time.Second,
			realism: emulator.GraphRealism{AssignmentReferenceErrors: true},
			faults:  []emulator.Fault{behind(emulator.OpAssignAppRole, principal)},
			met:     []met{{emulator.OpAssignAppRole, http.StatusBadRequest}, {emulator.OpAssignAppRole, http.StatusNotFound}}},
		{name: "lagging replicas", realism: emulator.GraphRealism{LagWindow: 3 * time.Second}},
		{name: "all of them", delay: 2 * time.Second, realism: emulator.GraphRealism{
			SPCreateForbidden: true, AssignmentReferenceErrors: true, LagWindow: 3 * time.Second, RemovePasswordUnknown400: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := start(t, setup{opts: emulator.Options{Seed: 11}, before: func(tn *emulator.Tenant) {
				tn.SetReplicationDelay(tt.delay)
				tn.SetGraphRealism(tt.realism)
				for _, f := range tt.faults {
					tn.AddFault(f)
				}
			}})
			var p provisionResponse
			if got := a.call(http.MethodPost, "/api/provision", "", &p); got != http.StatusCreated {
				t.Fatalf("provision: %d, want 201 in one call", got)
			}
			for _, perm := range p.Permissions {
				if !perm.Consented {
					t.Errorf("permission %s not consented in the answer", perm.Value)
				}
			}
			checkExact(t, a.tenant, 1, 1)
			for _, m := range tt.met {
				if n := a.tenant.Stats().Op(m.op).Statuses[m.status]; n == 0 {
					t.Errorf("%s never answered %d: the test proves nothing (%+v)", m.op, m.status, a.tenant.Stats().Op(m.op))
				}
			}
		})
	}
}

// TestConcurrentProvisionsRacingOnUniqueName: several instances of the function app (one process
// serialises its own provisions) create the application at once; the losers are told that the
// uniqueName is taken although the winner is live.
func TestConcurrentProvisionsRacingOnUniqueName(t *testing.T) {
	t.Parallel()
	tenant := newTenant(t, emulator.Options{})
	tenant.SetGraphRealism(emulator.GraphRealism{UniqueNameRace: true, LagWindow: 2 * time.Second})
	procs := make([]*process, 3)
	for i := range procs {
		procs[i] = startOn(t, tenant, nil)
	}
	statuses := make([]int, 2*len(procs))
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body, err := procs[i%len(procs)].provision()
			if err != nil || (status != http.StatusOK && status != http.StatusCreated) {
				t.Errorf("provision %d: %d %s %v, want 200 or 201", i, status, body, err)
			}
			statuses[i] = status
		}()
	}
	wg.Wait()
	if created := slices.Index(statuses, http.StatusCreated); created < 0 || slices.Contains(statuses[created+1:], http.StatusCreated) {
		t.Errorf("statuses %v, want exactly one 201", statuses)
	}
	if st := tenant.Stats().Op(emulator.OpUpsertApplication).Statuses[http.StatusBadRequest]; st == 0 {
		t.Error("no create lost the race with 400: the test proves nothing")
	}
	s := tenant.Snapshot()
	checkExact(t, tenant, len(s.Application("scepman").PasswordCredentials), len(s.Secret(secretName).Versions))
}

// TestOwnWritesAreNotDrift: right after a provision or a renewal, lagging replicas may hide what the
// function just wrote; a remediating compliance run must not take it for drift.
func TestOwnWritesAreNotDrift(t *testing.T) {
	t.Parallel()
	a := start(t, setup{opts: emulator.Options{Seed: 3}, settings: map[string]string{"APPREG_REMEDIATE": "true"},
		before: func(tn *emulator.Tenant) {
			tn.SetGraphRealism(emulator.GraphRealism{LagWindow: 4 * time.Second, LagProbability: 0.7})
		}})
	if got := a.call(http.MethodPost, "/api/provision", "", nil); got != http.StatusCreated {
		t.Fatalf("provision: %d", got)
	}
	if status, r := a.invoke("compliance"); status != http.StatusOK {
		t.Errorf("compliance right after provision: %d %s, want 200", status, r.ReturnValue)
	}
	checkExact(t, a.tenant, 1, 1)

	time.Sleep(4 * time.Second)
	dueIn(a.tenant, 20*24*time.Hour)
	if status, res := a.rotate(); status != http.StatusOK || !res.Renewed {
		t.Fatalf("rotate inside the renewal window: %d renewed=%v", status, res.Renewed)
	}
	if status, r := a.invoke("compliance"); status != http.StatusOK {
		t.Errorf("compliance right after a renewal: %d %s, want 200", status, r.ReturnValue)
	}
	if status, res := a.rotate(); status != http.StatusOK || res.Renewed {
		t.Errorf("rotate right after a renewal: %d renewed=%v (%s), want 200 and no renewal", status, res.Renewed, res.Reason)
	}
	checkExact(t, a.tenant, 2, 2)
	if got := a.tenant.Stats().FaultsFired; got != 0 {
		t.Errorf("%d faults fired; none were added", got)
	}
}

// TestRemovalOfACredentialAlreadyGone: a lagging replica still shows a credential removed a moment ago;
// removing it again answers 400 (undocumented), which is success once the application no longer lists it.
func TestRemovalOfACredentialAlreadyGone(t *testing.T) {
	t.Parallel()
	a, p := provisioned(t, setup{opts: emulator.Options{Seed: 9}})
	dueIn(a.tenant, 20*24*time.Hour)
	if status, res := a.rotate(); status != http.StatusOK || !res.Renewed {
		t.Fatalf("rotate: %d renewed=%v", status, res.Renewed)
	}
	// The overlap has passed: the old credential is removable.
	a.tenant.Mutate(func(s *emulator.State) {
		for i := range s.Secret(secretName).Versions {
			s.Secret(secretName).Versions[i].Created = s.Secret(secretName).Versions[i].Created.Add(-72 * time.Hour)
		}
	})
	a.tenant.SetGraphRealism(emulator.GraphRealism{LagWindow: 3 * time.Second, LagProbability: 1, RemovePasswordUnknown400: true})
	var wg sync.WaitGroup
	results := make([]int, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = a.rotate()
		}()
	}
	wg.Wait()
	for i, s := range results {
		if s != http.StatusOK {
			t.Errorf("rotate %d: %d, want 200", i, s)
		}
	}
	if status, _ := a.rotate(); status != http.StatusOK {
		t.Errorf("rotate while a lagging replica still shows the removed credential: %d, want 200", status)
	}
	if a.tenant.Snapshot().Application("scepman").PasswordCredential(p.Secret.KeyID) != nil {
		t.Error("the replaced credential is still on the application")
	}
	checkExact(t, a.tenant, 1, 2)
}

func TestSoftDeletedSecret(t *testing.T) {
	t.Parallel()
	a, p := provisioned(t, setup{})
	if err := a.tenant.DeleteSecret(secretName); err != nil {
		t.Fatal(err)
	}
	a.tenant.SetRecoveryDelay(3 * time.Second)

	a.tenant.ResetStats()
	var st statusResponse
	if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || st.Compliant || !slices.Contains(st.codes(), "SECRET_DELETED") || slices.Contains(st.codes(), "SECRET_MISSING") {
		t.Fatalf("status of a soft-deleted secret: %d %v, want SECRET_DELETED instead of SECRET_MISSING", got, st.codes())
	}
	if w := a.writes(); w != 0 {
		t.Errorf("status wrote %d times", w)
	}

	var again provisionResponse
	if got := a.call(http.MethodPost, "/api/provision", "", &again); got != http.StatusOK {
		t.Fatalf("provision of a soft-deleted secret: %d, want 200", got)
	}
	if again.Secret == nil || again.Secret.KeyID != p.Secret.KeyID || again.Secret.ID != p.Secret.ID {
		t.Errorf("provision answered secret %+v, want the recovered one (%s)", again.Secret, p.Secret.ID)
	}
	if !slices.ContainsFunc(again.Changes, func(c string) bool { return strings.Contains(c, "recovered") }) {
		t.Errorf("changes %v do not say that the secret was recovered", again.Changes)
	}
	if st := a.tenant.Stats().Op(emulator.OpSetSecret).Statuses[http.StatusConflict]; st != 0 {
		t.Logf("%d writes met 409 while the recovery ran", st)
	}
	checkExact(t, a.tenant, 1, 1)
	if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || !st.Compliant {
		t.Errorf("status after the recovery: %d %v, want compliant", got, st.codes())
	}
}

// TestSecretDeletedUnderTheWrite: the secret is deleted between the observation and the write of a new
// version (409 ObjectIsDeletedButRecoverable): the write recovers it, waits out ObjectIsBeingRecovered,
// stores the new version, and leaves no orphaned credential.
func TestSecretDeletedUnderTheWrite(t *testing.T) {
	t.Parallel()
	a, _ := provisioned(t, setup{})
	a.tenant.SetRecoveryDelay(2 * time.Second)
	dueIn(a.tenant, 20*24*time.Hour)
	// An admin deletes the secret the moment the new version is on its way to Key Vault.
	a.tenant.AddFault(emulator.Fault{Service: emulator.ServiceKeyVault, Operation: emulator.OpSetSecret, Kind: emulator.FaultHook,
		Hook: func(tn *emulator.Tenant) {
			if err := tn.DeleteSecret(secretName); err != nil {
				t.Errorf("DeleteSecret: %v", err)
			}
		}})
	status, res := a.rotate()
	if status != http.StatusOK || !res.Renewed {
		t.Fatalf("rotate with the secret deleted under it: %d %+v, want 200 and a renewal", status, res)
	}
	checkExact(t, a.tenant, 2, 2)
}

func TestDisabledSecret(t *testing.T) {
	t.Parallel()
	for _, via := range []string{"provision", "rotate"} {
		t.Run(via, func(t *testing.T) {
			t.Parallel()
			a, p := provisioned(t, setup{})
			if err := a.tenant.DisableCurrentVersion(secretName); err != nil {
				t.Fatal(err)
			}
			var st statusResponse
			if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || st.Compliant || !slices.Contains(st.codes(), "SECRET_DISABLED") {
				t.Fatalf("status with a disabled current version: %d %v, want SECRET_DISABLED", got, st.codes())
			}
			if via == "provision" {
				var again provisionResponse
				if got := a.call(http.MethodPost, "/api/provision", "", &again); got != http.StatusOK || again.Secret == nil || again.Secret.KeyID == p.Secret.KeyID {
					t.Fatalf("provision with a disabled secret: %d %+v, want 200 and a new secret", got, again.Secret)
				}
			} else if status, res := a.rotate(); status != http.StatusOK || !res.Renewed {
				t.Fatalf("rotate with a disabled secret: %d %+v, want 200 and a renewal", status, res)
			}
			// The credential of the disabled version follows the overlap rule like any replaced one.
			if a.tenant.Snapshot().Application("scepman").PasswordCredential(p.Secret.KeyID) == nil {
				t.Error("the disabled version's credential was removed at once; it must stay for the overlap")
			}
			checkExact(t, a.tenant, 2, 2)
			if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || !st.Compliant {
				t.Errorf("status after the new secret: %d %v, want compliant", got, st.codes())
			}
		})
	}
}

// TestForbiddenNamesItsCause: every 403 says what Azure said it was, never a guess.
func TestForbiddenNamesItsCause(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		act      func(a *app) (int, string)
		change   func(tn *emulator.Tenant)
		status   int
		code     string
		contains []string
	}{
		{name: "an application the identity does not own",
			change: func(tn *emulator.Tenant) {
				tn.SetOwners("scepman", emulator.NewGUID())
				tn.Mutate(func(s *emulator.State) { s.Application("scepman").DisplayName = "renamed by hand" })
			},
			act: func(a *app) (int, string) {
				var e apiError
				return a.call(http.MethodPost, "/api/provision", "", &e), e.Error.Code + " " + e.Error.Message
			},
			status: http.StatusBadGateway, code: "UpstreamForbidden", contains: []string{"does not own", "user-assigned identity"}},
		{name: "a vault firewall",
			change: func(tn *emulator.Tenant) { tn.SetVaultFirewall(true) },
			act: func(a *app) (int, string) {
				var e apiError
				return a.call(http.MethodGet, "/api/status", "", &e), e.Error.Code + " " + e.Error.Message
			},
			status: http.StatusBadGateway, code: "UpstreamForbidden", contains: []string{"ForbiddenByFirewall", "firewall"}},
		{name: "a missing Key Vault role",
			change: func(tn *emulator.Tenant) { tn.SetVaultRoles(emulator.VaultRoleReader) },
			act: func(a *app) (int, string) {
				var e apiError
				return a.call(http.MethodGet, "/api/status", "", &e), e.Error.Code + " " + e.Error.Message
			},
			status: http.StatusBadGateway, code: "UpstreamForbidden", contains: []string{"Key Vault Secrets Officer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, _ := provisioned(t, setup{})
			tt.change(a.tenant)
			a.tenant.ResetStats()
			status, msg := tt.act(a)
			if status != tt.status || !strings.HasPrefix(msg, tt.code+" ") {
				t.Errorf("answer %d %q, want %d %s", status, msg, tt.status, tt.code)
			}
			for _, c := range tt.contains {
				if !strings.Contains(msg, c) {
					t.Errorf("message %q does not say %q", msg, c)
				}
			}
			emulatortest.Verify(t, "after the refusal", a.tenant, emulatortest.Want{AllNamed: true}, emulatortest.Converged)
		})
	}
}

func TestPasswordsForbiddenByPolicy(t *testing.T) {
	t.Parallel()
	a := start(t, setup{before: func(tn *emulator.Tenant) {
		tn.SetGraphRealism(emulator.GraphRealism{PasswordsForbidden: true})
	}})
	var e apiError
	if got := a.call(http.MethodPost, "/api/provision", "", &e); got != http.StatusBadGateway || e.Error.Code != "PasswordCredentialsForbidden" {
		t.Fatalf("provision where passwords are forbidden: %d %+v, want 502 PasswordCredentialsForbidden", got, e.Error)
	}
	for _, want := range []string{"CredentialTypeNotAllowedAsPerAppPolicy", "app management policy"} {
		if !strings.Contains(e.Error.Message, want) {
			t.Errorf("message %q does not say %q", e.Error.Message, want)
		}
	}
	s := a.tenant.Snapshot()
	if app := s.Application("scepman"); app == nil || len(app.PasswordCredentials) != 0 {
		t.Errorf("application %+v, want it created, without credentials", app)
	}
	if sec := s.Secret(secretName); sec != nil {
		t.Errorf("Key Vault holds %d versions, want none", len(sec.Versions))
	}
}

// TestAssignmentsFromALaggingReplica: a process that knows nothing yet reads the service principal from
// one replica and lists its assignments from another that does not know it (404, as a lagging replica
// answers): that is no assignment seen yet, not a failure, and the read again finds them all.
func TestAssignmentsFromALaggingReplica(t *testing.T) {
	t.Parallel()
	tenant := newTenant(t, emulator.Options{})
	if status, body, err := startOn(t, tenant, nil).provision(); err != nil || status != http.StatusCreated {
		t.Fatalf("provision: %d %s %v", status, body, err)
	}
	s := tenant.Snapshot()
	sp := s.ServicePrincipalByAppID(s.Application("scepman").AppID).ID
	tenant.AddFault(emulator.Fault{Service: emulator.ServiceGraph, Operation: emulator.OpListAppRoleAssignments, Status: http.StatusNotFound,
		Code: "Request_ResourceNotFound", Message: "Resource '" + sp + "' does not exist or one of its queried reference-property objects are not present."})
	tenant.ResetStats()
	fresh := startOn(t, tenant, nil)
	status, body, err := send(http.MethodGet, fresh.host.URL()+"/api/status", "", nil, false)
	var st statusResponse
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &st) != nil || !st.Compliant {
		t.Errorf("status of a fresh process whose assignment list met a lagging replica: %d %s %v, want 200 and compliant", status, body, err)
	}
	if got := tenant.Stats().FaultsFired; got != 1 {
		t.Errorf("%d faults fired, want 1: the test proves nothing", got)
	}
	checkExact(t, tenant, 1, 1)
}

// TestRotateRecoversASoftDeletedSecret: the rotate timer meets a soft-deleted secret. It recovers it with
// all its versions (waiting out ObjectIsBeingRecovered), then renews it, as the contract says of a deleted
// secret; the recovered version's credential stays for the overlap.
func TestRotateRecoversASoftDeletedSecret(t *testing.T) {
	t.Parallel()
	a, p := provisioned(t, setup{})
	if err := a.tenant.DeleteSecret(secretName); err != nil {
		t.Fatal(err)
	}
	a.tenant.SetRecoveryDelay(2 * time.Second)
	status, res := a.rotate()
	if status != http.StatusOK || !res.Renewed || res.Reason != "secret deleted" {
		t.Fatalf("rotate of a soft-deleted secret: %d renewed=%v (%s), want 200 and a renewal because it was deleted", status, res.Renewed, res.Reason)
	}
	if !slices.ContainsFunc(res.Changes, func(c string) bool { return strings.Contains(c, "recovered") }) {
		t.Errorf("changes %v do not say that the secret was recovered", res.Changes)
	}
	if a.tenant.Snapshot().Application("scepman").PasswordCredential(p.Secret.KeyID) == nil {
		t.Error("the recovered version's credential was removed at once; it must stay for the overlap")
	}
	checkExact(t, a.tenant, 2, 2)
}
