package graph_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/azure"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
	"github.com/scepman-appreg/appreg/handler/internal/graph"
)

// Permissions of the contract's table used below.
const (
	directoryReadAll = "7ab1d382-f21e-4acd-a863-ba3e13f7da61"
	managedDevices   = "2f51be20-0bb4-4fed-bf7b-db946066c75e"
	deviceConfig     = "dc377aa6-52d8-4e23-b271-2a7ae04cedf3"
	riskyUsers       = "dc5007c0-2d7d-4c42-879c-2dab87571379"
	scepChallenge    = "39d724e8-6a34-4930-9a36-364082c35716"
)

func level0Spec(displayName string) appreg.AppSpec {
	return appreg.AppSpec{
		DisplayName:    displayName,
		SignInAudience: appreg.AudienceMyOrg,
		RequiredResourceAccess: []appreg.ResourceAccess{
			{ResourceAppID: appreg.GraphAppID, Access: []appreg.Access{{ID: directoryReadAll, Type: appreg.AccessRole}}},
			{ResourceAppID: appreg.IntuneAPIAppID, Access: []appreg.Access{{ID: scepChallenge, Type: appreg.AccessRole}}},
		},
	}
}

// newDirectory builds the adapter as production does, on hc (the tenant's in-process client when nil).
func newDirectory(t *testing.T, ten *emulator.Tenant, hc *http.Client) *graph.Directory {
	t.Helper()
	if hc == nil {
		hc = ten.HTTPClient()
	}
	cred, err := azure.NewCredential(os.Getenv, hc)
	if err != nil {
		t.Fatalf("NewCredential: %v", err)
	}
	d, err := graph.New(cred, "", hc)
	if err != nil {
		t.Fatalf("graph.New: %v", err)
	}
	return d
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// mustUpsert creates the application and returns it as the tenant holds it.
func mustUpsert(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory, uniqueName string) emulator.Application {
	t.Helper()
	if _, err := d.UpsertApplication(ctx, uniqueName, level0Spec("SCEPman")); err != nil {
		t.Fatalf("UpsertApplication: %v", err)
	}
	snap := ten.Snapshot()
	app := snap.Application(uniqueName)
	if app == nil {
		t.Fatalf("the tenant holds no application %q after UpsertApplication", uniqueName)
	}
	return *app
}

// requests is how many authenticated requests of an operation the tenant saw.
func requests(ten *emulator.Tenant, op string) int {
	st := ten.Stats().Op(op)
	return st.Requests - st.Statuses[http.StatusUnauthorized]
}

func TestTenantIDFromToken(t *testing.T) {
	const tid = "11111111-2222-4333-8444-555555555555"
	ten := emulatortest.Start(t, emulator.Options{TenantID: tid})
	d := newDirectory(t, ten, nil)
	ctx := ctxFor(t)
	for i := range 2 {
		got, err := d.TenantID(ctx)
		if err != nil {
			t.Fatalf("TenantID #%d: %v", i, err)
		}
		if got != tid {
			t.Errorf("TenantID #%d = %q, want %q", i, got, tid)
		}
	}
	if n := ten.Stats().Service(emulator.ServiceIdentity).Requests; n != 1 {
		t.Errorf("identity endpoint requests = %d, want 1 (one token, then the cached tenant id)", n)
	}
	if n := ten.Stats().Service(emulator.ServiceGraph).Requests; n != 0 {
		t.Errorf("graph requests = %d, want 0 (the tenant id comes from the token)", n)
	}
}

// TestOneTokenPerTenantThroughFederation: in a customer tenant, reached as the federated application, the
// tenant id and the SDK's requests share one token exchange. (The SDK asks for a token with continuous
// access evaluation; azidentity keeps such tokens apart from others, so the tenant id must ask alike.)
func TestOneTokenPerTenantThroughFederation(t *testing.T) {
	const customer = "c0c0c0c0-0000-4000-8000-00000000000c"
	ten := emulatortest.Start(t, emulator.Options{IdentityClientID: emulator.NewGUID()})
	appID := emulatortest.Customer(t, ten, customer, emulator.RoleApplicationReadAll)
	hc := ten.HTTPClient()
	mi, err := azure.NewCredential(emulatortest.Getenv(t, ten), hc)
	if err != nil {
		t.Fatalf("NewCredential: %v", err)
	}
	fed := azure.NewFederation(mi, appID, "https://login.microsoftonline.com", "https://graph.microsoft.com/.default", hc)
	d, err := graph.New(fed.Credential(customer), "", hc)
	if err != nil {
		t.Fatalf("graph.New: %v", err)
	}
	ctx := ctxFor(t)
	if got, err := d.TenantID(ctx); err != nil || got != customer {
		t.Fatalf("TenantID = %q, %v; want %s", got, err, customer)
	}
	if _, err := d.Snapshot(ctx, appreg.SnapshotQuery{UniqueName: "scepman", Resources: []string{appreg.GraphAppID}}); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if n := ten.Stats().Op(emulator.OpLoginToken).Requests; n != 1 {
		t.Errorf("token exchanges in the customer tenant = %d, want 1 (the tenant id and the SDK share the token)", n)
	}
}

func TestApplicationLifecycle(t *testing.T) {
	ten := emulatortest.Start(t, emulator.Options{})
	d := newDirectory(t, ten, nil)
	ctx := ctxFor(t)

	if _, err := d.Application(ctx, "scepman"); !errors.Is(err, appreg.ErrNotFound) {
		t.Fatalf("Application before creation: err = %v, want ErrNotFound", err)
	}
	created, err := d.UpsertApplication(ctx, "scepman", level0Spec("SCEPman"))
	if err != nil || !created {
		t.Fatalf("first UpsertApplication = %v, %v; want created", created, err)
	}
	created, err = d.UpsertApplication(ctx, "scepman", level0Spec("SCEPman renamed"))
	if err != nil || created {
		t.Fatalf("second UpsertApplication = %v, %v; want updated (created=false)", created, err)
	}
	st := ten.Stats().Op(emulator.OpUpsertApplication)
	if st.Statuses[http.StatusCreated] != 1 || st.Statuses[http.StatusNoContent] != 1 {
		t.Errorf("upsert answers = %v, want one 201 and one 204", st.Statuses)
	}

	app, err := d.Application(ctx, "scepman")
	if err != nil {
		t.Fatalf("Application: %v", err)
	}
	want := level0Spec("SCEPman renamed")
	if app.ObjectID == "" || app.AppID == "" || app.UniqueName != "scepman" || app.DisplayName != want.DisplayName ||
		app.SignInAudience != appreg.AudienceMyOrg || len(app.Passwords) != 0 {
		t.Errorf("Application = %+v, want ids, uniqueName scepman, %q, %s, no passwords", app, want.DisplayName, appreg.AudienceMyOrg)
	}
	if fmt.Sprint(app.RequiredResourceAccess) != fmt.Sprint(want.RequiredResourceAccess) {
		t.Errorf("requiredResourceAccess = %v, want %v", app.RequiredResourceAccess, want.RequiredResourceAccess)
	}

	end := time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second)
	pc, secret, err := d.AddPassword(ctx, app.ObjectID, "appreg rotation", end)
	if err != nil {
		t.Fatalf("AddPassword: %v", err)
	}
	if secret == "" || !slices.Contains(ten.IssuedSecrets(), secret) {
		t.Errorf("AddPassword returned a secret the tenant did not issue")
	}
	if pc.KeyID == "" || pc.DisplayName != "appreg rotation" || !pc.End.Equal(end) || pc.Start.IsZero() || pc.Hint != secret[:3] {
		t.Errorf("AddPassword credential = %+v, want keyId, display name, end %v, start, hint", pc, end)
	}
	app, err = d.Application(ctx, "scepman")
	if err != nil {
		t.Fatalf("Application: %v", err)
	}
	if len(app.Passwords) != 1 || app.Passwords[0].KeyID != pc.KeyID || !app.Passwords[0].End.Equal(end) {
		t.Errorf("passwords = %+v, want the one added (%s, end %v)", app.Passwords, pc.KeyID, end)
	}
	if strings.Contains(fmt.Sprintf("%+v", app), secret) {
		t.Errorf("the application read back holds the secret text")
	}

	if err := d.RemovePassword(ctx, app.ObjectID, pc.KeyID); err != nil {
		t.Fatalf("RemovePassword: %v", err)
	}
	err = d.RemovePassword(ctx, app.ObjectID, pc.KeyID)
	var se *appreg.ServiceError
	if !errors.Is(err, appreg.ErrNotFound) || !errors.As(err, &se) || se.Status != http.StatusNotFound {
		t.Errorf("RemovePassword of a removed credential: err = %v, want ErrNotFound (404)", err)
	}
	if err != nil && !strings.Contains(err.Error(), "removing password "+pc.KeyID+" from application "+app.ObjectID) {
		t.Errorf("error %q does not say what was being done", err)
	}
	app, err = d.Application(ctx, "scepman")
	if err != nil || len(app.Passwords) != 0 {
		t.Errorf("passwords after removal = %+v, %v; want none", app.Passwords, err)
	}
}

