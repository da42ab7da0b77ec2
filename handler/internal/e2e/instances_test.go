package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

// Split tenancy and several instances (contract, "Several instances"): one function app keeps the
// registrations of its own tenant and of customers' tenants right, reaching the customers as a federated
// application with no secret of its own.

const (
	customerA = "a1a1a1a1-0000-4000-8000-00000000000a"
	customerB = "b2b2b2b2-0000-4000-8000-00000000000b"
)

// grantRoles are the Graph roles the federated application holds in a customer tenant for grant mode.
var grantRoles = []string{emulator.RoleApplicationReadWriteOwnedBy, emulator.RoleApplicationReadAll, emulator.RoleAppRoleAssignmentReadWriteAll}

// fleet starts a function app whose APPREG_INSTANCES is instances (JSON), on a world where the customer
// tenants exist and the federated application is registered; consented lists the tenants that consented.
func fleet(t *testing.T, instances string, customers, consented []string, before func(*emulator.Tenant)) (*app, string) {
	t.Helper()
	var fedApp string
	a := start(t, setup{
		before: func(tn *emulator.Tenant) {
			for _, c := range customers {
				if err := tn.AddTenant(c, false); err != nil {
					t.Fatal(err)
				}
			}
			fedApp = tn.RegisterFederatedApp("SCEPman app registrations (MSP)")
			for _, c := range consented {
				if err := tn.ConsentFederatedApp(c, fedApp, grantRoles...); err != nil {
					t.Fatal(err)
				}
			}
			if before != nil {
				before(tn)
			}
		},
		env: func(env map[string]string) {
			env["APPREG_INSTANCES"] = instances
			env["APPREG_FEDERATED_APP_ID"] = fedApp
		},
	})
	return a, fedApp
}

// multiAnswer is {"instances": {NAME: answer}}.
type multiAnswer struct {
	Instances map[string]json.RawMessage `json:"instances"`
}

func (m multiAnswer) of(t *testing.T, name string, v any) {
	t.Helper()
	raw, ok := m.Instances[name]
	if !ok {
		t.Fatalf("no answer for instance %s in %v", name, m.Instances)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("instance %s: %s: %v", name, raw, err)
	}
}

func twoInstances(customer string) string {
	return `[{"name":"home"},{"name":"contoso","tenantId":"` + customer + `","secretName":"contoso-ApplicationKey"}]`
}

func TestTwoInstancesInTwoTenants(t *testing.T) {
	t.Parallel()
	a, _ := fleet(t, twoInstances(customerA), []string{customerA}, []string{customerA}, nil)
	var all multiAnswer
	if got := a.call(http.MethodPost, "/api/provision", "", &all); got != http.StatusOK {
		t.Fatalf("provision of every instance: %d %v, want 200", got, all.Instances)
	}
	var home, contoso signedProvision
	all.of(t, "home", &home)
	all.of(t, "contoso", &contoso)
	if contoso.TenantID != customerA || home.TenantID == customerA || contoso.Secret == nil || contoso.Secret.SignIn != "accepted" {
		t.Errorf("contoso: tenant %s secret %+v; home: tenant %s; want contoso in its own tenant, signing in", contoso.TenantID, contoso.Secret, home.TenantID)
	}
	// The registration lives in the customer's tenant; the secret in the home vault.
	cust := a.tenant.SnapshotOf(customerA)
	if app := cust.Application("scepman"); app == nil || app.AppID != contoso.AppID || len(app.PasswordCredentials) != 1 {
		t.Errorf("the customer's tenant holds %+v, want contoso's application with one credential", app)
	}
	if h := a.tenant.Snapshot(); h.Application("scepman") == nil || h.Application("scepman").AppID != home.AppID ||
		h.Secret("contoso-ApplicationKey") == nil || h.Secret(secretName) == nil {
		t.Error("the home tenant lacks the home application or one of the two secrets")
	}
	if got := len(cust.AssignmentsOf(contoso.ServicePrincipalID)); got != 2 {
		t.Errorf("contoso's consents in its tenant = %d, want 2", got)
	}

	var st multiAnswer
	if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK {
		t.Fatalf("status of every instance: %d", got)
	}
	for _, name := range []string{"home", "contoso"} {
		var r signedStatus
		st.of(t, name, &r)
		if !r.Compliant || r.Secret == nil || r.Secret.SignIn != "accepted" {
			t.Errorf("status of %s = %+v, want compliant and accepted", name, r)
		}
	}
	var one signedStatus
	if got := a.call(http.MethodGet, "/api/status?instance=contoso", "", &one); got != http.StatusOK || !one.Compliant || one.AppID != contoso.AppID {
		t.Errorf("status?instance=contoso: %d %+v, want contoso's report alone", got, one)
	}
	if got := a.call(http.MethodGet, "/api/status?instance=fabrikam", "", nil); got != http.StatusNotFound {
		t.Errorf("an unknown instance: %d, want 404", got)
	}
	if status, _ := a.invoke("compliance"); status != http.StatusOK {
		t.Errorf("compliance over both instances: %d, want 200", status)
	}
	changes := 0
	for _, l := range a.logLines() {
		if l["msg"] != "change" {
			continue
		}
		changes++
		if l["instance"] == nil {
			t.Errorf("a log line of an instance's work without instance: %v", l)
		}
	}
	if changes == 0 {
		t.Error(`no "change" log line: the check of the instance attribute saw nothing`)
	}
}

