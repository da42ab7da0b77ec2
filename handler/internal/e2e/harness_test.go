package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
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
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest/report"
	"github.com/scepman-appreg/appreg/handler/internal/funchost"
)

// handlerBin is bin/handler built once for the whole package, from the module's own source.
var handlerBin string

// repoRoot is the module root (host.json, functions/).
var repoRoot string

// hygiene collects every response body and log of the package's tests, scanned at the end for the
// secrets the emulated tenants issued.
var hygiene emulatortest.Hygiene

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
	secrets, outputs, hits := hygiene.Scan()
	for _, h := range hits {
		fmt.Fprintln(os.Stderr, "secret hygiene: "+h)
	}
	line := fmt.Sprintf("%d issued secrets checked against %d responses and logs, %d found", secrets, outputs, len(hits))
	fmt.Println("secret hygiene: " + line)
	failed := len(hits) > 0
	if err := report.Write("5-hygiene-e2e", "Secret hygiene, black-box runs (every e2e test that ran: responses, handler and host output; each tenant's IDENTITY_HEADER value among the secrets): "+line+"\n"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		failed = true
	}
	if failed {
		return 1
	}
	return 0
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

// start runs a function app on a fresh emulated tenant (or s.tenant).
func start(t *testing.T, s setup) *app {
	t.Helper()
	tenant := s.tenant
	if tenant == nil {
		tenant = newTenant(t, s.opts)
	}
	if s.before != nil {
		s.before(tenant)
	}
	settings := map[string]string{}
	if s.opts.IdentityClientID != "" {
		settings["AZURE_CLIENT_ID"] = s.opts.IdentityClientID
	}
	maps.Copy(settings, s.settings)
	host, logs := launch(t, tenant, settings, s.env)
	return &app{t: t, tenant: tenant, host: host, logs: logs}
}

// newTenant starts an emulated tenant (emulatortest.NewTenant) whose secrets join the package's hygiene
// scan.
func newTenant(t *testing.T, opts emulator.Options) *emulator.Tenant {
	t.Helper()
	tenant := emulatortest.NewTenant(t, opts)
	hygiene.Watch(t, tenant)
	return tenant
}

// launch starts bin/handler under funchost on the tenant, with the tenant's environment (its Env carries
// APPREG_KEY_VAULT_URL, so funchost starts no tenant of its own), PATH and HOME, the settings on top and
// edit's last word. When the test ends the host stops and its output joins the hygiene scan (and the test
// log, if the test failed).
func launch(t *testing.T, tenant *emulator.Tenant, settings map[string]string, edit func(map[string]string)) (*funchost.Host, *syncBuffer) {
	t.Helper()
	env := emulatortest.Env(t, tenant)
	env["PATH"], env["HOME"] = os.Getenv("PATH"), os.Getenv("HOME")
	maps.Copy(env, settings)
	if edit != nil {
		edit(env)
	}
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	logs := &syncBuffer{}
	host, err := funchost.Start(context.Background(), funchost.Options{
		Dir: projectDir(t), Handler: handlerBin, Addr: "127.0.0.1:0", Environ: environ,
		DisableTimers: true, Stdout: logs, Stderr: logs, Log: logs,
	})
	if err != nil {
		t.Fatalf("funchost.Start: %v\n%s", err, logs.Bytes())
	}
	t.Cleanup(func() {
		host.Close()
		hygiene.Record(logs.Bytes())
		if t.Failed() {
			t.Logf("handler %d and host output:\n%s", host.PID(), logs.Bytes())
		}
	})
	return host, logs
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
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	hygiene.Record(b)
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
	hygiene.Record(body)
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

// checkConverged fails the test for every invariant that the tenant breaks after a successful run
// (emulatortest.Converged, level 0; the rules that need a clock are left out, as these tests change the
// tenant by hand, as an admin would). An application or a secret missing is a violation.
func checkConverged(t *testing.T, tenant *emulator.Tenant) {
	t.Helper()
	emulatortest.Verify(t, "invariant", tenant, emulatortest.Want{}, emulatortest.Converged)
}

// unnamed are the credentials of the application that no version of the secret names.
func unnamed(tenant *emulator.Tenant) []string {
	return emulatortest.Unnamed(tenant.Snapshot(), emulatortest.Want{})
}
