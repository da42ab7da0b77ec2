package emulator

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// harness is a running tenant with a client for it.
type harness struct {
	t      *testing.T
	tenant *Tenant
	client *http.Client
	// unknownOK is set by tests that provoke unknown requests on purpose.
	unknownOK atomic.Bool
}

// start starts a tenant for a test; the test fails if it leaves unknown requests behind.
func start(t *testing.T, opts Options) *harness {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	ten, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	h := &harness{t: t, tenant: ten, client: ten.HTTPClient()}
	t.Cleanup(func() {
		ten.Close()
		if u := ten.Unknown(); len(u) > 0 && !h.unknownOK.Load() {
			t.Errorf("unknown requests: %q", u)
		}
	})
	return h
}

// reply is an answer as a test sees it.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// errorCode returns error.code of an error answer.
func (r reply) errorCode(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func (r reply) errorMessage(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	msg, _ := e["message"].(string)
	return msg
}

// call sends a request with the harness client.
func (h *harness) call(method, rawURL, token string, body []byte, headers map[string]string) reply {
	h.t.Helper()
	return doCall(h.t, h.client, method, rawURL, token, body, headers)
}

func doCall(t *testing.T, c *http.Client, method, rawURL, token string, body []byte, headers map[string]string) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		t.Fatalf("NewRequest %s %s: %v", method, rawURL, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading answer of %s %s: %v", method, rawURL, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// token gets an access token for resource from the identity endpoint.
func (h *harness) token(resource string) string {
	h.t.Helper()
	r := h.call(http.MethodGet, h.tenant.IdentityEndpoint()+"?api-version=2019-08-01&resource="+url.QueryEscape(resource), "", nil,
		map[string]string{"X-IDENTITY-HEADER": h.tenant.IdentityHeader()})
	if r.status != http.StatusOK {
		h.t.Fatalf("token for %s: status %d: %s", resource, r.status, r.body)
	}
	tok, _ := r.json(h.t)["access_token"].(string)
	if tok == "" {
		h.t.Fatalf("token for %s: no access_token in %s", resource, r.body)
	}
	return tok
}

func (h *harness) graphToken() string { return h.token(AudienceGraph) }

// graph calls Graph v1.0 with a JSON body (nil for none).
func (h *harness) graph(method, path, token string, body []byte, headers map[string]string) reply {
	h.t.Helper()
	return h.call(method, GraphRoot+path, token, body, headers)
}

// vault calls the vault with api-version.
func (h *harness) vault(method, path, token string, body []byte) reply {
	h.t.Helper()
	u := strings.TrimSuffix(h.tenant.VaultURL(), "/") + path
	if !strings.Contains(path, "api-version=") {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		u += sep + "api-version=2026-04-01"
	}
	return h.call(method, u, token, body, nil)
}

var createIfMissing = map[string]string{"Prefer": "create-if-missing"}

// upsertApp creates or updates an application by uniqueName with the fixture body and a display name.
func (h *harness) upsertApp(token, uniqueName string) reply {
	h.t.Helper()
	return h.graph(http.MethodPatch, "/applications(uniqueName='"+uniqueName+"')", token, fixture(h.t, "app_create.json"), createIfMissing)
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	return b
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatalf("gzip: %v", err)
	}
	if err := zw.Close(); err != nil {
		t.Fatalf("gzip: %v", err)
	}
	return buf.Bytes()
}

// jwtClaims decodes the payload of a JWT without verifying it.
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decoding JWT payload: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	return m
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}