func TestServicePrincipals(t *testing.T) {
	ten := emulatortest.Start(t, emulator.Options{})
	d := newDirectory(t, ten, nil)
	ctx := ctxFor(t)

	msGraph, err := d.ServicePrincipal(ctx, appreg.GraphAppID)
	if err != nil {
		t.Fatalf("ServicePrincipal(Microsoft Graph): %v", err)
	}
	i := slices.IndexFunc(msGraph.AppRoles, func(r appreg.AppRole) bool { return r.Value == "Directory.Read.All" })
	if msGraph.ID == "" || msGraph.AppID != appreg.GraphAppID || i < 0 {
		t.Fatalf("Microsoft Graph service principal = %+v, want its id and the Directory.Read.All role", msGraph)
	}
	if r := msGraph.AppRoles[i]; r.ID != directoryReadAll || !r.Enabled || !slices.Contains(r.AllowedMemberTypes, "Application") {
		t.Errorf("Directory.Read.All role = %+v, want id %s, enabled, for applications", r, directoryReadAll)
	}
	intune, err := d.ServicePrincipal(ctx, appreg.IntuneAPIAppID)
	if err != nil || !slices.ContainsFunc(intune.AppRoles, func(r appreg.AppRole) bool { return r.ID == scepChallenge }) {
		t.Errorf("ServicePrincipal(Intune API) = %+v, %v; want the scep_challenge_provider role", intune, err)
	}

	app := mustUpsert(t, ctx, ten, d, "scepman")
	sp, err := d.CreateServicePrincipal(ctx, app.AppID)
	if err != nil {
		t.Fatalf("CreateServicePrincipal: %v", err)
	}
	if sp.ID == "" || sp.AppID != app.AppID {
		t.Errorf("CreateServicePrincipal = %+v, want an id and appId %s", sp, app.AppID)
	}
	_, err = d.CreateServicePrincipal(ctx, app.AppID)
	var se *appreg.ServiceError
	if !errors.Is(err, appreg.ErrAlreadyExists) || !errors.As(err, &se) || se.Status != http.StatusConflict {
		t.Errorf("second CreateServicePrincipal: err = %v, want ErrAlreadyExists (409)", err)
	}
	got, err := d.ServicePrincipal(ctx, app.AppID)
	if err != nil || got.ID != sp.ID {
		t.Errorf("ServicePrincipal(app) = %+v, %v; want id %s", got, err, sp.ID)
	}
}

