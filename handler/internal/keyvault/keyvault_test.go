package keyvault_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/azure"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
	"github.com/scepman-appreg/appreg/handler/internal/keyvault"
)

// newVault builds the adapter as production does, on hc.
func newVault(t *testing.T, ten *emulator.Tenant, hc *http.Client) *keyvault.Vault {
	t.Helper()
	cred, err := azure.NewCredential(os.Getenv, hc)
	if err != nil {
		t.Fatalf("NewCredential: %v", err)
	}
	v, err := keyvault.New(ten.VaultURL(), cred, hc)
	if err != nil {
		t.Fatalf("keyvault.New: %v", err)
	}
	return v
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// checkNoSecretIn fails when s holds any secret the tenant issued or stored.
func checkNoSecretIn(t *testing.T, ten *emulator.Tenant, what, s string) {
	t.Helper()
	for _, sec := range ten.IssuedSecrets() {
		if sec != "" && strings.Contains(s, sec) {
			t.Errorf("%s holds a secret issued by the tenant", what)
		}
	}
}

func TestSecretRoundTrip(t *testing.T) {
	ten := emulatortest.Start(t, emulator.Options{})
	v := newVault(t, ten, ten.HTTPClient())
	ctx := ctxFor(t)

	_, err := v.Secret(ctx, "app-key")
	if !errors.Is(err, appreg.ErrNotFound) {
		t.Fatalf("Secret of an absent secret: err = %v, want ErrNotFound", err)
	}
	if st := ten.Stats().Service(emulator.ServiceKeyVault); st.Challenges != 1 {
		t.Errorf("Key Vault challenges after the first request = %d, want 1", st.Challenges)
	}

	exp := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	const value = "s3cr3t-value-from-addPassword"
	set, err := v.SetSecret(ctx, appreg.NewSecret{
		Name: "app-key", Value: value, ContentType: "text/plain", Expires: exp,
		Tags: map[string]string{appreg.TagAppID: "app-1", appreg.TagKeyID: "key-1"},
	})
	if err != nil {
		t.Fatalf("SetSecret: %v", err)
	}
	wantPrefix := ten.VaultURL() + "secrets/app-key/"
	if !strings.HasPrefix(set.ID, wantPrefix) || set.Version == "" || set.ID != wantPrefix+set.Version {
		t.Errorf("SetSecret id = %q version %q, want %s<version>", set.ID, set.Version, wantPrefix)
	}
	if set.Name != "app-key" || !set.Enabled || set.ContentType != "text/plain" || !set.Expires.Equal(exp) ||
		set.KeyID() != "key-1" || set.Tags[appreg.TagAppID] != "app-1" || set.Created.IsZero() {
		t.Errorf("SetSecret = %+v, want name app-key, enabled, text/plain, expires %v, tags appId/keyId, created", set, exp)
	}
	if s := fmt.Sprintf("%+v", set); strings.Contains(s, value) {
		t.Errorf("SetSecret's result holds the value")
	}

	got, err := v.Secret(ctx, "app-key")
	if err != nil {
		t.Fatalf("Secret: %v", err)
	}
	if got.ID != set.ID || got.KeyID() != "key-1" || !got.Expires.Equal(exp) || !got.Enabled {
		t.Errorf("Secret = %+v, want the version just set %+v", got, set)
	}
	checkNoSecretIn(t, ten, "Secret's result", fmt.Sprintf("%+v", got))
	checkNoSecretIn(t, ten, "Secret's result (%#v)", fmt.Sprintf("%#v", got))
	if b, err := json.Marshal(got); err != nil || strings.Contains(string(b), value) {
		t.Errorf("Secret's result as JSON holds the value (or does not marshal: %v)", err)
	}
	if got.Value.Reveal() != value {
		t.Errorf("Secret's Value does not reveal the stored value: the sign-in check needs it")
	}

	snap := ten.Snapshot()
	cur := snap.Secret("app-key").Current()
	if cur == nil || cur.Value != value || !cur.Enabled || !cur.Expires.Equal(exp) || cur.Tags[appreg.TagKeyID] != "key-1" {
		t.Errorf("stored version = %+v, want value, enabled, exp %v, keyId tag", cur, exp)
	}
	if st := ten.Stats().Service(emulator.ServiceKeyVault); st.Challenges != 1 {
		t.Errorf("Key Vault challenges = %d, want 1 (the token is reused after the first challenge)", st.Challenges)
	}
	if n := ten.Stats().Service(emulator.ServiceIdentity).Requests; n != 1 {
		t.Errorf("identity endpoint requests = %d, want 1 (the token is cached)", n)
	}
}

func TestSecretVersionsPaging(t *testing.T) {
	ten := emulatortest.Start(t, emulator.Options{PageSize: 2})
	v := newVault(t, ten, ten.HTTPClient())
	ctx := ctxFor(t)

	none, err := v.SecretVersions(ctx, "rotated")
	if err != nil || len(none) != 0 {
		t.Fatalf("SecretVersions of an absent secret = %v, %v; want none, nil", none, err)
	}
	want := map[string]string{} // version -> keyId
	for i := range 5 {
		sv, err := v.SetSecret(ctx, appreg.NewSecret{Name: "rotated", Value: fmt.Sprintf("value-%d", i),
			Tags: map[string]string{appreg.TagKeyID: fmt.Sprintf("key-%d", i)}})
		if err != nil {
			t.Fatalf("SetSecret %d: %v", i, err)
		}
		want[sv.Version] = sv.KeyID()
	}
	ten.ResetStats()
	got, err := v.SecretVersions(ctx, "rotated")
	if err != nil {
		t.Fatalf("SecretVersions: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("SecretVersions returned %d versions, want %d", len(got), len(want))
	}
	for _, sv := range got {
		if want[sv.Version] != sv.KeyID() || sv.Name != "rotated" || !sv.Enabled {
			t.Errorf("version %+v: want keyId %q, name rotated, enabled", sv, want[sv.Version])
		}
	}
	if n := ten.Stats().Op(emulator.OpListSecretVersions).Requests; n != 3 {
		t.Errorf("list requests = %d, want 3 (5 versions, pages of 2)", n)
	}
}

func TestErrorClassification(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(ten *emulator.Tenant)
		call       func(ctx context.Context, v *keyvault.Vault) error
		wantKind   error
		wantStatus int
		wantNeed   string
		wantTries  map[string]int // operation -> authenticated requests the fake saw (the challenged one not counted)
	}{
		{
			name:  "403 reading without any role",
			setup: func(ten *emulator.Tenant) { ten.SetVaultRoles() },
			call: func(ctx context.Context, v *keyvault.Vault) error {
				_, err := v.Secret(ctx, "app-key")
				return err
			},
			wantKind: appreg.ErrForbidden, wantStatus: 403, wantNeed: keyvault.NeedSecretsOfficer,
		},
		{
			name:  "403 listing without any role",
			setup: func(ten *emulator.Tenant) { ten.SetVaultRoles() },
			call: func(ctx context.Context, v *keyvault.Vault) error {
				_, err := v.SecretVersions(ctx, "app-key")
				return err
			},
			wantKind: appreg.ErrForbidden, wantStatus: 403, wantNeed: keyvault.NeedSecretsOfficer,
		},
		{
			name:  "403 writing as Secrets User",
			setup: func(ten *emulator.Tenant) { ten.SetVaultRoles(emulator.VaultRoleSecretsUser) },
			call: func(ctx context.Context, v *keyvault.Vault) error {
				_, err := v.SetSecret(ctx, appreg.NewSecret{Name: "app-key", Value: "x"})
				return err
			},
			wantKind: appreg.ErrForbidden, wantStatus: 403, wantNeed: keyvault.NeedSecretsOfficer,
		},
		{
			name: "404",
			call: func(ctx context.Context, v *keyvault.Vault) error {
				_, err := v.Secret(ctx, "absent")
				return err
			},
			wantKind: appreg.ErrNotFound, wantStatus: 404,
		},
		{
			name: "429 then success",
			setup: func(ten *emulator.Tenant) {
				ten.AddFault(emulator.Fault{Service: emulator.ServiceKeyVault, Operation: emulator.OpSetSecret, Status: 429, RetryAfter: 1})
			},
			call: func(ctx context.Context, v *keyvault.Vault) error {
				_, err := v.SetSecret(ctx, appreg.NewSecret{Name: "app-key", Value: "x"})
				return err
			},
			wantTries: map[string]int{emulator.OpSetSecret: 2},
		},
		{
			name: "429 always",
			setup: func(ten *emulator.Tenant) {
				ten.AddFault(emulator.Fault{Service: emulator.ServiceKeyVault, Operation: emulator.OpGetSecret, Status: 429, RetryAfter: 1, Times: emulator.Always})
			},
			call: func(ctx context.Context, v *keyvault.Vault) error {
				_, err := v.Secret(ctx, "app-key")
				return err
			},
			wantKind: appreg.ErrThrottled, wantStatus: 429, wantTries: map[string]int{emulator.OpGetSecret: 4},
		},
		{
			name: "503 then success",
			setup: func(ten *emulator.Tenant) {
				ten.AddFault(emulator.Fault{Service: emulator.ServiceKeyVault, Operation: emulator.OpListSecretVersions, Status: 503, RetryAfter: 1})
			},
			call: func(ctx context.Context, v *keyvault.Vault) error {
				_, err := v.SecretVersions(ctx, "app-key")
				return err
			},
			wantTries: map[string]int{emulator.OpListSecretVersions: 2},
		},
		{
			name: "503 always",
			setup: func(ten *emulator.Tenant) {
				ten.AddFault(emulator.Fault{Service: emulator.ServiceKeyVault, Operation: emulator.OpSetSecret, Status: 503, RetryAfter: 1, Times: emulator.Always})
			},
			call: func(ctx context.Context, v *keyvault.Vault) error {
				_, err := v.SetSecret(ctx, appreg.NewSecret{Name: "app-key", Value: "x"})
				return err
			},
			wantKind: appreg.ErrUnavailable, wantStatus: 503, wantTries: map[string]int{emulator.OpSetSecret: 4},
		},
		{
			name: "dropped connection, write applied",
			setup: func(ten *emulator.Tenant) {
				ten.AddFault(emulator.Fault{Service: emulator.ServiceKeyVault, Operation: emulator.OpSetSecret, Kind: emulator.FaultDrop, After: true, Times: emulator.Always})
			},
			call: func(ctx context.Context, v *keyvault.Vault) error {
				_, err := v.SetSecret(ctx, appreg.NewSecret{Name: "app-key", Value: "x"})
				return err
			},
			wantKind: appreg.ErrUnavailable, wantTries: map[string]int{emulator.OpSetSecret: 4},
		},
		{
			name: "other 4xx",
			setup: func(ten *emulator.Tenant) {
				ten.AddFault(emulator.Fault{Service: emulator.ServiceKeyVault, Operation: emulator.OpSetSecret, Status: 400, Code: "BadParameter", Message: "emulated bad parameter"})
			},
			call: func(ctx context.Context, v *keyvault.Vault) error {
				_, err := v.SetSecret(ctx, appreg.NewSecret{Name: "app-key", Value: "x"})
				return err
			},
			wantKind: appreg.ErrRejected, wantStatus: 400, wantTries: map[string]int{emulator.OpSetSecret: 1},
		},
		{
			name: "invalid secret name, nothing sent",
			call: func(ctx context.Context, v *keyvault.Vault) error {
				_, err := v.SetSecret(ctx, appreg.NewSecret{Name: "App:Key", Value: "x"})
				return err
			},
			wantKind: appreg.ErrRejected, wantTries: map[string]int{emulator.OpSetSecret: 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ten := emulatortest.Start(t, emulator.Options{})
			v := newVault(t, ten, ten.HTTPClient())
			if tt.setup != nil {
				tt.setup(ten)
			}
			err := tt.call(ctxFor(t), v)
			if tt.wantKind == nil {
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
			} else {
				var se *appreg.ServiceError
				if !errors.As(err, &se) || !errors.Is(err, tt.wantKind) {
					t.Fatalf("err = %v, want a *appreg.ServiceError of kind %v", err, tt.wantKind)
				}
				if se.Service != appreg.ServiceKeyVault || se.Status != tt.wantStatus || se.Need != tt.wantNeed {
					t.Errorf("ServiceError = {Service %q Status %d Need %q}, want {%q %d %q}", se.Service, se.Status, se.Need,
						appreg.ServiceKeyVault, tt.wantStatus, tt.wantNeed)
				}
				checkNoSecretIn(t, ten, "the error", err.Error())
			}
			for op, want := range tt.wantTries {
				st := ten.Stats().Op(op)
				if got := st.Requests - st.Statuses[http.StatusUnauthorized]; got != want {
					t.Errorf("%s requests = %d, want %d", op, got, want)
				}
			}
		})
	}
}

func TestNewValidatesVaultURL(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		wantErr bool
		wantURL string
	}{
		{name: "vault root", url: "https://contoso-kv.vault.azure.net/", wantURL: "https://contoso-kv.vault.azure.net/"},
		{name: "without slash, upper case", url: "https://Contoso-KV.vault.azure.net", wantURL: "https://contoso-kv.vault.azure.net/"},
		{name: "http", url: "http://contoso-kv.vault.azure.net/", wantErr: true},
		{name: "no scheme", url: "contoso-kv.vault.azure.net", wantErr: true},
		{name: "with a path", url: "https://contoso-kv.vault.azure.net/secrets/x", wantErr: true},
		{name: "empty", url: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := keyvault.New(tt.url, fakeCred{}, http.DefaultClient)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%q) error = %v, want error %v", tt.url, err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "https://") {
					t.Errorf("error %q does not show the expected form", err)
				}
				return
			}
			if v.URL() != tt.wantURL {
				t.Errorf("URL() = %q, want %q", v.URL(), tt.wantURL)
			}
		})
	}
}