// TestCustomerNotConsented: the customer has not consented to the federated application; that instance
// fails with the link its administrator opens, writes nothing there, and the other instance is unaffected.
func TestCustomerNotConsented(t *testing.T) {
	t.Parallel()
	a, fedApp := fleet(t, twoInstances(customerA), []string{customerA}, nil, nil)
	var all multiAnswer
	got := a.call(http.MethodPost, "/api/provision", "", &all)
	var home provisionResponse
	all.of(t, "home", &home)
	var contoso apiError
	all.of(t, "contoso", &contoso)
	link := "https://login.microsoftonline.com/" + customerA + "/adminconsent?client_id=" + fedApp
	if got != http.StatusBadGateway || home.AppID == "" || !strings.Contains(contoso.Error.Message, link) {
		t.Errorf("provision: %d home %q contoso %+v, want 502, home provisioned, contoso's error with the consent link %s", got, home.AppID, contoso.Error, link)
	}
	if s := a.tenant.SnapshotOf(customerA); s.Application("scepman") != nil {
		t.Error("something was written in the tenant that did not consent")
	}
	if s := a.tenant.Snapshot(); s.Secret("contoso-ApplicationKey") != nil {
		t.Error("a secret was stored for the instance that failed")
	}
}

// TestAnotherTenantWithoutFederation: an instance in another tenant while APPREG_FEDERATED_APP_ID is
// unset names the setting; nothing is written there and the other instance runs.
func TestAnotherTenantWithoutFederation(t *testing.T) {
	t.Parallel()
	a := start(t, setup{
		before: func(tn *emulator.Tenant) {
			if err := tn.AddTenant(customerA, false); err != nil {
				t.Fatal(err)
			}
		},
		settings: map[string]string{"APPREG_INSTANCES": twoInstances(customerA)},
	})
	var all multiAnswer
	got := a.call(http.MethodPost, "/api/provision", "", &all)
	var contoso apiError
	all.of(t, "contoso", &contoso)
	if got != http.StatusInternalServerError || contoso.Error.Code != "InvalidConfiguration" || !strings.Contains(contoso.Error.Message, "APPREG_FEDERATED_APP_ID") {
		t.Errorf("provision: %d contoso %+v, want 500 InvalidConfiguration naming APPREG_FEDERATED_APP_ID", got, contoso.Error)
	}
	var home provisionResponse
	if all.of(t, "home", &home); home.AppID == "" {
		t.Error("the home instance did not run")
	}
	if s := a.tenant.SnapshotOf(customerA); s.Application("scepman") != nil {
		t.Error("something was written in the other tenant")
	}
}

