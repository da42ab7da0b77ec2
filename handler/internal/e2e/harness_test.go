package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/funchost"
	"github.com/scepman-appreg/appreg/handler/internal/reliability"
)

// handlerBin is bin/handler built once for the whole package, from the module's own source.
var handlerBin string

// repoRoot is the module root (host.json, functions/).
var repoRoot string

// hygiene collects every response body and log of the package's tests, scanned at the end for the
// secrets the emulated tenants issued.
var hygiene struct {
	sync.Mutex
	seen    [][]byte
	secrets []string
}

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..", "..")
	dir, err := os.MkdirTemp("", "appreg-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	handlerBin = filepath.Join(dir, "handler")
	build := exec.Command("go", "build", "-o", handlerBin, "./handler")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building bin/handler:", err)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		code = scanForSecrets()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// scanForSecrets fails the run when any response or log line holds a secret value, a token or an
// identity header that an emulated tenant issued.
func scanForSecrets() int {
	hygiene.Lock()
	defer hygiene.Unlock()
	hits := 0
	for _, s := range hygiene.secrets {
		if len(s) < 8 {
			continue
		}
		for _, b := range hygiene.seen {
			if bytes.Contains(b, []byte(s)) {
				hits++
				fmt.Fprintf(os.Stderr, "secret hygiene: an issued secret (%d chars, starts %q) appears in a response or log\n", len(s), s[:3])
				break
			}
		}
	}
	line := fmt.Sprintf("%d issued secrets checked against %d responses and logs, %d found", len(hygiene.secrets), len(hygiene.seen), hits)
	fmt.Println("secret hygiene: " + line)
	if err := reliability.Report("5-hygiene-e2e", "Secret hygiene, black-box runs (every e2e test that ran: responses, handler and host output; each tenant's IDENTITY_HEADER value among the secrets): "+line+"\n"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		hits++
	}
	if hits > 0 {
		return 1
	}
	return 0
}

func record(b []byte) {
	hygiene.Lock()
	hygiene.seen = append(hygiene.seen, bytes.Clone(b))
	hygiene.Unlock()
}

// syncBuffer collects the handler's and the host's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// app is one function app (bin/handler under funchost) on its own emulated tenant.
type app struct {
	t      *testing.T
	tenant *emulator.Tenant
	host   *funchost.Host
	logs   *syncBuffer
}

type setup struct {
	tenant   *emulator.Tenant // an existing tenant (of an earlier app of the test); nil: a fresh one
	opts     emulator.Options
	settings map[string]string       // app settings on top of the tenant's
	before   func(*emulator.Tenant)  // runs before the handler starts
	env      func(map[string]string) // last word on the environment
}

// start runs a function app on a fresh emulated tenant.
func start(t *testing.T, s setup) *app {
	t.Helper()
	tenant := s.tenant
	if tenant == nil {
		var err error
		if tenant, err = emulator.Start(s.opts); err != nil {
			t.Fatalf("emulator.Start: %v", err)
		}
	}
	a := &app{t: t, tenant: tenant, logs: &syncBuffer{}}
	t.Cleanup(func() {
		if s.tenant == nil {
			tenant.Close()
			if u := tenant.Unknown(); len(u) > 0 {
				t.Errorf("the emulated tenant got requests it does not know: %v", u)
			}
			addIssued(t, tenant)
		}
		record(a.logs.Bytes())
		if t.Failed() {
			t.Logf("handler and host output:\n%s", a.logs.Bytes())
		}
	})
	if s.before != nil {
		s.before(tenant)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := tenant.WriteCA(ca); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME")}
	for k, v := range tenant.Env(ca) {
		env[k] = v
	}
	if s.opts.IdentityClientID != "" {
		env["AZURE_CLIENT_ID"] = s.opts.IdentityClientID
	}
	for k, v := range s.settings {
		env[k] = v
	}
	if s.env != nil {
		s.env(env)
	}
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	host, err := funchost.Start(context.Background(), funchost.Options{
		Dir: projectDir(t), Handler: handlerBin, Addr: "127.0.0.1:0", Environ: environ,
		DisableTimers: true, Stdout: a.logs, Stderr: a.logs, Log: a.logs,
	})
	if err != nil {
		t.Fatalf("funchost.Start: %v\n%s", err, a.logs.Bytes())
	}
	a.host = host
	t.Cleanup(func() { host.Close() })
	return a
}

// projectDir is a copy of host.json and functions/ without any local.settings.json of the developer's.
func projectDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, filepath.Join(repoRoot, "host.json"), filepath.Join(dir, "host.json"))
	fns, err := filepath.Glob(filepath.Join(repoRoot, "functions", "*", "function.json"))
	if err != nil || len(fns) != 4 {
		t.Fatalf("functions/*/function.json: %v, %d found, want 4", err, len(fns))
	}
	for _, f := range fns {
		name := filepath.Base(filepath.Dir(f))
		copyFile(t, f, filepath.Join(dir, "functions", name, "function.json"))
	}
	copyFile(t, filepath.Join(repoRoot, "local.settings.json.sample"), filepath.Join(dir, "local.settings.json.sample"))
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// call sends a request through the host and decodes the JSON answer into out (when non-nil).
func (a *app) call(method, path string, body string, out any) int {
	a.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.host.URL()+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	record(b)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		a.t.Errorf("%s %s: Content-Type %q, want application/json; body %s", method, path, ct, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %d %s: not JSON: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// invoke runs a timer function through the host, as the host's timer would.
func (a *app) invoke(name string) (int, invocationResponse) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	status, body, err := a.host.Invoke(ctx, name)
	if err != nil {
		a.t.Fatalf("invoking %s: %v", name, err)
	}
	record(body)
	var r invocationResponse
	if err := json.Unmarshal(body, &r); err != nil {
		a.t.Fatalf("invoking %s: %d %s: not JSON: %v", name, status, body, err)
	}
	return status, r
}

type invocationResponse struct {
	Outputs     map[string]any  `json:"Outputs"`
	Logs        []string        `json:"Logs"`
	ReturnValue json.RawMessage `json:"ReturnValue"`
	Error       *apiErrorDetail `json:"error"`
}

type apiError struct {
	Error apiErrorDetail `json:"error"`
}

type apiErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type provisionResponse struct {
	TenantID           string `json:"tenantId"`
	AppID              string `json:"appId"`
	ObjectID           string `json:"objectId"`
	ServicePrincipalID string `json:"servicePrincipalId"`
	DisplayName        string `json:"displayName"`
	UniqueName         string `json:"uniqueName"`
	Permissions        []struct {
		ResourceAppID string `json:"resourceAppId"`
		Value         string `json:"value"`
		ID            string `json:"id"`
		Consented     bool   `json:"consented"`
	} `json:"permissions"`
	Secret *struct {
		Name      string    `json:"name"`
		ID        string    `json:"id"`
		KeyID     string    `json:"keyId"`
		ExpiresOn time.Time `json:"expiresOn"`
	} `json:"secret"`
	Changes  []string  `json:"changes"`
	Warnings []finding `json:"warnings"`
}

type finding struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

type statusResponse struct {
	Compliant bool      `json:"compliant"`
	AppID     string    `json:"appId"`
	Findings  []finding `json:"findings"`
	Secret    *struct {
		KeyID      string     `json:"keyId"`
		ExpiresOn  *time.Time `json:"expiresOn"`
		RenewAfter *time.Time `json:"renewAfter"`
	} `json:"secret"`
}

func (s statusResponse) codes() []string {
	var cs []string
	for _, f := range s.Findings {
		cs = append(cs, f.Code)
	}
	return cs
}

// writes counts the write requests that reached Graph and Key Vault since the last ResetStats.
func (a *app) writes() int {
	st := a.tenant.Stats()
	return st.Service(emulator.ServiceGraph).Writes + st.Service(emulator.ServiceKeyVault).Writes
}

const secretName = "AppConfig--AuthConfig--ApplicationKey"

// checkInvariants checks what must hold after every step: the current Key Vault version names a
// credential the application holds, with its exp equal to the credential's endDateTime and its value
// equal to the credential's secretText; the tags name the application.
func checkInvariants(t *testing.T, tenant *emulator.Tenant, uniqueName string) {
	t.Helper()
	s := tenant.Snapshot()
	sec := s.Secret(secretName)
	if sec == nil || sec.Current() == nil {
		return // nothing stored yet: nothing can be inconsistent
	}
	cur := sec.Current()
	app := s.Application(uniqueName)
	if app == nil {
		t.Errorf("invariant: Key Vault holds a secret but there is no application %q", uniqueName)
		return
	}
	cred := app.PasswordCredential(cur.Tags["keyId"])
	switch {
	case cred == nil:
		t.Errorf("invariant: the current version names keyId %s, which application %s lacks", cur.Tags["keyId"], app.AppID)
	case !cur.Expires.Equal(cred.EndDateTime):
		t.Errorf("invariant: the current version's exp %s, want the credential's endDateTime %s", cur.Expires, cred.EndDateTime)
	case cur.Value != cred.SecretText:
		t.Errorf("invariant: the current version does not hold the secretText of credential %s", cred.KeyID)
	case cur.Tags["appId"] != app.AppID:
		t.Errorf("invariant: the current version's appId tag %q, want %q", cur.Tags["appId"], app.AppID)
	}
}

// orphans are credentials of the application that no version of the secret names.
func orphans(tenant *emulator.Tenant, uniqueName string) []string {
	s := tenant.Snapshot()
	app := s.Application(uniqueName)
	if app == nil {
		return nil
	}
	named := map[string]bool{}
	if sec := s.Secret(secretName); sec != nil {
		for _, v := range sec.Versions {
			named[v.Tags["keyId"]] = true
		}
	}
	var out []string
	for _, c := range app.PasswordCredentials {
		if !named[c.KeyID] {
			out = append(out, c.KeyID)
		}
	}
	return out
}