// TestThroughProxyWithCAFile reaches the vault as a deployed process does: HTTPS_PROXY and
// SSL_CERT_FILE through the injected getenv, the identity endpoint on loopback (not proxied).
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
	v, err := keyvault.New(getenv("APPREG_KEY_VAULT_URL"), cred, hc)
	if err != nil {
		t.Fatalf("keyvault.New: %v", err)
	}
	ctx := ctxFor(t)
	set, err := v.SetSecret(ctx, appreg.NewSecret{Name: "via-proxy", Value: "proxied-value"})
	if err != nil {
		t.Fatalf("SetSecret through the proxy: %v", err)
	}
	got, err := v.Secret(ctx, "via-proxy")
	if err != nil || got.ID != set.ID {
		t.Fatalf("Secret through the proxy = %+v, %v; want %s", got, err, set.ID)
	}
	st := ten.Stats()
	if st.Service(emulator.ServiceKeyVault).Requests < 2 || st.Service(emulator.ServiceIdentity).Requests != 1 {
		t.Errorf("requests: keyvault %d identity %d, want >= 2 and 1", st.Service(emulator.ServiceKeyVault).Requests,
			st.Service(emulator.ServiceIdentity).Requests)
	}
}

// fakeCred is a credential that is never asked for a token.
type fakeCred struct{}

func (fakeCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, errors.New("fakeCred: no token")
}