func TestServicePrincipalAbsentResource(t *testing.T) {
	ten := emulatortest.Start(t, emulator.Options{NoIntune: true})
	d := newDirectory(t, ten, nil)
	_, err := d.ServicePrincipal(ctxFor(t), appreg.IntuneAPIAppID)
	if !errors.Is(err, appreg.ErrNotFound) {
		t.Fatalf("ServicePrincipal(Intune API) in a tenant without Intune: err = %v, want ErrNotFound", err)
	}
}

func TestAppRoleAssignmentsPaging(t *testing.T) {
	ten := emulatortest.Start(t, emulator.Options{PageSize: 2})
	d := newDirectory(t, ten, nil)
	ctx := ctxFor(t)

	app := mustUpsert(t, ctx, ten, d, "scepman")
	sp, err := d.CreateServicePrincipal(ctx, app.AppID)
	if err != nil {
		t.Fatalf("CreateServicePrincipal: %v", err)
	}
	msGraph, err := d.ServicePrincipal(ctx, appreg.GraphAppID)
	if err != nil {
		t.Fatalf("ServicePrincipal(Microsoft Graph): %v", err)
	}
	intune, err := d.ServicePrincipal(ctx, appreg.IntuneAPIAppID)
	if err != nil {
		t.Fatalf("ServicePrincipal(Intune API): %v", err)
	}
	grants := []struct{ resource, role string }{
		{msGraph.ID, directoryReadAll}, {msGraph.ID, managedDevices}, {msGraph.ID, deviceConfig},
		{msGraph.ID, riskyUsers}, {intune.ID, scepChallenge},
	}
	for _, g := range grants {
		a, err := d.AssignAppRole(ctx, sp.ID, g.resource, g.role)
		if err != nil {
			t.Fatalf("AssignAppRole(%s): %v", g.role, err)
		}
		if a.ID == "" || a.PrincipalID != sp.ID || a.ResourceID != g.resource || a.AppRoleID != g.role {
			t.Errorf("AssignAppRole = %+v, want principal %s resource %s role %s", a, sp.ID, g.resource, g.role)
		}
	}
	_, err = d.AssignAppRole(ctx, sp.ID, msGraph.ID, directoryReadAll)
	var se *appreg.ServiceError
	if !errors.Is(err, appreg.ErrAlreadyExists) || !errors.As(err, &se) || se.Status != http.StatusBadRequest {
		t.Errorf("duplicate AssignAppRole: err = %v, want ErrAlreadyExists (400)", err)
	}
	_, err = d.AssignAppRole(ctx, sp.ID, msGraph.ID, emulator.NewGUID())
	if !errors.Is(err, appreg.ErrRejected) {
		t.Errorf("AssignAppRole of an unknown role: err = %v, want ErrRejected", err)
	}

	ten.ResetStats()
	got, err := d.AppRoleAssignments(ctx, sp.ID)
	if err != nil {
		t.Fatalf("AppRoleAssignments: %v", err)
	}
	if len(got) != len(grants) {
		t.Fatalf("AppRoleAssignments returned %d, want %d: %+v", len(got), len(grants), got)
	}
	for _, g := range grants {
		if !slices.ContainsFunc(got, func(a appreg.AppRoleAssignment) bool {
			return a.AppRoleID == g.role && a.ResourceID == g.resource && a.PrincipalID == sp.ID
		}) {
			t.Errorf("AppRoleAssignments lacks role %s of %s", g.role, g.resource)
		}
	}
	if n := requests(ten, emulator.OpListAppRoleAssignments); n != 3 {
		t.Errorf("list requests = %d, want 3 (5 assignments, pages of 2)", n)
	}
}

