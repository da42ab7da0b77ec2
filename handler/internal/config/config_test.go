package config

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

const vault = "https://contoso-kv.vault.azure.net/"

func TestLoadDefaults(t *testing.T) {
	got, err := Load(env(map[string]string{EnvKeyVaultURL: vault}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Config{
		KeyVaultURL:     vault,
		DisplayName:     "SCEPman",
		UniqueName:      "scepman",
		PermissionLevel: 0,
		SecretName:      "AppConfig--AuthConfig--ApplicationKey",
		SecretLifetime:  180 * 24 * time.Hour,
		RenewBefore:     30 * 24 * time.Hour,
		Overlap:         48 * time.Hour,
		GraphEndpoint:   "https://graph.microsoft.com",
		ARMEndpoint:     "https://management.azure.com",
		ComplianceSched: "0 0 */6 * * *",
		RotationSched:   "0 30 3 * * *",
		Consent:         ConsentGrant,
		AuthorityHost:   "https://login.microsoftonline.com",
	}
	want.Instances = []Instance{{Name: DefaultInstance, DisplayName: want.DisplayName, UniqueName: want.UniqueName,
		KeyVaultURL: want.KeyVaultURL, SecretName: want.SecretName, Consent: ConsentGrant}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestLoadValid(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(Config) bool
	}{
		{"vault URL without slash is normalised", map[string]string{EnvKeyVaultURL: "https://Contoso-KV.vault.azure.net"},
			func(c Config) bool { return c.KeyVaultURL == vault }},
		{"national cloud vault", map[string]string{EnvKeyVaultURL: "https://kv.vault.usgovcloudapi.net/"},
			func(c Config) bool { return c.KeyVaultURL == "https://kv.vault.usgovcloudapi.net/" }},
		{"display name", map[string]string{EnvDisplayName: "SCEPman Prod"}, func(c Config) bool { return c.DisplayName == "SCEPman Prod" }},
		{"unique name", map[string]string{EnvUniqueName: "scepman-prod.1"}, func(c Config) bool { return c.UniqueName == "scepman-prod.1" }},
		{"level 2", map[string]string{EnvPermissionLevel: "2"}, func(c Config) bool { return c.PermissionLevel == 2 }},
		{"secret name", map[string]string{EnvSecretName: "scepman-secret"}, func(c Config) bool { return c.SecretName == "scepman-secret" }},
		{"lifetime", map[string]string{EnvSecretLifetime: "90"}, func(c Config) bool { return c.SecretLifetime == 90*24*time.Hour }},
		{"renew before", map[string]string{EnvSecretRenewBefore: "10"}, func(c Config) bool { return c.RenewBefore == 10*24*time.Hour }},
		{"renew before zero", map[string]string{EnvSecretRenewBefore: "0"}, func(c Config) bool { return c.RenewBefore == 0 }},
		{"overlap", map[string]string{EnvSecretOverlap: "1"}, func(c Config) bool { return c.Overlap == time.Hour }},
		{"remediate true", map[string]string{EnvRemediate: "TRUE"}, func(c Config) bool { return c.Remediate }},
		{"remediate false", map[string]string{EnvRemediate: "false"}, func(c Config) bool { return !c.Remediate }},
		{"graph endpoint", map[string]string{EnvGraphEndpoint: "https://graph.microsoft.us/"}, func(c Config) bool { return c.GraphEndpoint == "https://graph.microsoft.us" }},
		{"ARM endpoint of Azure Government", map[string]string{EnvARMEndpoint: "https://management.usgovcloudapi.net/"},
			func(c Config) bool { return c.ARMEndpoint == "https://management.usgovcloudapi.net" }},
		{"ARM endpoint of Azure China", map[string]string{EnvARMEndpoint: " https://management.chinacloudapi.cn "},
			func(c Config) bool { return c.ARMEndpoint == "https://management.chinacloudapi.cn" }},
		{"ARM endpoint blank is the default", map[string]string{EnvARMEndpoint: "  "},
			func(c Config) bool { return c.ARMEndpoint == DefaultARMEndpoint }},
		{"consent by an administrator", map[string]string{EnvConsent: "admin"},
			func(c Config) bool { return c.Consent == ConsentAdmin }},
		{"consent mode in capitals", map[string]string{EnvConsent: " Grant "},
			func(c Config) bool { return c.Consent == ConsentGrant }},
		{"authority host of Azure Government", map[string]string{EnvAuthorityHost: "https://login.microsoftonline.us/"},
			func(c Config) bool { return c.AuthorityHost == "https://login.microsoftonline.us" }},
		{"schedules", map[string]string{EnvComplianceSched: "0 */5 * * * *", EnvRotationSched: "0 0 1 * * 1-5"},
			func(c Config) bool { return c.ComplianceSched == "0 */5 * * * *" && c.RotationSched == "0 0 1 * * 1-5" }},
		{"refresh sites", map[string]string{EnvRefreshSiteIDs: " /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Web/sites/scepman ,/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Web/sites/scepman/slots/staging,"},
			func(c Config) bool {
				return len(c.RefreshSiteIDs) == 2 && strings.HasSuffix(c.RefreshSiteIDs[1], "/slots/staging")
			}},
		{"user-assigned identity", map[string]string{EnvClientID: "11111111-2222-3333-4444-555555555555"}, func(c Config) bool { return c.ClientID != "" }},
		{"port", map[string]string{EnvPort: "40123"}, func(c Config) bool { return c.Port == "40123" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]string{EnvKeyVaultURL: vault}
			for k, v := range tt.env {
				m[k] = v
			}
			c, err := Load(env(m))
			if err != nil {
				t.Fatalf("Load(%v): %v", tt.env, err)
			}
			if !tt.check(c) {
				t.Errorf("Load(%v) = %+v: check failed", tt.env, c)
			}
		})
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		variable string
		expected string // part of the message that says what was expected
	}{
		{"vault missing", map[string]string{EnvKeyVaultURL: ""}, EnvKeyVaultURL, "is not set: expected the vault's https URL"},
		{"vault http", map[string]string{EnvKeyVaultURL: "http://kv.vault.azure.net/"}, EnvKeyVaultURL, "https URL"},
		{"vault with path", map[string]string{EnvKeyVaultURL: "https://kv.vault.azure.net/secrets/x"}, EnvKeyVaultURL, "https URL"},
		{"vault not a URL", map[string]string{EnvKeyVaultURL: "contoso-kv"}, EnvKeyVaultURL, "https URL"},
		{"display name too long", map[string]string{EnvDisplayName: strings.Repeat("x", 121)}, EnvDisplayName, "at most 120"},
		{"unique name with space", map[string]string{EnvUniqueName: "scep man"}, EnvUniqueName, "letters, digits"},
		{"level 3", map[string]string{EnvPermissionLevel: "3"}, EnvPermissionLevel, "0, 1 or 2"},
		{"level word", map[string]string{EnvPermissionLevel: "high"}, EnvPermissionLevel, "0, 1 or 2"},
		{"secret name with dot", map[string]string{EnvSecretName: "app.key"}, EnvSecretName, "Key Vault secret name"},
		{"lifetime zero", map[string]string{EnvSecretLifetime: "0"}, EnvSecretLifetime, "1 to 3650"},
		{"lifetime fraction", map[string]string{EnvSecretLifetime: "1.5"}, EnvSecretLifetime, "whole number"},
		{"renew negative", map[string]string{EnvSecretRenewBefore: "-1"}, EnvSecretRenewBefore, "0 to 3649"},
		{"renew beyond lifetime", map[string]string{EnvSecretLifetime: "30", EnvSecretRenewBefore: "30"}, EnvSecretRenewBefore, "fewer days than APPREG_SECRET_LIFETIME_DAYS"},
		{"default renew beyond short lifetime", map[string]string{EnvSecretLifetime: "20"}, EnvSecretRenewBefore, "fewer days than"},
		{"overlap word", map[string]string{EnvSecretOverlap: "two days"}, EnvSecretOverlap, "whole number of hours"},
		{"overlap beyond lifetime", map[string]string{EnvSecretLifetime: "2", EnvSecretRenewBefore: "1", EnvSecretOverlap: "48"}, EnvSecretOverlap, "fewer hours than the secret lifetime"},
		{"remediate yes", map[string]string{EnvRemediate: "yes"}, EnvRemediate, "true or false"},
		{"graph http", map[string]string{EnvGraphEndpoint: "http://graph.microsoft.com"}, EnvGraphEndpoint, "https root URL"},
		{"graph with version", map[string]string{EnvGraphEndpoint: "https://graph.microsoft.com/v1.0"}, EnvGraphEndpoint, "without a path"},
		{"consent mode unknown", map[string]string{EnvConsent: "never"}, EnvConsent, `"grant"`},
		{"authority host http", map[string]string{EnvAuthorityHost: "http://login.microsoftonline.com"}, EnvAuthorityHost, "an https root URL"},
		{"authority host with a tenant", map[string]string{EnvAuthorityHost: "https://login.microsoftonline.com/contoso.onmicrosoft.com"}, EnvAuthorityHost, "without a path"},
		{"ARM http", map[string]string{EnvARMEndpoint: "http://management.azure.com"}, EnvARMEndpoint, "an https root URL without a path, such as https://management.azure.com"},
		{"ARM with a path", map[string]string{EnvARMEndpoint: "https://management.azure.com/subscriptions"}, EnvARMEndpoint, "without a path"},
		{"ARM with a query", map[string]string{EnvARMEndpoint: "https://management.azure.com/?api-version=2022-03-01"}, EnvARMEndpoint, "https root URL"},
		{"ARM host only", map[string]string{EnvARMEndpoint: "management.azure.com"}, EnvARMEndpoint, "https root URL"},
		{"ARM with a user", map[string]string{EnvARMEndpoint: "https://me@management.azure.com"}, EnvARMEndpoint, "https root URL"},
		{"ARM not a URL", map[string]string{EnvARMEndpoint: "https://%zz"}, EnvARMEndpoint, "management.usgovcloudapi.net for Azure Government"},
		{"compliance five fields", map[string]string{EnvComplianceSched: "0 */6 * * *"}, EnvComplianceSched, "six fields"},
		{"rotation five fields", map[string]string{EnvRotationSched: "30 3 * * *"}, EnvRotationSched, "six fields"},
		{"refresh site not an id", map[string]string{EnvRefreshSiteIDs: "scepman.azurewebsites.net"}, EnvRefreshSiteIDs, "App Service resource ids"},
		{"client id not a guid", map[string]string{EnvClientID: "my-identity"}, EnvClientID, "GUID"},
		{"port word", map[string]string{EnvPort: "http"}, EnvPort, "TCP port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]string{EnvKeyVaultURL: vault}
			for k, v := range tt.env {
				m[k] = v
			}
			_, err := Load(env(m))
			if err == nil {
				t.Fatalf("Load(%v) = nil error, want one naming %s", tt.env, tt.variable)
			}
			var se *SettingError
			if !errors.As(err, &se) {
				t.Fatalf("Load error %T does not hold a *SettingError", err)
			}
			var ce *Error
			errors.As(err, &ce)
			found := false
			for _, s := range ce.Settings {
				if s.Name == tt.variable && strings.Contains(s.Error(), tt.expected) {
					found = true
				}
			}
			if !found {
				t.Errorf("Load(%v) error = %q, want it to name %s and say %q", tt.env, err, tt.variable, tt.expected)
			}
			if !IsConfigError(err) {
				t.Errorf("IsConfigError(%v) = false", err)
			}
		})
	}
}

func TestLoadReportsEverySetting(t *testing.T) {
	_, err := Load(env(map[string]string{EnvPermissionLevel: "9", EnvRemediate: "maybe"}))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Load error = %v, want *Error", err)
	}
	var names []string
	for _, s := range ce.Settings {
		names = append(names, s.Name)
	}
	want := []string{EnvKeyVaultURL, EnvPermissionLevel, EnvRemediate}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("invalid settings named = %v, want %v", names, want)
	}
}

// The hand-written name checks must accept exactly what the patterns of the contract describe.
func TestNameChecksMatchTheirPatterns(t *testing.T) {
	uniqueRE := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$`)
	secretRE := regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	inputs := []string{"", "a", "-a", ".a", "_a", "a-", "a.b_c-d", "scep man", "Ä", "aÄ", "a/b", "a\x00",
		strings.Repeat("a", 119), strings.Repeat("a", 120), strings.Repeat("a", 121),
		strings.Repeat("b", 126), strings.Repeat("b", 127), strings.Repeat("b", 128),
		"AppConfig--AuthConfig--ApplicationKey", "9-9", "x_y"}
	for _, in := range inputs {
		if got, want := validUniqueName(in), uniqueRE.MatchString(in); got != want {
			t.Errorf("validUniqueName(%q) = %v, want %v", in, got, want)
		}
		if got, want := validSecretName(in), secretRE.MatchString(in); got != want {
			t.Errorf("validSecretName(%q) = %v, want %v", in, got, want)
		}
	}
}
