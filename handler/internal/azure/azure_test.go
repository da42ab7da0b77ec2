package azure_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/azure"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

// envOf returns a getenv over a map.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes content to a file in the test's temporary directory and returns its path.
func writeFile(t *testing.T, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewHTTPClientTrust(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusting clients' handshakes fail on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	tests := []struct {
		name       string
		certFile   func(t *testing.T) string // "" leaves SSL_CERT_FILE unset
		wantNewErr string                    // substring of NewHTTPClient's error
		wantReach  bool                      // whether the test server's certificate is trusted
	}{
		{name: "no SSL_CERT_FILE: system pool only", certFile: func(*testing.T) string { return "" }},
		{name: "SSL_CERT_FILE adds the CA", certFile: func(t *testing.T) string { return writeFile(t, "ca.pem", caPEM) }, wantReach: true},
		{name: "SSL_CERT_FILE missing", certFile: func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent.pem") }, wantNewErr: "SSL_CERT_FILE"},
		{name: "SSL_CERT_FILE without PEM", certFile: func(t *testing.T) string { return writeFile(t, "junk.pem", []byte("not a certificate")) }, wantNewErr: "SSL_CERT_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hc, err := azure.NewHTTPClient(envOf(map[string]string{"SSL_CERT_FILE": tt.certFile(t)}))
			if tt.wantNewErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantNewErr) {
					t.Fatalf("NewHTTPClient error = %v, want one naming %s", err, tt.wantNewErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewHTTPClient: %v", err)
			}
			if hc.Timeout != 0 {
				t.Errorf("client Timeout = %v, want 0 (contexts bound calls)", hc.Timeout)
			}
			resp, err := hc.Get(srv.URL)
			if resp != nil {
				resp.Body.Close()
			}
			if got := err == nil; got != tt.wantReach {
				t.Fatalf("reached the test server = %v (err %v), want %v", got, err, tt.wantReach)
			}
			if !tt.wantReach {
				var ua x509.UnknownAuthorityError
				if !errors.As(err, &ua) {
					t.Errorf("error = %v, want an unknown authority error", err)
				}
			}
		})
	}
}

func TestNewHTTPClientProxy(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		target string
		want   string // proxy URL, "" for direct
	}{
		{name: "HTTPS_PROXY for https", env: map[string]string{"HTTPS_PROXY": "http://proxy.example:3128"}, target: "https://graph.microsoft.com/v1.0", want: "http://proxy.example:3128"},
		{name: "https_proxy lower case", env: map[string]string{"https_proxy": "http://lower.example:8080"}, target: "https://contoso.vault.azure.net/", want: "http://lower.example:8080"},
		{name: "upper case wins", env: map[string]string{"HTTPS_PROXY": "http://upper.example:1", "https_proxy": "http://lower.example:2"}, target: "https://graph.microsoft.com/", want: "http://upper.example:1"},
		{name: "NO_PROXY domain", env: map[string]string{"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": ".vault.azure.net"}, target: "https://contoso.vault.azure.net/", want: ""},
		{name: "loopback never proxied", env: map[string]string{"HTTPS_PROXY": "http://proxy.example:3128", "HTTP_PROXY": "http://proxy.example:3128"}, target: "http://127.0.0.1:8081/msi/token", want: ""},
		{name: "HTTP_PROXY for http only", env: map[string]string{"HTTP_PROXY": "http://plain.example:80"}, target: "https://graph.microsoft.com/", want: ""},
		{name: "HTTP_PROXY for http", env: map[string]string{"HTTP_PROXY": "http://plain.example:80"}, target: "http://example.com/", want: "http://plain.example:80"},
		{name: "no proxy settings", env: map[string]string{}, target: "https://graph.microsoft.com/", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hc, err := azure.NewHTTPClient(envOf(tt.env))
			if err != nil {
				t.Fatalf("NewHTTPClient: %v", err)
			}
			tr, ok := hc.Transport.(*http.Transport)
			if !ok {
				t.Fatalf("transport is %T, want *http.Transport", hc.Transport)
			}
			req, _ := http.NewRequest(http.MethodGet, tt.target, nil)
			u, err := tr.Proxy(req)
			if err != nil {
				t.Fatalf("Proxy: %v", err)
			}
			got := ""
			if u != nil {
				got = u.String()
			}
			if got != tt.want {
				t.Errorf("proxy for %s = %q, want %q", tt.target, got, tt.want)
			}
		})
	}
}

