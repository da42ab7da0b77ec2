package funchost

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

func TestInstanceTenants(t *testing.T) {
	const home = "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
	const a, b = "3f2e1d0c-9b8a-4765-8432-10fedcba9876", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	tests := []struct {
		name    string
		raw     string
		want    []tenantInstances
		vaults  [][2]string
		wantErr bool
	}{
		{name: "home only", raw: `[{"name":"x"},{"name":"y","tenantId":"` + strings.ToUpper(home) + `"}]`,
			want: []tenantInstances{{"", []string{"x", "y"}}}},
		{name: "two customers and home", raw: `[{"name":"c1","tenantId":"` + a + `"},{"name":"h"},{"name":"c2","tenantId":"` + b + `"},{"name":"c3","tenantId":"` + a + `"}]`,
			want: []tenantInstances{{a, []string{"c1", "c3"}}, {"", []string{"h"}}, {b, []string{"c2"}}}},
		{name: "vaults", raw: `[{"name":"x","keyVaultUrl":"https://v.vault.azure.net/"},{"name":"y"}]`,
			want: []tenantInstances{{"", []string{"x", "y"}}}, vaults: [][2]string{{"x", "https://v.vault.azure.net/"}}},
		{name: "not JSON", raw: `[{"name":`, wantErr: true},
		{name: "not an array", raw: `{"name":"x"}`, wantErr: true},
		{name: "empty", raw: `[]`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, vaults, err := instanceTenants(tt.raw, home)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want one: %v", err, tt.wantErr)
			}
			if !slices.EqualFunc(got, tt.want, func(x, y tenantInstances) bool {
				return x.tenantID == y.tenantID && slices.Equal(x.names, y.names)
			}) {
				t.Errorf("groups = %v, want %v", got, tt.want)
			}
			if !slices.Equal(vaults, tt.vaults) {
				t.Errorf("vaults = %v, want %v", vaults, tt.vaults)
			}
		})
	}
}

// envOf asks the fake handler for its environment.
func envOf(t *testing.T, h *running) map[string]string {
	t.Helper()
	resp, body := do(t, http.MethodGet, h.URL()+"/api/env", "", nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("GET /api/env = %d %s", resp.StatusCode, body)
	}
	var e echoed
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	return e.Env
}

