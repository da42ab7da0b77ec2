package emulator

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var versionedIDRE = regexp.MustCompile(`^https://appreg-emulated\.vault\.azure\.net/secrets/([0-9a-zA-Z-]+)/([0-9a-f]{32})$`)

func TestKeyVaultChallengeThenSuccess(t *testing.T) {
	created := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	h := start(t, Options{Now: func() time.Time { return created }})

	// The SDK's first request carries no token and an empty body.
	r := h.vault(http.MethodPut, "/secrets/AppConfig--AuthConfig--ApplicationKey", "", nil)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated PUT: status %d, want 401: %s", r.status, r.body)
	}
	wantChallenge := `Bearer authorization="https://login.microsoftonline.com/` + h.tenant.TenantID() + `", resource="https://vault.azure.net"`
	if got := r.header.Get("WWW-Authenticate"); got != wantChallenge {
		t.Errorf("WWW-Authenticate = %q, want %q", got, wantChallenge)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || r.errorCode(t) != "Unauthorized" {
		t.Errorf("challenge answer %q %s: want a JSON error Unauthorized", ct, r.body)
	}

	tok := h.token(AudienceVault)
	r = h.vault(http.MethodPut, "/secrets/AppConfig--AuthConfig--ApplicationKey", tok, fixture(t, "secret_set.json"))
	if r.status != http.StatusOK {
		t.Fatalf("PUT: status %d, want 200: %s", r.status, r.body)
	}
	bundle := r.json(t)
	m := versionedIDRE.FindStringSubmatch(str(bundle, "id"))
	if m == nil || m[1] != "AppConfig--AuthConfig--ApplicationKey" {
		t.Fatalf("id %q is not https://{vault}/secrets/{name}/{32-hex version}", bundle["id"])
	}
	version := m[2]
	attrs, _ := bundle["attributes"].(map[string]any)
	for key, want := range map[string]float64{"created": float64(created.Unix()), "updated": float64(created.Unix()), "exp": 1800000000} {
		if attrs[key] != want {
			t.Errorf("attributes.%s = %v, want integer %v", key, attrs[key], want)
		}
	}
	if attrs["recoveryLevel"] == nil || attrs["enabled"] != true {
		t.Errorf("attributes %v lack recoveryLevel or enabled", attrs)
	}
	if str(bundle, "value") != "s3cr3t-value-from-fixture" || str(bundle, "contentType") != "text/plain" {
		t.Errorf("bundle %v: want the value and content type", bundle)
	}
	if !slices.Contains(h.tenant.IssuedSecrets(), "s3cr3t-value-from-fixture") {
		t.Error("the stored value is not in IssuedSecrets")
	}

	for _, path := range []string{"/secrets/AppConfig--AuthConfig--ApplicationKey/", "/secrets/AppConfig--AuthConfig--ApplicationKey", "/secrets/AppConfig--AuthConfig--ApplicationKey/" + version} {
		r := h.vault(http.MethodGet, path, tok, nil)
		if r.status != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200: %s", path, r.status, r.body)
			continue
		}
		if got := r.json(t); str(got, "id") != str(bundle, "id") || got["tags"] == nil {
			t.Errorf("GET %s = %v, want the stored version with tags", path, got)
		}
	}

	st := h.tenant.Stats()
	if got := st.Service(ServiceKeyVault); got.Challenges != 1 || got.Writes != 1 || got.Applied != 1 {
		t.Errorf("keyvault stats %+v, want 1 challenge, 1 write, 1 applied", got)
	}
	if st.APIVersions["keyvault 2026-04-01"] == 0 {
		t.Errorf("APIVersions %v lack keyvault 2026-04-01", st.APIVersions)
	}
}