func TestNewHTTPClientBadProxy(t *testing.T) {
	_, err := azure.NewHTTPClient(envOf(map[string]string{"HTTPS_PROXY": "http://[::1"}))
	if err == nil || !strings.Contains(err.Error(), "HTTPS_PROXY") {
		t.Fatalf("error = %v, want one naming HTTPS_PROXY", err)
	}
}

func jwt(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(payload)) + ".sig"
}

func TestTenantIDFromToken(t *testing.T) {
	tests := []struct {
		name    string
		token   string
		want    string
		wantErr bool
	}{
		{name: "tid claim", token: jwt(`{"tid":"72f988bf-86f1-41af-91ab-2d7cd011db47","aud":"x"}`), want: "72f988bf-86f1-41af-91ab-2d7cd011db47"},
		{name: "padded payload", token: strings.Split(jwt(`{"tid":"t"}`), ".")[0] + "." + base64.URLEncoding.EncodeToString([]byte(`{"tid":"t"}`)) + ".s", want: "t"},
		{name: "no tid", token: jwt(`{"aud":"x"}`), wantErr: true},
		{name: "not a JWT", token: "opaque", wantErr: true},
		{name: "payload not base64", token: "a.!!!.c", wantErr: true},
		{name: "payload not JSON", token: "a." + base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".c", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := azure.TenantIDFromToken(tt.token)
			if (err != nil) != tt.wantErr {
				t.Fatalf("TenantIDFromToken error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("TenantIDFromToken = %q, want %q", got, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error %q repeats the token", err)
			}
		})
	}
}

func TestNewCredentialRefusesEnvNotInProcess(t *testing.T) {
	t.Setenv("IDENTITY_ENDPOINT", "")
	t.Setenv("IDENTITY_HEADER", "")
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{name: "endpoint only injected", env: map[string]string{"IDENTITY_ENDPOINT": "http://127.0.0.1:1/msi/token", "IDENTITY_HEADER": ""}, wantErr: "IDENTITY_ENDPOINT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := azure.NewCredential(envOf(tt.env), http.DefaultClient)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewCredential error = %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
	t.Run("header differs", func(t *testing.T) {
		t.Setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token")
		t.Setenv("IDENTITY_HEADER", "process-value")
		_, err := azure.NewCredential(envOf(map[string]string{"IDENTITY_ENDPOINT": "http://127.0.0.1:1/msi/token", "IDENTITY_HEADER": "other"}), http.DefaultClient)
		if err == nil || !strings.Contains(err.Error(), "IDENTITY_HEADER") {
			t.Fatalf("NewCredential error = %v, want one naming IDENTITY_HEADER", err)
		}
		for _, v := range []string{"process-value", "other"} {
			if strings.Contains(err.Error(), v) {
				t.Errorf("error %q shows the identity header value", err)
			}
		}
	})
}

func TestClassifyFailure(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	urlErr := &url.Error{Op: "Get", URL: "https://graph.microsoft.com/v1.0", Err: errors.New("connection reset by peer")}
	tests := []struct {
		name     string
		ctx      context.Context
		err      error
		wantKind error // nil: not classified (the caller's context ended)
		wantCode int
	}{
		{name: "own context canceled", ctx: canceled, err: context.Canceled},
		{name: "transport failure", ctx: context.Background(), err: urlErr, wantKind: appreg.ErrUnavailable},
		{name: "a try's timeout, context alive", ctx: context.Background(), err: context.DeadlineExceeded, wantKind: appreg.ErrUnavailable},
		{name: "untrusted certificate", ctx: context.Background(), err: &url.Error{Op: "Get", URL: "https://x", Err: x509.UnknownAuthorityError{}}, wantKind: appreg.ErrRejected},
		{name: "token endpoint 500", ctx: context.Background(), err: &azidentity.AuthenticationFailedError{RawResponse: &http.Response{StatusCode: 500}}, wantKind: appreg.ErrUnavailable, wantCode: 500},
		{name: "token endpoint 429", ctx: context.Background(), err: &azidentity.AuthenticationFailedError{RawResponse: &http.Response{StatusCode: 429}}, wantKind: appreg.ErrThrottled, wantCode: 429},
		{name: "token endpoint 400", ctx: context.Background(), err: &azidentity.AuthenticationFailedError{RawResponse: &http.Response{StatusCode: 400}}, wantKind: appreg.ErrRejected, wantCode: 400},
		{name: "token endpoint unreachable", ctx: context.Background(), err: &azidentity.AuthenticationFailedError{}, wantKind: appreg.ErrUnavailable},
		{name: "anything else", ctx: context.Background(), err: errors.New("boom"), wantKind: appreg.ErrRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			se, ok := azure.ClassifyFailure(tt.ctx, appreg.ServiceGraph, tt.err)
			if tt.wantKind == nil {
				if ok {
					t.Fatalf("ClassifyFailure classified %v as %v, want it left to the caller", tt.err, se)
				}
				return
			}
			kind, status := se.Kind, se.Status
			if !ok || kind != tt.wantKind || status != tt.wantCode {
				t.Errorf("ClassifyFailure = (%v, %d, ok %v), want (%v, %d, ok true)", kind, status, ok, tt.wantKind, tt.wantCode)
			}
		})
	}
}