func TestInvalidInstancesWriteNothing(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		instances string
		noVault   bool   // APPREG_KEY_VAULT_URL unset
		want      string // in the message, beside APPREG_INSTANCES
	}{
		"not an array":       {instances: `{"name":"a"}`, want: "a JSON array of objects"},
		"not objects":        {instances: `["contoso"]`, want: "a JSON array of objects"},
		"an unknown key":     {instances: `[{"name":"a","vault":"https://x.vault.azure.net/"}]`, want: `unknown field "vault"`},
		"a bad name":         {instances: `[{"name":"Contoso"}]`, want: "[0].name"},
		"a name too long":    {instances: `[{"name":"` + strings.Repeat("a", 41) + `"}]`, want: "1 to 40 characters"},
		"a repeated name":    {instances: `[{"name":"a","secretName":"x"},{"name":"a","secretName":"y"}]`, want: "no other instance has"},
		"one tenant and app": {instances: `[{"name":"a","secretName":"x"},{"name":"b","secretName":"y"}]`, want: "(b).uniqueName"},
		"one vault secret":   {instances: `[{"name":"a"},{"name":"b","tenantId":"` + customerA + `"}]`, want: "(b).secretName"},
		"no vault":           {instances: `[{"name":"a"}]`, noVault: true, want: "(a).keyVaultUrl is not set"},
		"a bad value":        {instances: `[{"name":"a","permissionLevel":7}]`, want: "(a).permissionLevel"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := start(t, setup{settings: map[string]string{"APPREG_INSTANCES": tt.instances}, env: func(env map[string]string) {
				if tt.noVault {
					delete(env, "APPREG_KEY_VAULT_URL")
				}
			}})
			var e apiError
			if got := a.call(http.MethodPost, "/api/provision", "", &e); got != http.StatusInternalServerError ||
				e.Error.Code != "InvalidConfiguration" || !strings.Contains(e.Error.Message, "APPREG_INSTANCES") ||
				!strings.Contains(e.Error.Message, tt.want) {
				t.Errorf("provision: %d %+v, want 500 InvalidConfiguration naming APPREG_INSTANCES and %q", got, e.Error, tt.want)
			}
			if w := a.writes(); w != 0 {
				t.Errorf("%d writes reached Graph or Key Vault", w)
			}
		})
	}
}

// TestTimerWithOneTenantThrottledAndAnotherDown: the rest complete; the run fails and says which.
func TestTimerWithOneTenantThrottledAndAnotherDown(t *testing.T) {
	t.Parallel()
	instances := `[{"name":"home"},` +
		`{"name":"throttled","tenantId":"` + customerA + `","secretName":"a-key"},` +
		`{"name":"down","tenantId":"` + customerB + `","secretName":"b-key"}]`
	customers := []string{customerA, customerB}
	a, _ := fleet(t, instances, customers, customers, nil)
	var all multiAnswer
	if got := a.call(http.MethodPost, "/api/provision", "", &all); got != http.StatusOK {
		t.Fatalf("provision of every instance: %d", got)
	}
	a.tenant.AddFault(emulator.Fault{Service: emulator.ServiceGraph, TenantID: customerA, Kind: emulator.FaultStatus,
		Status: http.StatusTooManyRequests, RetryAfter: 1, Probability: 0.3})
	a.tenant.SetTenantDown(customerB, true)
	dueIn(a.tenant, 20*24*time.Hour) // the home secret is due: its renewal must go through
	status, r := a.invoke("rotate")
	if status != http.StatusInternalServerError || r.Error == nil || !strings.Contains(r.Error.Message, "down:") ||
		strings.Contains(r.Error.Message, "throttled:") || strings.Contains(r.Error.Message, "home:") {
		t.Fatalf("rotate: %d %+v, want 500 naming only the instance whose tenant is down", status, r.Error)
	}
	if v := a.tenant.Snapshot().Secret(secretName).Versions; len(v) != 2 {
		t.Errorf("home's secret has %d versions, want the renewal stored (2)", len(v))
	}
	if a.tenant.Stats().FaultsFired == 0 {
		t.Error("the throttled tenant was never throttled: the test proves nothing")
	}
}
