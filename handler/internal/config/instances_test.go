package config

import (
	"errors"
	"strings"
	"testing"
)

const (
	vaultA  = "https://contoso-kv.vault.azure.net/"
	tenantB = "7b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
)

func loadWith(t *testing.T, env map[string]string) (Config, error) {
	t.Helper()
	return Load(func(k string) string { return env[k] })
}

func TestInstancesUnsetIsTheDefault(t *testing.T) {
	c, err := loadWith(t, map[string]string{EnvKeyVaultURL: vaultA, EnvPermissionLevel: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.InstancesSet || len(c.Instances) != 1 {
		t.Fatalf("instances = %+v set=%v, want the one default instance", c.Instances, c.InstancesSet)
	}
	in := c.Instances[0]
	if in.Name != DefaultInstance || in.TenantID != "" || in.KeyVaultURL != vaultA || in.PermissionLevel != 1 ||
		in.UniqueName != DefaultUniqueName || in.SecretName != DefaultSecretName || in.Consent != ConsentGrant {
		t.Errorf("default instance = %+v, want the settings", in)
	}
}

func TestInstances(t *testing.T) {
	c, err := loadWith(t, map[string]string{
		EnvKeyVaultURL: vaultA, EnvFederatedAppID: "0f1e2d3c-4b5a-4697-8877-665544332211",
		EnvInstances: `[{"name":"home"},
			{"name":"contoso","tenantId":"` + tenantB + `","secretName":"contoso-key","permissionLevel":2,"consent":"admin",
			 "keyVaultUrl":"https://other-kv.vault.azure.net","refreshSiteIds":["/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/g/providers/Microsoft.Web/sites/s"]}]`,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !c.InstancesSet || len(c.Instances) != 2 {
		t.Fatalf("instances = %+v, want two", c.Instances)
	}
	home, contoso := c.Instances[0], c.Instances[1]
	if home.Name != "home" || home.TenantID != "" || home.KeyVaultURL != vaultA || home.SecretName != DefaultSecretName {
		t.Errorf("home = %+v, want the defaults", home)
	}
	if contoso.TenantID != tenantB || contoso.SecretName != "contoso-key" || contoso.PermissionLevel != 2 || contoso.Consent != ConsentAdmin ||
		contoso.KeyVaultURL != "https://other-kv.vault.azure.net/" || len(contoso.RefreshSiteIDs) != 1 {
		t.Errorf("contoso = %+v, want its own settings", contoso)
	}
}

func TestInvalidInstances(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		setting   string // the name the error must carry
		expected  string // part of what it says is expected
		noDefault bool   // APPREG_KEY_VAULT_URL unset
	}{
		{name: "not JSON", env: map[string]string{EnvInstances: `[{"name":`}, setting: EnvInstances, expected: "a JSON array of objects"},
		{name: "not an array", env: map[string]string{EnvInstances: `{"name":"a"}`}, setting: EnvInstances, expected: "found a JSON object where"},
		{name: "not objects", env: map[string]string{EnvInstances: `["contoso"]`}, setting: EnvInstances, expected: "found a JSON string where"},
		{name: "a key of the wrong type", env: map[string]string{EnvInstances: `[{"name":"a","permissionLevel":"high"}]`}, setting: EnvInstances, expected: `"permissionLevel" is a JSON string`},
		{name: "two values", env: map[string]string{EnvInstances: `[{"name":"a"}] [{"name":"b"}]`}, setting: EnvInstances, expected: "more than one JSON value"},
		{name: "empty array", env: map[string]string{EnvInstances: `[]`}, setting: EnvInstances, expected: "at least one instance"},
		{name: "unknown key", env: map[string]string{EnvInstances: `[{"name":"a","vault":"x"}]`}, setting: EnvInstances, expected: "the keys are"},
		{name: "no name", env: map[string]string{EnvInstances: `[{"tenantId":"` + tenantB + `"}]`}, setting: EnvInstances + "[0].name", expected: "1 to 40 characters"},
		{name: "name with capitals", env: map[string]string{EnvInstances: `[{"name":"Contoso"}]`}, setting: EnvInstances + "[0].name", expected: "a-z, 0-9"},
		{name: "name too long", env: map[string]string{EnvInstances: `[{"name":"` + strings.Repeat("a", 41) + `"}]`}, setting: EnvInstances + "[0].name", expected: "1 to 40"},
		{name: "name repeated", env: map[string]string{EnvInstances: `[{"name":"a","secretName":"x"},{"name":"a","secretName":"y"}]`}, setting: EnvInstances + "[1] (a).name", expected: "no other instance"},
		{name: "same tenant and uniqueName", env: map[string]string{EnvInstances: `[{"name":"a","secretName":"x"},{"name":"b","secretName":"y"}]`},
			setting: EnvInstances + "[1] (b).uniqueName", expected: `instance "a"`},
		{name: "same vault and secret", env: map[string]string{EnvInstances: `[{"name":"a"},{"name":"b","tenantId":"` + tenantB + `"}]`},
			setting: EnvInstances + "[1] (b).secretName", expected: `instance "a"`},
		{name: "no vault", noDefault: true, env: map[string]string{EnvInstances: `[{"name":"a"}]`}, setting: EnvInstances + "[0] (a).keyVaultUrl", expected: "a vault for its secret"},
		{name: "bad tenant", env: map[string]string{EnvInstances: `[{"name":"a","tenantId":"contoso.onmicrosoft.com"}]`}, setting: EnvInstances + "[0] (a).tenantId", expected: "GUID"},
		{name: "bad level", env: map[string]string{EnvInstances: `[{"name":"a","permissionLevel":3}]`}, setting: EnvInstances + "[0] (a).permissionLevel", expected: "0, 1 or 2"},
		{name: "bad consent", env: map[string]string{EnvInstances: `[{"name":"a","consent":"never"}]`}, setting: EnvInstances + "[0] (a).consent", expected: `"grant" or "admin"`},
		{name: "bad federated app", env: map[string]string{EnvInstances: `[{"name":"a"}]`, EnvFederatedAppID: "not-a-guid"}, setting: EnvFederatedAppID, expected: "GUID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{EnvKeyVaultURL: vaultA}
			if tt.noDefault {
				delete(env, EnvKeyVaultURL)
			}
			for k, v := range tt.env {
				env[k] = v
			}
			_, err := loadWith(t, env)
			var se *SettingError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a SettingError", err)
			}
			if !strings.Contains(err.Error(), tt.setting) || !strings.Contains(err.Error(), tt.expected) {
				t.Errorf("error %q does not name %q with %q", err, tt.setting, tt.expected)
			}
			if strings.Contains(err.Error(), "Go value") || strings.Contains(err.Error(), "config.") {
				t.Errorf("error %q speaks of Go types, not of the setting", err)
			}
		})
	}
}