// startTenant starts an emulated tenant and fails the test if it saw a request it does not know.
func startTenant(t *testing.T, opts emulator.Options) *emulator.Tenant {
	t.Helper()
	opts.Logf = t.Logf
	ten, err := emulator.Start(opts)
	if err != nil {
		t.Fatalf("emulator.Start: %v", err)
	}
	t.Cleanup(func() {
		ten.Close()
		if u := ten.Unknown(); len(u) > 0 {
			t.Errorf("the emulated tenant saw unknown requests: %q", u)
		}
	})
	return ten
}

// TestManagedIdentityCredential gets tokens from the tenant's identity endpoint (the App Service
// protocol) with the real azidentity credential, system- and user-assigned, and classifies its failures.
func TestManagedIdentityCredential(t *testing.T) {
	tests := []struct {
		name       string
		identityID string                                       // the tenant's identity client id; "" the default
		clientID   func(ten *emulator.Tenant) string            // AZURE_CLIENT_ID; nil: unset (system-assigned)
		header     func(ten *emulator.Tenant) string            // IDENTITY_HEADER; nil: the tenant's
		setup      func(ten *emulator.Tenant)                   // faults
		wantKind   error                                        // nil: a token
		wantStatus int                                          // of the token endpoint's answer
		wantMsg    string                                       // the endpoint's message, in the error
		wantQuery  func(ten *emulator.Tenant) map[string]string // not checked when nil
	}{
		{name: "system-assigned"},
		{name: "user-assigned", identityID: emulator.NewGUID(), clientID: func(ten *emulator.Tenant) string { return ten.IdentityClientID() }},
		{name: "unknown user-assigned identity", identityID: emulator.NewGUID(), clientID: func(*emulator.Tenant) string { return emulator.NewGUID() },
			wantKind: appreg.ErrIdentity, wantStatus: http.StatusBadRequest, wantMsg: noSuchIdentity},
		{name: "no identity enabled", identityID: emulator.NewGUID(), clientID: func(ten *emulator.Tenant) string { return ten.IdentityClientID() },
			setup:    func(ten *emulator.Tenant) { ten.SetIdentityFailure(http.StatusBadRequest, noSuchIdentity) },
			wantKind: appreg.ErrIdentity, wantStatus: http.StatusBadRequest, wantMsg: noSuchIdentity},
		{name: "wrong identity header", identityID: emulator.NewGUID(), clientID: func(ten *emulator.Tenant) string { return ten.IdentityClientID() },
			header: func(*emulator.Tenant) string { return "not-the-header" }, wantKind: appreg.ErrIdentity, wantStatus: http.StatusUnauthorized,
			wantMsg: "The X-IDENTITY-HEADER header is invalid."},
		{name: "identity endpoint unavailable", identityID: emulator.NewGUID(), clientID: func(ten *emulator.Tenant) string { return ten.IdentityClientID() },
			setup: func(ten *emulator.Tenant) {
				ten.AddFault(emulator.Fault{Service: emulator.ServiceIdentity, Status: http.StatusServiceUnavailable, RetryAfter: 1, Times: emulator.Always})
			},
			wantKind: appreg.ErrUnavailable, wantStatus: http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ten := startTenant(t, emulator.Options{IdentityClientID: tt.identityID})
			clientID, header := "", ten.IdentityHeader()
			if tt.clientID != nil {
				clientID = tt.clientID(ten)
			}
			if tt.header != nil {
				header = tt.header(ten)
			}
			t.Setenv("IDENTITY_ENDPOINT", ten.IdentityEndpoint())
			t.Setenv("IDENTITY_HEADER", header)
			t.Setenv("AZURE_CLIENT_ID", clientID)
			if tt.setup != nil {
				tt.setup(ten)
			}
			cred, err := azure.NewCredential(os.Getenv, ten.HTTPClient())
			if err != nil {
				t.Fatalf("NewCredential: %v", err)
			}
			if _, ok := cred.(*azidentity.ManagedIdentityCredential); !ok {
				t.Fatalf("NewCredential returned %T, want *azidentity.ManagedIdentityCredential", cred)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}})
			if tt.wantKind != nil {
				se, ok := azure.ClassifyFailure(ctx, appreg.ServiceGraph, err)
				if err == nil || !ok || se.Kind != tt.wantKind || se.Status != tt.wantStatus {
					t.Fatalf("GetToken err = %v classified (%+v, ok %v), want (%v, %d)", err, se, ok, tt.wantKind, tt.wantStatus)
				}
				if strings.Contains(se.Message, header) || strings.Contains(err.Error(), ten.IdentityHeader()) {
					t.Errorf("the error shows the identity header")
				}
				if se.Service != appreg.ServiceIdentity || !strings.Contains(se.Error(), tt.wantMsg) {
					t.Errorf("classified as %q, want service %q with the endpoint's message %q", se.Error(), appreg.ServiceIdentity, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetToken: %v", err)
			}
			tid, err := azure.TenantIDFromToken(tok.Token)
			if err != nil || tid != ten.TenantID() {
				t.Errorf("tid of the token = %q, %v; want %s", tid, err, ten.TenantID())
			}
			if n := ten.Stats().Service(emulator.ServiceIdentity).Requests; n != 1 {
				t.Errorf("identity endpoint requests = %d, want 1", n)
			}
		})
	}
}

