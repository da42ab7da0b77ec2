package config

import (
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/ncrontab"
)

// fuzzedSettings are the settings FuzzLoad fills, in the order of its arguments. EnvARMEndpoint, checked
// like EnvGraphEndpoint, gets the graph argument too (a new argument would invalidate the seed corpus).
var fuzzedSettings = []string{
	EnvKeyVaultURL, EnvDisplayName, EnvUniqueName, EnvPermissionLevel, EnvSecretName, EnvSecretLifetime,
	EnvSecretRenewBefore, EnvSecretOverlap, EnvRemediate, EnvGraphEndpoint, EnvComplianceSched, EnvRotationSched,
	EnvRefreshSiteIDs, EnvClientID, EnvPort,
}

// alsoFuzzed are settings that take the value of a fuzzed one.
var alsoFuzzed = map[string]string{EnvARMEndpoint: EnvGraphEndpoint}

// The contract's patterns, as regular expressions: an oracle independent of Load's hand-written checks.
var (
	oracleUniqueName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$`)
	oracleSecretName = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
)

// FuzzLoad fuzzes the settings parser with a getenv that answers fuzzed values. Load never panics and is
// deterministic; a valid configuration satisfies every documented constraint; an invalid one is an *Error
// whose every SettingError names a known setting and what it expects, and whose message names them all.
// Seeds: testdata/fuzz/FuzzLoad and the cases below.
func FuzzLoad(f *testing.F) {
	f.Add(vault, "", "", "", "", "", "", "", "", "", "", "", "", "", "")
	f.Add(vault, "SCEPman Prod", "scepman-prod.1", "2", "scepman-secret", "90", "10", "1", "TRUE", "https://graph.microsoft.us",
		"0 */5 * * * *", "0 0 3 * * 1-5", "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Web/sites/s", "7e1d9c5b-3a2f-4e8d-9c6b-1a0f2e3d4c5b", "7071")
	f.Add("http://kv", strings.Repeat("x", 121), "-x", "3", "a_b", "0", "5000", "soon", "yes", "http://graph", "* * *", "", "site", "nope", "99999")
	f.Add(" https://kv.vault.azure.net ", " ", "\t", " 1 ", "a-", "3650", "3649", "8760", "0", "https://graph.microsoft.com/", "0 0 0 29 2 *", "0 30 3 * * *", ",, ,", "", "1")
	f.Fuzz(func(t *testing.T, kv, display, unique, level, secret, lifetime, renew, overlap, remediate, graph, cs, rs, sites, client, port string) {
		values := []string{kv, display, unique, level, secret, lifetime, renew, overlap, remediate, graph, cs, rs, sites, client, port}
		getenv := func(name string) string {
			if other, ok := alsoFuzzed[name]; ok {
				name = other
			}
			if i := slices.Index(fuzzedSettings, name); i >= 0 {
				return values[i]
			}
			return ""
		}
		c, err := Load(getenv)
		c2, err2 := Load(getenv)
		if !reflect.DeepEqual(c, c2) || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("Load is not deterministic: %+v %v / %+v %v", c, err, c2, err2)
		}
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Settings) == 0 || !IsConfigError(err) {
				t.Fatalf("error %T %v: want an *Error listing the invalid settings", err, err)
			}
			for _, se := range ce.Settings {
				_, also := alsoFuzzed[se.Name]
				if !(slices.Contains(fuzzedSettings, se.Name) || also) || se.Expected == "" || !strings.Contains(err.Error(), se.Name) {
					t.Fatalf("setting error %+v in %q: want a known setting, what it expects, named in the message", se, err)
				}
			}
			return
		}
		checkValid(t, c)
	})
}

// checkValid checks every documented constraint of a configuration that Load accepted.
func checkValid(t *testing.T, c Config) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("accepted %+v, but "+format, append([]any{c}, args...)...)
	}
	if !strings.HasPrefix(c.KeyVaultURL, "https://") || !strings.HasSuffix(c.KeyVaultURL, "/") || strings.Count(c.KeyVaultURL, "/") != 3 {
		fail("the vault URL %q is not https://host/", c.KeyVaultURL)
	}
	if c.DisplayName == "" || len(c.DisplayName) > 120 {
		fail("display name %q", c.DisplayName)
	}
	if !oracleUniqueName.MatchString(c.UniqueName) {
		fail("uniqueName %q does not match %s", c.UniqueName, oracleUniqueName)
	}
	if !oracleSecretName.MatchString(c.SecretName) {
		fail("secret name %q does not match %s", c.SecretName, oracleSecretName)
	}
	if c.PermissionLevel < 0 || c.PermissionLevel > MaxPermissionLevel {
		fail("permission level %d", c.PermissionLevel)
	}
	const day = 24 * time.Hour
	if c.SecretLifetime < day || c.SecretLifetime > 3650*day || c.SecretLifetime%day != 0 {
		fail("lifetime %s", c.SecretLifetime)
	}
	if c.RenewBefore < 0 || c.RenewBefore >= c.SecretLifetime {
		fail("renew before %s with lifetime %s", c.RenewBefore, c.SecretLifetime)
	}
	if c.Overlap < 0 || (c.Overlap > 0 && c.Overlap >= c.SecretLifetime) {
		fail("overlap %s with lifetime %s", c.Overlap, c.SecretLifetime)
	}
	if !strings.HasPrefix(c.GraphEndpoint, "https://") || strings.HasSuffix(c.GraphEndpoint, "/") {
		fail("graph endpoint %q", c.GraphEndpoint)
	}
	if !strings.HasPrefix(c.ARMEndpoint, "https://") || strings.HasSuffix(c.ARMEndpoint, "/") || strings.ContainsAny(c.ARMEndpoint[len("https://"):], "/?#@") {
		fail("ARM endpoint %q", c.ARMEndpoint)
	}
	for _, s := range []string{c.ComplianceSched, c.RotationSched} {
		if _, err := ncrontab.Parse(s); err != nil {
			fail("schedule %q: %v", s, err)
		}
	}
	for _, id := range c.RefreshSiteIDs {
		if !siteIDRE.MatchString(id) {
			fail("site id %q", id)
		}
	}
	if c.ClientID != "" && !isGUID(c.ClientID) {
		fail("client id %q", c.ClientID)
	}
}