func TestMaxPasswordLifetime(t *testing.T) {
	withPolicy := append(emulator.DefaultGraphRoles(), emulator.RolePolicyReadAll)
	tests := []struct {
		name     string
		roles    []string
		lifetime time.Duration
		want     time.Duration
		wantErr  error
		wantNeed string
	}{
		{name: "least privilege: no Policy.Read.All", roles: nil, lifetime: 90 * 24 * time.Hour, wantErr: appreg.ErrForbidden, wantNeed: graph.NeedPolicyReadAll},
		{name: "no policy", roles: withPolicy, want: 0},
		{name: "90 days", roles: withPolicy, lifetime: 90 * 24 * time.Hour, want: 90 * 24 * time.Hour},
		{name: "36 hours", roles: withPolicy, lifetime: 36 * time.Hour, want: 36 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ten := emulatortest.Start(t, emulator.Options{GraphRoles: tt.roles})
			ten.SetMaxPasswordLifetime(tt.lifetime)
			d := newDirectory(t, ten, nil)
			got, err := d.MaxPasswordLifetime(ctxFor(t))
			if tt.wantErr != nil {
				var se *appreg.ServiceError
				if !errors.Is(err, tt.wantErr) || !errors.As(err, &se) || se.Need != tt.wantNeed {
					t.Fatalf("MaxPasswordLifetime err = %v, want %v needing %s", err, tt.wantErr, tt.wantNeed)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("MaxPasswordLifetime = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestForbiddenNamesPermission checks that every operation's 403 names the permission it needs.
func TestForbiddenNamesPermission(t *testing.T) {
	someID := emulator.NewGUID()
	tests := []struct {
		name  string
		roles []string // Graph roles of the identity
		call  func(ctx context.Context, d *graph.Directory) error
		need  string
	}{
		{name: "read application", roles: []string{}, need: graph.NeedApplicationOwnedBy,
			call: func(ctx context.Context, d *graph.Directory) error {
				_, err := d.Application(ctx, "scepman")
				return err
			}},
		{name: "upsert application", roles: []string{}, need: graph.NeedApplicationOwnedBy,
			call: func(ctx context.Context, d *graph.Directory) error {
				_, err := d.UpsertApplication(ctx, "scepman", level0Spec("SCEPman"))
				return err
			}},
		{name: "add password", roles: []string{}, need: graph.NeedApplicationOwnedBy,
			call: func(ctx context.Context, d *graph.Directory) error {
				_, _, err := d.AddPassword(ctx, someID, "x", time.Now().Add(time.Hour))
				return err
			}},
		{name: "remove password", roles: []string{}, need: graph.NeedApplicationOwnedBy,
			call: func(ctx context.Context, d *graph.Directory) error { return d.RemovePassword(ctx, someID, someID) }},
		{name: "create service principal", roles: []string{}, need: graph.NeedApplicationOwnedBy,
			call: func(ctx context.Context, d *graph.Directory) error {
				_, err := d.CreateServicePrincipal(ctx, someID)
				return err
			}},
		{name: "read resource service principal", need: graph.NeedApplicationReadAll,
			roles: []string{emulator.RoleApplicationReadWriteOwnedBy, emulator.RoleAppRoleAssignmentReadWriteAll},
			call: func(ctx context.Context, d *graph.Directory) error {
				_, err := d.ServicePrincipal(ctx, appreg.GraphAppID)
				return err
			}},
		{name: "list assignments", roles: []string{}, need: graph.NeedApplicationReadAll,
			call: func(ctx context.Context, d *graph.Directory) error {
				_, err := d.AppRoleAssignments(ctx, someID)
				return err
			}},
		{name: "assign app role", need: graph.NeedAppRoleAssignmentRW,
			roles: []string{emulator.RoleApplicationReadWriteOwnedBy, emulator.RoleApplicationReadAll},
			call: func(ctx context.Context, d *graph.Directory) error {
				_, err := d.AssignAppRole(ctx, someID, someID, someID)
				return err
			}},
		{name: "read policy", roles: []string{}, need: graph.NeedPolicyReadAll,
			call: func(ctx context.Context, d *graph.Directory) error { _, err := d.MaxPasswordLifetime(ctx); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ten := emulatortest.Start(t, emulator.Options{GraphRoles: tt.roles})
			d := newDirectory(t, ten, nil)
			err := tt.call(ctxFor(t), d)
			var se *appreg.ServiceError
			if !errors.Is(err, appreg.ErrForbidden) || !errors.As(err, &se) {
				t.Fatalf("err = %v, want ErrForbidden", err)
			}
			if se.Status != http.StatusForbidden || se.Need != tt.need || se.Service != appreg.ServiceGraph {
				t.Errorf("ServiceError = {%s %d need %q}, want {%s 403 need %q}", se.Service, se.Status, se.Need, appreg.ServiceGraph, tt.need)
			}
			if !strings.Contains(err.Error(), tt.need) {
				t.Errorf("error %q does not name %s", err, tt.need)
			}
		})
	}
}

// TestForbiddenNamesTheCause: a 403 on a write that the identity's token allows is not a missing
// permission. Under Application.ReadWrite.OwnedBy it means the identity does not own the application (a
// recreated function app with a new system-assigned identity): the error says so and what to do.
func TestForbiddenNamesTheCause(t *testing.T) {
	ctx := ctxFor(t)
	ten := emulatortest.Start(t, emulator.Options{})
	d := newDirectory(t, ten, nil)
	app := mustUpsert(t, ctx, ten, d, "scepman")
	if _, err := d.TenantID(ctx); err != nil {
		t.Fatalf("TenantID: %v", err)
	}
	ten.Mutate(func(s *emulator.State) { s.Application("scepman").Owners = []string{emulator.NewGUID()} })
	calls := map[string]func() error{
		"add password": func() error { _, _, err := d.AddPassword(ctx, app.ID, "x", time.Now().Add(time.Hour)); return err },
		"update":       func() error { _, err := d.UpsertApplication(ctx, "scepman", level0Spec("SCEPman 2")); return err },
		"remove password": func() error {
			return d.RemovePassword(ctx, app.ID, emulator.NewGUID())
		},
		"create service principal": func() error { _, err := d.CreateServicePrincipal(ctx, app.AppID); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			var se *appreg.ServiceError
			if !errors.Is(err, appreg.ErrForbidden) || !errors.As(err, &se) {
				t.Fatalf("err = %v, want ErrForbidden", err)
			}
			if se.Need != "" || !strings.Contains(se.Advice, "does not own this application") || !strings.Contains(err.Error(), "user-assigned identity") {
				t.Errorf("ServiceError need %q advice %q; want no missing permission, and the ownership named with the advice to use a user-assigned identity", se.Need, se.Advice)
			}
		})
	}
}

// TestForbiddenWithApplicationReadWriteAll: an identity that holds Application.ReadWrite.All manages every
// application, owned or not, so a 403 on a write to one is not about ownership: the error must not guess
// that it is.
func TestForbiddenWithApplicationReadWriteAll(t *testing.T) {
	ctx := ctxFor(t)
	ten := emulatortest.Start(t, emulator.Options{GraphRoles: []string{emulator.RoleApplicationReadWriteOwnedBy,
		emulator.RoleApplicationReadWriteAll, emulator.RoleAppRoleAssignmentReadWriteAll}})
	d := newDirectory(t, ten, nil)
	ten.AddFault(emulator.Fault{Service: emulator.ServiceGraph, Operation: emulator.OpUpsertApplication, Status: http.StatusForbidden,
		Code: "Authorization_RequestDenied", Message: "Insufficient privileges to complete the operation."})
	_, err := d.UpsertApplication(ctx, "scepman", level0Spec("SCEPman"))
	var se *appreg.ServiceError
	if !errors.Is(err, appreg.ErrForbidden) || !errors.As(err, &se) {
		t.Fatalf("err = %v, want ErrForbidden", err)
	}
	if se.Advice != "" || strings.Contains(err.Error(), "does not own") {
		t.Errorf("ServiceError advice %q; want none: the identity holds %s", se.Advice, emulator.RoleApplicationReadWriteAll)
	}
}

// row is one case of TestErrorClassification.
type row struct {
	name string
	opts emulator.Options
	// client returns the HTTP client to use; nil: the tenant's.
	client func(ten *emulator.Tenant) *http.Client
	// timeout bounds the call under test; 0: ctxFor's.
	timeout time.Duration
	// run sets up and makes the call under test, whose error it returns.
	run        func(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory) error
	wantKind   error // nil: success
	wantStatus int
	wantCode   string
	wantCtx    bool           // the call ends with the caller's context, unclassified
	wantTries  map[string]int // operation -> authenticated requests
}

func TestErrorClassification(t *testing.T) {
	fault := func(op string, f emulator.Fault) func(*emulator.Tenant) {
		return func(ten *emulator.Tenant) {
			f.Service, f.Operation = emulator.ServiceGraph, op
			ten.AddFault(f)
		}
	}
	upsert := func(setup ...func(*emulator.Tenant)) func(*testing.T, context.Context, *emulator.Tenant, *graph.Directory) error {
		return func(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory) error {
			for _, s := range setup {
				s(ten)
			}
			created, err := d.UpsertApplication(ctx, "scepman", level0Spec("SCEPman"))
			if err == nil && !created {
				t.Errorf("UpsertApplication created = false, want true")
			}
			return err
		}
	}
	addPassword := func(setup ...func(*emulator.Tenant)) func(*testing.T, context.Context, *emulator.Tenant, *graph.Directory) error {
		return func(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory) error {
			app := mustUpsert(t, ctx, ten, d, "scepman")
			for _, s := range setup {
				s(ten)
			}
			_, _, err := d.AddPassword(ctx, app.ID, "x", time.Now().Add(60*24*time.Hour))
			return err
		}
	}
	readApp := func(setup ...func(*emulator.Tenant)) func(*testing.T, context.Context, *emulator.Tenant, *graph.Directory) error {
		return func(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory) error {
			mustUpsert(t, ctx, ten, d, "scepman")
			for _, s := range setup {
				s(ten)
			}
			_, err := d.Application(ctx, "scepman")
			return err
		}
	}
	assign := func(setup ...func(*emulator.Tenant)) func(*testing.T, context.Context, *emulator.Tenant, *graph.Directory) error {
		return func(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory) error {
			app := mustUpsert(t, ctx, ten, d, "scepman")
			msGraph, err := d.ServicePrincipal(ctx, appreg.GraphAppID)
			if err != nil {
				t.Fatalf("ServicePrincipal(Microsoft Graph): %v", err)
			}
			sp, err := d.CreateServicePrincipal(ctx, app.AppID)
			if err != nil {
				t.Fatalf("CreateServicePrincipal: %v", err)
			}
			for _, s := range setup {
				s(ten)
			}
			_, err = d.AssignAppRole(ctx, sp.ID, msGraph.ID, directoryReadAll)
			return err
		}
	}
	shortHeaderTimeout := func(ten *emulator.Tenant) *http.Client {
		tr := ten.HTTPClient().Transport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = time.Second
		return &http.Client{Transport: tr}
	}

	tests := []row{
		{name: "404 service principal", wantKind: appreg.ErrNotFound, wantStatus: 404, wantCode: "Request_ResourceNotFound",
			run: func(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory) error {
				_, err := d.ServicePrincipal(ctx, emulator.NewGUID())
				return err
			}},
		{name: "429 then success on a write: the retried body is intact",
			run:       upsert(fault(emulator.OpUpsertApplication, emulator.Fault{Status: 429})),
			wantTries: map[string]int{emulator.OpUpsertApplication: 2}},
		{name: "429 then success on addPassword",
			run:       addPassword(fault(emulator.OpAddPassword, emulator.Fault{Status: 429})),
			wantTries: map[string]int{emulator.OpAddPassword: 2}},
		{name: "429 always", wantKind: appreg.ErrThrottled, wantStatus: 429,
			run:       readApp(fault(emulator.OpGetApplication, emulator.Fault{Status: 429, Times: emulator.Always})),
			wantTries: map[string]int{emulator.OpGetApplication: 4}},
		{name: "503 always", wantKind: appreg.ErrUnavailable, wantStatus: 503,
			run:       upsert(fault(emulator.OpUpsertApplication, emulator.Fault{Status: 503, Times: emulator.Always})),
			wantTries: map[string]int{emulator.OpUpsertApplication: 4}},
		{name: "504 then success",
			run:       readApp(fault(emulator.OpGetApplication, emulator.Fault{Status: 504, RetryAfter: 1})),
			wantTries: map[string]int{emulator.OpGetApplication: 2}},
		{name: "500 is not retried by the SDK", wantKind: appreg.ErrUnavailable, wantStatus: 500,
			run:       readApp(fault(emulator.OpGetApplication, emulator.Fault{Status: 500})),
			wantTries: map[string]int{emulator.OpGetApplication: 1}},
		{name: "dropped connection after the write", wantKind: appreg.ErrUnavailable,
			run: upsert(fault(emulator.OpUpsertApplication, emulator.Fault{Kind: emulator.FaultDrop, After: true}))},
		{name: "hang: transport timeout", wantKind: appreg.ErrUnavailable, client: shortHeaderTimeout,
			run: readApp(fault(emulator.OpGetApplication, emulator.Fault{Kind: emulator.FaultHang}))},
		{name: "hang: the caller's deadline", wantCtx: true, timeout: 3 * time.Second,
			run: func(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory) error {
				ten.AddFault(emulator.Fault{Service: emulator.ServiceGraph, Operation: emulator.OpGetServicePrincipal, Kind: emulator.FaultHang})
				_, err := d.ServicePrincipal(ctx, appreg.GraphAppID)
				return err
			}},
		{name: "409 concurrency violation", wantKind: appreg.ErrConcurrency, wantStatus: 409, wantCode: "Directory_ConcurrencyViolation",
			run: func(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory) error {
				app := mustUpsert(t, ctx, ten, d, "scepman")
				ten.SetConcurrencyViolationWindow(time.Hour)
				if _, _, err := d.AddPassword(ctx, app.ID, "first", time.Now().Add(time.Hour)); err != nil {
					t.Fatalf("first AddPassword: %v", err)
				}
				_, _, err := d.AddPassword(ctx, app.ID, "second", time.Now().Add(time.Hour))
				return err
			}},
		{name: "lifetime beyond the app management policy", wantKind: appreg.ErrLifetimePolicy, wantStatus: 400, wantCode: "CredentialInvalidLifetimeAsPerAppPolicy",
			run: addPassword(func(ten *emulator.Tenant) { ten.SetMaxPasswordLifetime(30 * 24 * time.Hour) })},
		{name: "uniqueName held by a deleted application", wantKind: appreg.ErrUniqueNameTaken, wantStatus: 400,
			run: upsert(func(ten *emulator.Tenant) { ten.SoftDeleteApplication("scepman") })},
		{name: "not replicated: addPassword on a fresh application", wantKind: appreg.ErrNotReplicated, wantStatus: 404,
			run: func(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory) error {
				ten.SetReplicationDelay(time.Hour)
				app := mustUpsert(t, ctx, ten, d, "scepman")
				_, _, err := d.AddPassword(ctx, app.ID, "x", time.Now().Add(time.Hour))
				return err
			}},
		{name: "not replicated: service principal of a fresh application", wantKind: appreg.ErrNotReplicated, wantStatus: 400,
			run: func(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory) error {
				ten.SetReplicationDelay(time.Hour)
				app := mustUpsert(t, ctx, ten, d, "scepman")
				_, err := d.CreateServicePrincipal(ctx, app.AppID)
				return err
			}},
		{name: "not replicated: assignment from a fresh service principal", wantKind: appreg.ErrNotReplicated, wantStatus: 404,
			run: func(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory) error {
				app := mustUpsert(t, ctx, ten, d, "scepman")
				msGraph, err := d.ServicePrincipal(ctx, appreg.GraphAppID)
				if err != nil {
					t.Fatalf("ServicePrincipal(Microsoft Graph): %v", err)
				}
				ten.SetReplicationDelay(time.Hour)
				sp, err := d.CreateServicePrincipal(ctx, app.AppID)
				if err != nil {
					t.Fatalf("CreateServicePrincipal: %v", err)
				}
				_, err = d.AssignAppRole(ctx, sp.ID, msGraph.ID, directoryReadAll)
				return err
			}},
		{name: "a fresh application read back is not found (a read, not a write)", wantKind: appreg.ErrNotFound, wantStatus: 404,
			run: func(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory) error {
				ten.SetReplicationDelay(time.Hour)
				mustUpsert(t, ctx, ten, d, "scepman")
				_, err := d.Application(ctx, "scepman")
				return err
			}},
		{name: "403 backing application not in the local tenant: replication, not a permission", wantKind: appreg.ErrNotReplicated, wantStatus: 403,
			wantCode: "Authorization_RequestDenied",
			run: func(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory) error {
				app := mustUpsert(t, ctx, ten, d, "scepman")
				fault(emulator.OpCreateServicePrincipal, emulator.Fault{Status: 403, Code: "Authorization_RequestDenied",
					Message: "When using this permission, the backing application of the service principal being created must in the local tenant"})(ten)
				_, err := d.CreateServicePrincipal(ctx, app.AppID)
				return err
			}},
		{name: "400 not a valid reference update on an assignment: replication", wantKind: appreg.ErrNotReplicated, wantStatus: 400,
			run: assign(fault(emulator.OpAssignAppRole, emulator.Fault{Status: 400, Code: "Request_BadRequest", Message: "Not a valid reference update."}))},
		{name: "plain 404 on an assignment: replication", wantKind: appreg.ErrNotReplicated, wantStatus: 404,
			run: assign(fault(emulator.OpAssignAppRole, emulator.Fault{Status: 404, Code: "Request_ResourceNotFound", Message: "Resource 'x' does not exist."}))},
		{name: "passwords forbidden by the app management policy", wantKind: appreg.ErrPasswordsForbidden, wantStatus: 400,
			wantCode: "CredentialTypeNotAllowedAsPerAppPolicy",
			run: addPassword(fault(emulator.OpAddPassword, emulator.Fault{Status: 400, Code: "CredentialTypeNotAllowedAsPerAppPolicy",
				Message: "Password credentials are not allowed as per assigned policy."}))},
		{name: "other 4xx", wantKind: appreg.ErrRejected, wantStatus: 400, wantCode: "Request_BadRequest",
			run: upsert(fault(emulator.OpUpsertApplication, emulator.Fault{Status: 400, Code: "Request_BadRequest", Message: "Invalid value specified for property 'displayName'."}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ten := emulatortest.Start(t, tt.opts)
			var hc *http.Client
			if tt.client != nil {
				hc = tt.client(ten)
			}
			d := newDirectory(t, ten, hc)
			ctx := ctxFor(t)
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			err := tt.run(t, ctx, ten, d)
			var se *appreg.ServiceError
			switch {
			case tt.wantCtx:
				if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &se) {
					t.Fatalf("err = %v, want the caller's context deadline, unclassified", err)
				}
			case tt.wantKind == nil:
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
			default:
				if !errors.Is(err, tt.wantKind) || !errors.As(err, &se) {
					t.Fatalf("err = %v, want a *appreg.ServiceError of kind %v", err, tt.wantKind)
				}
				if se.Service != appreg.ServiceGraph || se.Status != tt.wantStatus || (tt.wantCode != "" && se.Code != tt.wantCode) {
					t.Errorf("ServiceError = {%s status %d code %q}, want {%s status %d code %q}", se.Service, se.Status, se.Code,
						appreg.ServiceGraph, tt.wantStatus, tt.wantCode)
				}
				for _, s := range ten.IssuedSecrets() {
					if strings.Contains(err.Error(), s) {
						t.Errorf("the error holds a secret the tenant issued")
					}
				}
			}
			for op, want := range tt.wantTries {
				if got := requests(ten, op); got != want {
					t.Errorf("%s requests = %d, want %d", op, got, want)
				}
			}
		})
	}
}

func TestNewValidatesEndpoint(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
		wantErr  bool
	}{
		{name: "default", endpoint: ""},
		{name: "global cloud", endpoint: "https://graph.microsoft.com"},
		{name: "trailing slash", endpoint: "https://graph.microsoft.com/"},
		{name: "US government", endpoint: "https://graph.microsoft.us"},
		{name: "http", endpoint: "http://graph.microsoft.com", wantErr: true},
		{name: "with version path", endpoint: "https://graph.microsoft.com/v1.0", wantErr: true},
		{name: "no scheme", endpoint: "graph.microsoft.com", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := graph.New(noCred{}, tt.endpoint, http.DefaultClient)
			if (err != nil) != tt.wantErr {
				t.Errorf("New(%q) error = %v, want error %v", tt.endpoint, err, tt.wantErr)
			}
		})
	}
}

func TestParseISODuration(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "P90D", want: 90 * day},
		{in: "P1Y", want: 365 * day},
		{in: "P6M", want: 180 * day},
		{in: "P2W", want: 14 * day},
		{in: "PT12H", want: 12 * time.Hour},
		{in: "PT30S", want: 30 * time.Second},
		{in: "P1DT12H", want: 36 * time.Hour},
		{in: "P1Y2M3DT4H5M6S", want: 365*day + 60*day + 3*day + 4*time.Hour + 5*time.Minute + 6*time.Second},
		{in: "PT0.5S", want: 500 * time.Millisecond},
		{in: "P", wantErr: true},
		{in: "PT", wantErr: true},
		{in: "90D", wantErr: true},
		{in: "P90", wantErr: true},
		{in: "P1H", wantErr: true},
		{in: "garbage P90D", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := graph.ParseISODuration(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseISODuration(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseISODuration(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// noCred is a credential that is never asked for a token.
type noCred struct{}

func (noCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, errors.New("noCred: no token")
}

// TestThroughProxyWithCAFile runs the adapter as a deployed process does: HTTPS_PROXY and SSL_CERT_FILE
// through the injected getenv, the identity endpoint on loopback (not proxied).
func TestThroughProxyWithCAFile(t *testing.T) {
	ten := emulatortest.Start(t, emulator.Options{})
	getenv := emulatortest.Getenv(t, ten)
	hc, err := azure.NewHTTPClient(getenv)
	if err != nil {
		t.Fatalf("NewHTTPClient: %v", err)
	}
	cred, err := azure.NewCredential(getenv, hc)
	if err != nil {
		t.Fatalf("NewCredential: %v", err)
	}
	d, err := graph.New(cred, getenv("APPREG_GRAPH_ENDPOINT"), hc)
	if err != nil {
		t.Fatalf("graph.New: %v", err)
	}
	ctx := ctxFor(t)
	if tid, err := d.TenantID(ctx); err != nil || tid != ten.TenantID() {
		t.Errorf("TenantID = %q, %v; want %s", tid, err, ten.TenantID())
	}
	if created, err := d.UpsertApplication(ctx, "scepman", level0Spec("SCEPman")); err != nil || !created {
		t.Fatalf("UpsertApplication through the proxy = %v, %v; want created", created, err)
	}
	if app, err := d.Application(ctx, "scepman"); err != nil || app.UniqueName != "scepman" {
		t.Errorf("Application through the proxy = %+v, %v", app, err)
	}
	if n := ten.Stats().Service(emulator.ServiceGraph).Requests; n != 2 {
		t.Errorf("graph requests = %d, want 2", n)
	}
}