// TestHTTPClientThroughProxy sends a request to Graph's real host name through HTTPS_PROXY, trusting
// the tenant's CA through SSL_CERT_FILE, both through the injected getenv.
func TestHTTPClientThroughProxy(t *testing.T) {
	ten := startTenant(t, emulator.Options{})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := ten.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		env       map[string]string
		wantErr   bool
		wantGraph int // Graph requests the tenant saw
	}{
		{name: "proxy and CA", env: map[string]string{"HTTPS_PROXY": ten.ProxyURL(), "SSL_CERT_FILE": caFile}, wantGraph: 1},
		{name: "proxy without the CA", env: map[string]string{"HTTPS_PROXY": ten.ProxyURL()}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ten.ResetStats()
			hc, err := azure.NewHTTPClient(envOf(tt.env))
			if err != nil {
				t.Fatalf("NewHTTPClient: %v", err)
			}
			resp, err := hc.Get("https://graph.microsoft.com/v1.0/applications(uniqueName='scepman')")
			if resp != nil {
				resp.Body.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("GET through the proxy: err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status = %d, want 401 (no token sent)", resp.StatusCode)
			}
			if n := ten.Stats().Service(emulator.ServiceGraph).Requests; n != tt.wantGraph {
				t.Errorf("graph requests = %d, want %d", n, tt.wantGraph)
			}
		})
	}
}