func TestKeyVaultErrors(t *testing.T) {
	h := start(t, Options{})
	tok := h.token(AudienceVault)
	graphTok := h.graphToken()
	tests := []struct {
		name       string
		method     string
		path       string
		token      string
		body       []byte
		wantStatus int
		wantCode   string
	}{
		{"missing secret", http.MethodGet, "/secrets/nope", tok, nil, 404, "SecretNotFound"},
		{"missing version", http.MethodGet, "/secrets/nope/0123456789abcdef0123456789abcdef", tok, nil, 404, "SecretNotFound"},
		{"invalid name", http.MethodPut, "/secrets/bad_name", tok, []byte(`{"value":"x"}`), 400, "BadParameter"},
		{"no value", http.MethodPut, "/secrets/good", tok, []byte(`{"contentType":"x"}`), 400, "BadParameter"},
		{"not json", http.MethodPut, "/secrets/good", tok, []byte(`value=x`), 400, "BadParameter"},
		{"no api-version", http.MethodGet, "/secrets/good?api-version=", tok, nil, 400, "BadParameter"},
		{"graph token", http.MethodGet, "/secrets/good", graphTok, nil, 401, "Unauthorized"},
		{"forged token", http.MethodGet, "/secrets/good", tok[:len(tok)-4] + "AAAA", nil, 401, "Unauthorized"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.vault(tc.method, tc.path, tc.token, tc.body)
			if r.status != tc.wantStatus || r.errorCode(t) != tc.wantCode {
				t.Errorf("status %d code %q, want %d %q: %s", r.status, r.errorCode(t), tc.wantStatus, tc.wantCode, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if r.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestKeyVaultRBAC(t *testing.T) {
	tests := []struct {
		name                       string
		roles                      []string
		wantSet, wantGet, wantList int
	}{
		{"officer", []string{VaultRoleSecretsOfficer}, 200, 200, 200},
		{"administrator", []string{VaultRoleAdministrator}, 200, 200, 200},
		{"secrets user", []string{VaultRoleSecretsUser}, 403, 200, 200},
		{"reader", []string{VaultRoleReader}, 403, 403, 200},
		{"none", []string{}, 403, 403, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{})
			tok := h.token(AudienceVault)
			if r := h.vault(http.MethodPut, "/secrets/seeded", tok, []byte(`{"value":"v1"}`)); r.status != 200 {
				t.Fatalf("seeding: %d %s", r.status, r.body)
			}
			h.tenant.SetVaultRoles(tc.roles...)
			check := func(what string, r reply, want int) {
				t.Helper()
				if r.status != want {
					t.Errorf("%s: status %d, want %d: %s", what, r.status, want, r.body)
				}
				if r.status == 403 {
					body := r.json(t)
					e, _ := body["error"].(map[string]any)
					inner, _ := e["innererror"].(map[string]any)
					if str(e, "code") != "Forbidden" || str(inner, "code") != "ForbiddenByRbac" ||
						!strings.HasPrefix(str(e, "message"), "Caller is not authorized to perform action on resource.") {
						t.Errorf("%s: 403 body %s, want Forbidden/ForbiddenByRbac", what, r.body)
					}
				}
			}
			check("set", h.vault(http.MethodPut, "/secrets/seeded", tok, []byte(`{"value":"v2"}`)), tc.wantSet)
			check("get", h.vault(http.MethodGet, "/secrets/seeded/", tok, nil), tc.wantGet)
			check("list versions", h.vault(http.MethodGet, "/secrets/seeded/versions", tok, nil), tc.wantList)
		})
	}
}

func TestKeyVaultVersionsPaging(t *testing.T) {
	h := start(t, Options{})
	tok := h.token(AudienceVault)
	var ids []string
	for i := range 5 {
		r := h.vault(http.MethodPut, "/secrets/paged", tok, mustJSON(t, map[string]any{"value": "value-" + string(rune('a'+i))}))
		if r.status != 200 {
			t.Fatalf("PUT %d: %d %s", i, r.status, r.body)
		}
		ids = append(ids, str(r.json(t), "id"))
	}
	tests := []struct {
		name      string
		query     string
		wantPages int
	}{
		{"default page size", "", 3},
		{"maxresults 1", "&maxresults=1", 5},
		{"maxresults 25", "&maxresults=25", 3}, // the emulator's page size still applies
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := h.tenant.VaultURL() + "secrets/paged/versions?api-version=7.4" + tc.query
			var got []string
			pages := 0
			for next != "" {
				pages++
				r := h.call(http.MethodGet, next, tok, nil, nil)
				if r.status != 200 {
					t.Fatalf("GET %s: %d %s", next, r.status, r.body)
				}
				body := r.json(t)
				for _, v := range body["value"].([]any) {
					item := v.(map[string]any)
					if item["value"] != nil {
						t.Errorf("a listed version carries its value")
					}
					got = append(got, str(item, "id"))
				}
				next = str(body, "nextLink")
				if next != "" && (!strings.HasPrefix(next, "https://appreg-emulated.vault.azure.net/secrets/paged/versions?") || !strings.Contains(next, "api-version=7.4")) {
					t.Fatalf("nextLink %q is not absolute with api-version", next)
				}
			}
			if pages != tc.wantPages || !slices.Equal(got, ids) {
				t.Errorf("%d pages with %q, want %d pages with %q", pages, got, tc.wantPages, ids)
			}
		})
	}
}

func TestKeyVaultUpdateAndList(t *testing.T) {
	h := start(t, Options{})
	tok := h.token(AudienceVault)
	r := h.vault(http.MethodPut, "/secrets/one", tok, []byte(`{"value":"v1","tags":{"keyId":"k1"}}`))
	id := str(r.json(t), "id")
	version := id[strings.LastIndex(id, "/")+1:]
	r = h.vault(http.MethodPatch, "/secrets/one/"+version, tok, []byte(`{"attributes":{"enabled":false}}`))
	if r.status != 200 || r.json(t)["value"] != nil {
		t.Fatalf("PATCH: %d %s, want 200 without value", r.status, r.body)
	}
	if r := h.vault(http.MethodGet, "/secrets/one/"+version, tok, nil); r.status != 403 {
		t.Errorf("GET of a disabled version: %d, want 403", r.status)
	}
	r = h.vault(http.MethodGet, "/secrets", tok, nil)
	if r.status != 200 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if items := r.json(t)["value"].([]any); len(items) != 1 || str(items[0].(map[string]any), "id") != h.tenant.VaultURL()+"secrets/one" {
		t.Errorf("list = %s, want the one secret without version", r.body)
	}
	snap := h.tenant.Snapshot()
	if cur := snap.Secret("one").Current(); cur == nil || cur.Enabled || cur.Tags["keyId"] != "k1" {
		t.Errorf("snapshot current version %+v, want disabled with the keyId tag", cur)
	}
}