// TestInstancesGrowTheEmulatedWorld runs funchost on the real emulated tenant with APPREG_INSTANCES.
func TestInstancesGrowTheEmulatedWorld(t *testing.T) {
	const local = `{"IsEncrypted":false,"Values":{"APPREG_KEY_VAULT_URL":""}}`
	const c1, c2 = "3f2e1d0c-9b8a-4765-8432-10fedcba9876", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	tests := []struct {
		name      string
		instances string // "" unset
		tenants   []string
		federated bool
		lines     []string
	}{
		{name: "unset: one tenant as today", tenants: []string{emulator.DefaultTenantID}},
		{name: "home instances only", instances: `[{"name":"a","secretName":"a"},{"name":"b","secretName":"b"}]`,
			tenants: []string{emulator.DefaultTenantID}, lines: []string{"emulated tenant " + emulator.DefaultTenantID + " (the managed identity's own): instances a, b"}},
		{name: "two customers", instances: `[{"name":"msp","secretName":"m"},{"name":"contoso","tenantId":"` + c1 + `","secretName":"c"},` +
			`{"name":"fabrikam","tenantId":"` + c2 + `","secretName":"f"},{"name":"contoso2","tenantId":"` + c1 + `","uniqueName":"s2","secretName":"c2"}]`,
			tenants: []string{emulator.DefaultTenantID, c2, c1}, federated: true,
			lines: []string{"emulated tenant " + emulator.DefaultTenantID + " (the managed identity's own): instances msp",
				"emulated tenant " + c1 + ": instances contoso, contoso2; the federated application is consented there",
				"emulated tenant " + c2 + ": instances fabrikam; the federated application is consented there"}},
		{name: "not JSON: left to the handler", instances: `[{"name":`, tenants: []string{emulator.DefaultTenantID},
			lines: []string{"reading APPREG_INSTANCES: "}},
		{name: "a tenant id that is not a GUID", instances: `[{"name":"x","tenantId":"contoso.onmicrosoft.com"}]`,
			tenants: []string{emulator.DefaultTenantID}, federated: true, lines: []string{"emulated tenant contoso.onmicrosoft.com not added"}},
		{name: "another vault", instances: `[{"name":"x","keyVaultUrl":"https://other.vault.azure.net/"}]`,
			tenants: []string{emulator.DefaultTenantID}, lines: []string{"instance x names vault https://other.vault.azure.net/, which the emulated world does not serve"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := []string{envFake + "=1"}
			if tt.instances != "" {
				env = append(env, envInstances+"="+tt.instances)
			}
			var ten *emulator.Tenant
			h := start(t, project(t, local), env, func(o *Options) {
				o.NewTenant = func() (Tenant, error) {
					var err error
					ten, err = emulator.Start(emulator.Options{Logf: t.Logf})
					return ten, err
				}
			})
			got := envOf(t, h)
			if got := ten.Tenants(); !slices.Equal(got, tt.tenants) {
				t.Errorf("tenants = %v, want %v", got, tt.tenants)
			}
			appID := got[envFederatedAppID]
			if (appID != "") != tt.federated {
				t.Fatalf("%s = %q, want one: %v", envFederatedAppID, appID, tt.federated)
			}
			if tt.federated {
				app := ten.Snapshot().ApplicationByAppID(appID)
				if app == nil || app.DisplayName != FederatedAppName || len(app.FederatedIdentityCredentials) != 1 {
					t.Errorf("federated application %+v, want %q with a federated identity credential", app, FederatedAppName)
				}
			}
			for _, tid := range tt.tenants[1:] {
				s := ten.SnapshotOf(tid)
				sp := s.ServicePrincipalByAppID(appID)
				if sp == nil {
					t.Errorf("tenant %s: no service principal of the federated application", tid)
					continue
				}
				if n := len(s.AssignmentsOf(sp.ID)); n != len(FederatedRoles) {
					t.Errorf("tenant %s: %d assignments, want %d", tid, n, len(FederatedRoles))
				}
			}
			for _, l := range tt.lines {
				if !strings.Contains(h.log.String(), l) {
					t.Errorf("no line %q in:\n%s", l, h.log)
				}
			}
			if tt.instances == "" && strings.Contains(h.log.String(), "emulated tenant "+emulator.DefaultTenantID+" (the managed") {
				t.Errorf("a line about instances without APPREG_INSTANCES:\n%s", h.log)
			}
		})
	}
}

// TestInstancesOnAPlainTenant: a tenant that cannot grow says so; against Azure nothing is touched.
func TestInstancesOnAPlainTenant(t *testing.T) {
	const local = `{"IsEncrypted":false,"Values":{"APPREG_KEY_VAULT_URL":""}}`
	inst := envInstances + `=[{"name":"c","tenantId":"3f2e1d0c-9b8a-4765-8432-10fedcba9876"}]`
	t.Run("fake tenant", func(t *testing.T) {
		h := start(t, project(t, local), []string{envFake + "=1", inst}, func(o *Options) {
			o.NewTenant = func() (Tenant, error) { return &fakeTenant{}, nil }
		})
		if got := envOf(t, h)[envFederatedAppID]; got != "" {
			t.Errorf("%s = %q, want none", envFederatedAppID, got)
		}
		if !strings.Contains(h.log.String(), "the emulated tenant cannot add tenants: instances c") {
			t.Errorf("no line saying the tenant cannot grow:\n%s", h.log)
		}
	})
	t.Run("against Azure", func(t *testing.T) {
		h := start(t, project(t, local), []string{envFake + "=1", inst, "APPREG_KEY_VAULT_URL=https://real-kv.vault.azure.net/", envFederatedAppID + "=given"},
			func(o *Options) {
				o.NewTenant = func() (Tenant, error) { t.Error("NewTenant called against Azure"); return &fakeTenant{}, nil }
			})
		if got := envOf(t, h)[envFederatedAppID]; got != "given" {
			t.Errorf("%s = %q, want the environment's", envFederatedAppID, got)
		}
	})
}
