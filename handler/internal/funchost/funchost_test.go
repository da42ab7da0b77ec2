package funchost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/hostproto"
)

const repoRoot = "../../.."

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestLoadRepoProject(t *testing.T) {
	fns, err := LoadFunctions(filepath.Join(repoRoot, "functions"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Function{
		"compliance": {Name: "compliance", Trigger: TriggerTimer, Binding: "timer", Schedule: "%APPREG_COMPLIANCE_SCHEDULE%", UseMonitor: true},
		"provision":  {Name: "provision", Trigger: TriggerHTTP, Binding: "req", Route: "provision", Methods: []string{"POST"}, AuthLevel: "function"},
		"rotate":     {Name: "rotate", Trigger: TriggerTimer, Binding: "timer", Schedule: "%APPREG_ROTATION_SCHEDULE%", UseMonitor: true},
		"status":     {Name: "status", Trigger: TriggerHTTP, Binding: "req", Route: "status", Methods: []string{"GET"}, AuthLevel: "function"},
	}
	if len(fns) != len(want) {
		t.Fatalf("functions = %+v, want %d", fns, len(want))
	}
	for _, fn := range fns {
		w := want[fn.Name]
		if fn.Name != w.Name || fn.Trigger != w.Trigger || fn.Binding != w.Binding || fn.Route != w.Route ||
			strings.Join(fn.Methods, ",") != strings.Join(w.Methods, ",") || fn.AuthLevel != w.AuthLevel ||
			fn.Schedule != w.Schedule || fn.UseMonitor != w.UseMonitor {
			t.Errorf("function = %+v, want %+v", fn, w)
		}
	}
	hc, err := LoadHostConfig(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if hc.Executable != "bin/handler" || !hc.Forwarding || hc.FunctionTimeout != 10*time.Minute {
		t.Errorf("host.json = %+v, want bin/handler, forwarding, 10m", hc)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFunctionsErrors(t *testing.T) {
	const out = `{"type":"http","direction":"out","name":"res"}`
	tests := []struct {
		name string
		json string
		says string
	}{
		{"not JSON", `{"bindings":`, "not valid JSON"},
		{"no trigger", `{"bindings":[` + out + `]}`, "no trigger binding"},
		{"two triggers", `{"bindings":[{"type":"timerTrigger","direction":"in","name":"a","schedule":"* * * * * *"},{"type":"queueTrigger","direction":"in","name":"b"}]}`, "two triggers"},
		{"http without output", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["get"]}]}`, "exactly one other binding, an http output"},
		{"http with a queue", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"queue","direction":"out","name":"q"}]}`, "an http output"},
		{"bad method", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["fetch"]},` + out + `]}`, `method "fetch"`},
		{"bad auth level", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"system"},` + out + `]}`, `authLevel "system"`},
		{"route template", `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"items/{id}"},` + out + `]}`, "literal routes only"},
		{"timer without schedule", `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer"}]}`, "without a schedule"},
		{"timer with output", `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"* * * * * *"},{"type":"blob","direction":"out","name":"b"}]}`, "plain timers only"},
		{"queue trigger", `{"bindings":[{"type":"queueTrigger","direction":"in","name":"msg"}]}`, `trigger type "queueTrigger"`},
		{"binding without direction", `{"bindings":[{"type":"timerTrigger","name":"timer","schedule":"* * * * * *"}]}`, "binding 1: expected name, type and direction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "fn", "function.json"), tt.json)
			_, err := LoadFunctions(dir)
			if err == nil {
				t.Fatal("LoadFunctions succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), filepath.Join("fn", "function.json")) {
				t.Errorf("error %q does not say %q and name the file", err, tt.says)
			}
		})
	}
	t.Run("duplicate route", func(t *testing.T) {
		dir := t.TempDir()
		fn := `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"x"},` + out + `]}`
		writeFile(t, filepath.Join(dir, "a", "function.json"), fn)
		writeFile(t, filepath.Join(dir, "b", "function.json"), fn)
		if _, err := LoadFunctions(dir); err == nil || !strings.Contains(err.Error(), `route "x" is also the route of function a`) {
			t.Errorf("error = %v, want the duplicate route named", err)
		}
	})
	t.Run("bad function name", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "1st", "function.json"), `{"bindings":[{"type":"timerTrigger","direction":"in","name":"t","schedule":"* * * * * *"}]}`)
		if _, err := LoadFunctions(dir); err == nil || !strings.Contains(err.Error(), `function name "1st"`) {
			t.Errorf("error = %v, want the name refused", err)
		}
	})
	t.Run("no functions", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "notes", "README"), "x")
		if _, err := LoadFunctions(dir); err == nil || !strings.Contains(err.Error(), "no function.json") {
			t.Errorf("error = %v, want no function.json", err)
		}
	})
}

func TestParseTimeSpan(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"00:10:00", 10 * time.Minute, true},
		{"01:30:05", time.Hour + 30*time.Minute + 5*time.Second, true},
		{"1.02:00:00", 26 * time.Hour, true},
		{"10", 0, false},
		{"00:61:00", 0, false},
		{"x:y:z", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTimeSpan(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseTimeSpan(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestLocalSettingsAndResolve(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "local.settings.json"), `{"IsEncrypted":false,"Values":{"FROM_LOCAL":"local","OVERRIDE":"local","SCHED":"0 30 3 * * *","EMPTY":""}}`)
	e := newEnv([]string{"OVERRIDE=real", "PATH=/bin"})
	file, added, err := loadLocalSettings(dir, e)
	if err != nil || file != "local.settings.json" {
		t.Fatalf("loadLocalSettings = %q, %v; want local.settings.json read", file, err)
	}
	if strings.Join(added, ",") != "EMPTY,FROM_LOCAL,SCHED" {
		t.Errorf("added = %v, want EMPTY, FROM_LOCAL, SCHED", added)
	}
	if e.get("OVERRIDE") != "real" || e.get("FROM_LOCAL") != "local" {
		t.Errorf("env = %v: local.settings.json must not override the environment", e.list())
	}
	tests := []struct {
		in, want, says string
	}{
		{"%SCHED%", "0 30 3 * * *", ""},
		{"0 0 %FROM_LOCAL% * * *", "0 0 local * * *", ""},
		{"0 0 */6 * * *", "0 0 */6 * * *", ""},
		{"%MISSING%", "", "set the app setting MISSING"},
		{"%EMPTY%", "", "set the app setting EMPTY"},
	}
	for _, tt := range tests {
		got, err := resolve(tt.in, e)
		if tt.says != "" {
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("resolve(%q) = %q, %v; want an error saying %q", tt.in, got, err, tt.says)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resolve(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for name, content := range map[string]string{
		"encrypted":  `{"IsEncrypted":true,"Values":{}}`,
		"non-string": `{"Values":{"N":1}}`,
		"not JSON":   `{`,
	} {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			writeFile(t, filepath.Join(d, "local.settings.json"), content)
			if _, _, err := loadLocalSettings(d, newEnv(nil)); err == nil {
				t.Error("loadLocalSettings succeeded, want an error")
			}
		})
	}
}

func TestLocalSettingsSampleFallback(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "local.settings.json.sample"), `{"IsEncrypted":false,"Values":{"SCHED":"0 30 3 * * *"}}`)
	e := newEnv(nil)
	file, added, err := loadLocalSettings(dir, e)
	if err != nil || file != "local.settings.json.sample" || len(added) != 1 || e.get("SCHED") != "0 30 3 * * *" {
		t.Errorf("loadLocalSettings without local.settings.json = %q, %v, %v; want the sample's SCHED added", file, added, err)
	}
	writeFile(t, filepath.Join(dir, "local.settings.json"), `{"IsEncrypted":false,"Values":{"OTHER":"x"}}`)
	e = newEnv(nil)
	if file, _, _ := loadLocalSettings(dir, e); file != "local.settings.json" || e.get("SCHED") != "" {
		t.Errorf("loadLocalSettings read %q (SCHED=%q); want only local.settings.json when it exists", file, e.get("SCHED"))
	}
}

// syncBuffer is a goroutine-safe buffer for the host's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// project copies the repository's host.json and functions and adds an "env" HTTP function that shows the
// handler's environment.
func project(t *testing.T, localSettings string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"host.json", "functions/provision/function.json", "functions/status/function.json",
		"functions/compliance/function.json", "functions/rotate/function.json"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, f), string(b))
	}
	writeFile(t, filepath.Join(dir, "functions", "env", "function.json"),
		`{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous","methods":["get"],"route":"env"},{"type":"http","direction":"out","name":"res"}]}`)
	if localSettings != "" {
		writeFile(t, filepath.Join(dir, "local.settings.json"), localSettings)
	}
	return dir
}

type running struct {
	*Host
	log         *syncBuffer
	invocations chan Invocation
}

func baseEnv(extra ...string) []string {
	env := []string{envFake + "=1", "APPREG_KEY_VAULT_URL=https://real-kv.vault.azure.net/",
		"APPREG_COMPLIANCE_SCHEDULE=0 0 */6 * * *", "APPREG_ROTATION_SCHEDULE=0 30 3 * * *"}
	if d := os.Getenv("GOCOVERDIR"); d != "" {
		env = append(env, "GOCOVERDIR="+d)
	}
	return append(env, extra...)
}

func start(t *testing.T, dir string, environ []string, mutate func(*Options)) *running {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r := &running{log: &syncBuffer{}, invocations: make(chan Invocation, 64)}
	o := Options{
		Dir: dir, Handler: exe, Addr: "127.0.0.1:0", Environ: environ, DisableTimers: true,
		Stdout: r.log, Stderr: r.log, Log: r.log,
		OnInvocation: func(inv Invocation) { r.invocations <- inv },
	}
	if mutate != nil {
		mutate(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := Start(ctx, o)
	if err != nil {
		t.Fatalf("Start: %v\noutput:\n%s", err, r.log)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	r.Host = h
	return r
}

func (r *running) next(t *testing.T) Invocation {
	t.Helper()
	select {
	case inv := <-r.invocations:
		return inv
	case <-time.After(30 * time.Second):
		t.Fatalf("no invocation reported; output:\n%s", r.log)
		return Invocation{}
	}
}

func do(t *testing.T, method, url, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestForwarding(t *testing.T) {
	h := start(t, project(t, ""), baseEnv(), nil)
	resp, body := do(t, http.MethodPost, h.URL()+"/api/provision?code=k", "{}", map[string]string{
		"Content-Type": "application/json", "User-Agent": "curl/8.5.0", "x-functions-key": "any"})
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Fake") != "yes" || resp.Header.Get("Location") != "/elsewhere" {
		t.Fatalf("answer = %d %v, want the handler's 201 unchanged", resp.StatusCode, resp.Header)
	}
	var e echoed
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if e.Method != "POST" || e.Path != "/api/provision" || e.Query != "code=k" || e.Body != "{}" || e.ContentLength != 2 {
		t.Errorf("forwarded request = %+v, want the original", e)
	}
	if !guidRE.MatchString(e.hdr(hostproto.HeaderInvocationID)) || e.hdr(hostproto.HeaderHostVersion) != hostproto.HostVersion {
		t.Errorf("forwarded headers = %v, want the host's invocation id and version", e.Headers)
	}
	if got, want := e.Headers["User-Agent"], "curl/8.5.0 Azure-Functions-Host/"+hostproto.HostVersion; got != want {
		t.Errorf("User-Agent = %q, want %q", got, want)
	}
	if inv := h.next(t); inv.Function != "provision" || inv.Trigger != "http" || inv.Status != 201 || inv.ID != e.hdr(hostproto.HeaderInvocationID) {
		t.Errorf("invocation = %+v", inv)
	}

	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/api/provision"}, // method not in function.json: 404 as on the host
		{http.MethodPost, "/api/status"},
		{http.MethodGet, "/api/nope"},
		{http.MethodGet, "/compliance"}, // the handler's own routes are not exposed
	} {
		if resp, _ := do(t, tt.method, h.URL()+tt.path, "", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s = %d, want 404", tt.method, tt.path, resp.StatusCode)
		}
	}
	resp, _ = do(t, http.MethodGet, h.URL()+"/api/STATUS", "", nil)
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("GET /api/STATUS = %d, want the handler's answer (routes are case-insensitive)", resp.StatusCode)
	}
}

func TestTimerInvocation(t *testing.T) {
	h := start(t, project(t, ""), baseEnv(), nil)

	status, body, err := h.Invoke(context.Background(), "compliance")
	if err != nil || status != http.StatusOK {
		t.Fatalf("Invoke = %d, %v; body %s", status, err, body)
	}
	var resp struct {
		Outputs     map[string]any
		Logs        []string
		ReturnValue struct {
			Request    echoed
			Invocation hostproto.TimerInvocation
		}
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	req, inv := resp.ReturnValue.Request, resp.ReturnValue.Invocation
	if req.Method != "POST" || req.Path != "/compliance" {
		t.Errorf("request = %s %s, want POST /compliance", req.Method, req.Path)
	}
	for k, want := range map[string]string{
		"Content-Type":              hostproto.ContentType,
		"User-Agent":                "Azure-Functions-Host/" + hostproto.HostVersion,
		hostproto.HeaderHostVersion: hostproto.HostVersion,
	} {
		if got := req.hdr(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if !guidRE.MatchString(req.hdr(hostproto.HeaderInvocationID)) || req.Headers["Traceparent"] == "" {
		t.Errorf("headers = %v, want an invocation id GUID and a traceparent", req.Headers)
	}
	if len(req.TransferEncoding) != 1 || req.TransferEncoding[0] != "chunked" {
		t.Errorf("Transfer-Encoding = %v, want chunked like the host", req.TransferEncoding)
	}
	if inv.Sys == nil || inv.Sys.MethodName != "compliance" || !guidRE.MatchString(inv.Sys.RandGuid) || inv.Timer.IsPastDue || !inv.Timer.Schedule.AdjustForDST {
		t.Errorf("invocation = %+v", inv)
	}
	if st := inv.Timer.ScheduleStatus; st == nil || !st.Last.IsZero() || st.Next.IsZero() || st.Next.Hour()%6 != 0 {
		t.Errorf("ScheduleStatus = %+v, want Last zero (no record yet) and Next on the 6-hour schedule", st)
	}
	if !strings.Contains(req.Body, `"Last":"0001-01-01T00:00:00"`) {
		t.Errorf("body %s: want the host's default(DateTime) for Last", req.Body)
	}
	if got := h.next(t); got.Function != "compliance" || got.Trigger != "admin" || got.Status != 200 {
		t.Errorf("invocation = %+v", got)
	}
	if !strings.Contains(h.log.String(), "compliance: fake compliance ran") {
		t.Errorf("the invocation's Logs were not printed:\n%s", h.log)
	}

	t.Run("admin API", func(t *testing.T) {
		tests := []struct {
			method, path, body string
			want               int
			says               string
		}{
			{http.MethodPost, "/admin/functions/compliance", `{"input":""}`, http.StatusAccepted, ""},
			{http.MethodPost, "/admin/functions/Compliance", "", http.StatusAccepted, ""},
			{http.MethodPost, "/admin/functions/compliance?wait=true", "", http.StatusOK, `"Logs":["fake compliance ran"]`},
			{http.MethodPost, "/admin/functions/rotate?wait=true", "", http.StatusInternalServerError, "rotation failed"},
			{http.MethodPost, "/admin/functions/nope", "", http.StatusNotFound, "no function"},
			{http.MethodPost, "/admin/functions/provision", "", http.StatusBadRequest, "/api/provision"},
			{http.MethodGet, "/admin/functions/compliance", "", http.StatusMethodNotAllowed, ""},
			{http.MethodPost, "/admin/functions/compliance", "input", http.StatusBadRequest, "JSON object"},
		}
		for _, tt := range tests {
			resp, body := do(t, tt.method, h.URL()+tt.path, tt.body, nil)
			if resp.StatusCode != tt.want || !strings.Contains(string(body), tt.says) {
				t.Errorf("%s %s = %d %s, want %d saying %q", tt.method, tt.path, resp.StatusCode, body, tt.want, tt.says)
			}
		}
		seen := map[string]int{}
		for i := 0; i < 4; i++ { // two 202s and two waits
			inv := h.next(t)
			seen[inv.Function+" "+http.StatusText(inv.Status)]++
		}
		if seen["compliance OK"] != 3 || seen["rotate Internal Server Error"] != 1 {
			t.Errorf("invocations = %v, want 3 compliance OK and 1 rotate 500", seen)
		}
		if !strings.Contains(h.log.String(), "rotate (admin) invocation") || !strings.Contains(h.log.String(), "failed: 500") {
			t.Errorf("no failure line for rotate:\n%s", h.log)
		}
	})
}

func TestTimerFiresOnSchedule(t *testing.T) {
	env := baseEnv("APPREG_COMPLIANCE_SCHEDULE=* * * * * *")
	h := start(t, project(t, ""), env, func(o *Options) { o.DisableTimers = false })
	first := h.next(t)
	if first.Function != "compliance" || first.Trigger != "timer" || first.Status != http.StatusOK {
		t.Fatalf("invocation = %+v, want compliance fired by its schedule", first)
	}
	second := h.next(t)
	if second.Function != "compliance" || second.ID == first.ID {
		t.Errorf("second invocation = %+v, want another compliance run", second)
	}
}

func TestUnresolvedSchedule(t *testing.T) {
	env := []string{envFake + "=1", "APPREG_KEY_VAULT_URL=https://real-kv.vault.azure.net/"}
	h := start(t, project(t, ""), env, func(o *Options) { o.DisableTimers = false })
	if !strings.Contains(h.log.String(), "set the app setting APPREG_COMPLIANCE_SCHEDULE") {
		t.Errorf("no line about the unresolved schedule:\n%s", h.log)
	}
	status, body, err := h.Invoke(context.Background(), "compliance")
	if err != nil || status != 200 {
		t.Fatalf("Invoke = %d %s %v, want the admin invocation to work", status, body, err)
	}
	var r struct{ ReturnValue struct{ Request echoed } }
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.ReturnValue.Request.Body, `"ScheduleStatus":null`) {
		t.Errorf("payload %s: want ScheduleStatus null without a schedule", r.ReturnValue.Request.Body)
	}
}

// fakeTenant stands in for the emulator.
type fakeTenant struct {
	mu      sync.Mutex
	closed  bool
	expired []string
}

func (f *fakeTenant) WriteCA(path string) error { return os.WriteFile(path, []byte("FAKE CA"), 0o600) }
func (f *fakeTenant) Env(caFile string) map[string]string {
	return map[string]string{"APPREG_KEY_VAULT_URL": "https://appreg-emulated.vault.azure.net/", "SSL_CERT_FILE": caFile}
}
func (f *fakeTenant) VaultURL() string { return "https://appreg-emulated.vault.azure.net/" }
func (f *fakeTenant) TenantID() string { return "11111111-2222-3333-4444-555555555555" }
func (f *fakeTenant) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
}

func (f *fakeTenant) ExpireSecret(name string, in time.Duration) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expired = append(f.expired, fmt.Sprintf("%s in %s", name, in))
	return "key-1", nil
}

func TestExpireSecretOnTheEmulatedTenantOnly(t *testing.T) {
	local := `{"IsEncrypted":false,"Values":{"APPREG_KEY_VAULT_URL":""}}`
	for _, tc := range []struct {
		name   string
		env    []string
		query  string
		status int
		want   string
	}{
		{"emulated, default days", []string{envFake + "=1"}, "", http.StatusOK, "AppConfig--AuthConfig--ApplicationKey in 480h0m0s"},
		{"emulated, named secret", []string{envFake + "=1"}, "?days=3&name=s1", http.StatusOK, "s1 in 72h0m0s"},
		{"emulated, bad days", []string{envFake + "=1"}, "?days=soon", http.StatusBadRequest, ""},
		{"against Azure", []string{envFake + "=1", "APPREG_KEY_VAULT_URL=https://real-kv.vault.azure.net/"}, "", http.StatusConflict, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := &fakeTenant{}
			h := start(t, project(t, local), tc.env, func(o *Options) {
				o.NewTenant = func() (Tenant, error) { return ft, nil }
			})
			resp, body := do(t, http.MethodPost, h.URL()+"/admin/emulator/expire-secret"+tc.query, "", nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("expire-secret%s = %d %s, want %d", tc.query, resp.StatusCode, body, tc.status)
			}
			ft.mu.Lock()
			defer ft.mu.Unlock()
			if got := strings.Join(ft.expired, ";"); got != tc.want {
				t.Errorf("ExpireSecret calls = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTenantChoice(t *testing.T) {
	local := `{"IsEncrypted":false,"Values":{"APPREG_KEY_VAULT_URL":"","FROM_LOCAL":"local","OVERRIDE":"local"}}`
	tests := []struct {
		name     string
		env      []string
		emulated bool
	}{
		{"no vault: emulated", []string{envFake + "=1", "OVERRIDE=real"}, true},
		{"vault set: Azure", []string{envFake + "=1", "OVERRIDE=real", "APPREG_KEY_VAULT_URL=https://real-kv.vault.azure.net/"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &fakeTenant{}
			calls := 0
			h := start(t, project(t, local), tt.env, func(o *Options) {
				o.NewTenant = func() (Tenant, error) { calls++; return ft, nil }
			})
			resp, body := do(t, http.MethodGet, h.URL()+"/api/env", "", nil)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("GET /api/env = %d %s", resp.StatusCode, body)
			}
			var e echoed
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			if e.Env["FROM_LOCAL"] != "local" || e.Env["OVERRIDE"] != "real" || e.Env["FUNCTIONS_CUSTOMHANDLER_PORT"] == "" {
				t.Errorf("handler env = %v, want local.settings.json below the environment and the port", e.Env)
			}
			if tt.emulated {
				if calls != 1 || h.Tenant() != ft || e.Env["APPREG_KEY_VAULT_URL"] != "https://appreg-emulated.vault.azure.net/" || e.Env["CA"] != "FAKE CA" {
					t.Errorf("calls=%d env=%v, want the emulated tenant's settings and CA file", calls, e.Env)
				}
				if !strings.Contains(h.log.String(), "EMULATED tenant (tenant 11111111-2222-3333-4444-555555555555, vault https://appreg-emulated.vault.azure.net/)") {
					t.Errorf("no plain line about the emulated tenant:\n%s", h.log)
				}
				ca := e.Env["SSL_CERT_FILE"]
				if err := h.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(ca); !os.IsNotExist(err) {
					t.Errorf("CA file %s left behind: %v", ca, err)
				}
				ft.mu.Lock()
				defer ft.mu.Unlock()
				if !ft.closed {
					t.Error("the emulated tenant was not closed")
				}
			} else {
				if calls != 0 || h.Tenant() != nil || e.Env["APPREG_KEY_VAULT_URL"] != "https://real-kv.vault.azure.net/" {
					t.Errorf("calls=%d env=%v, want the environment's vault and no emulator", calls, e.Env)
				}
				if !strings.Contains(h.log.String(), "running against Azure") {
					t.Errorf("no line saying it runs against Azure:\n%s", h.log)
				}
			}
		})
	}
}

func TestHandlerFailures(t *testing.T) {
	t.Run("exits before ready", func(t *testing.T) {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		_, err = Start(context.Background(), Options{Dir: project(t, ""), Handler: exe, Addr: "127.0.0.1:0",
			Environ: baseEnv(envFakeMode + "=exit"), Log: io.Discard, Stdout: io.Discard, Stderr: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "exited before it answered") || !strings.Contains(err.Error(), "exit status 3") {
			t.Errorf("Start error = %v, want the early exit reported", err)
		}
	})
	t.Run("missing executable", func(t *testing.T) {
		_, err := Start(context.Background(), Options{Dir: project(t, ""), Addr: "127.0.0.1:0", Environ: baseEnv(), Log: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "make build") {
			t.Errorf("Start error = %v, want a hint to build bin/handler", err)
		}
	})
	t.Run("kill stops the handler at once", func(t *testing.T) {
		h := start(t, project(t, ""), baseEnv(), nil)
		if h.PID() <= 0 {
			t.Fatalf("PID = %d, want the handler's", h.PID())
		}
		if err := h.Kill(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-h.Done():
		default:
			t.Fatal("Done not closed after Kill")
		}
		if _, err := http.Get(h.HandlerURL() + "/"); err == nil {
			t.Error("the handler still answers after Kill")
		}
		if resp, _ := do(t, http.MethodGet, h.URL()+"/api/env", "", nil); resp.StatusCode < 500 {
			t.Errorf("a forwarded request after Kill: %d, want a 5xx from the host", resp.StatusCode)
		}
		if err := h.Kill(); err == nil {
			t.Error("a second Kill succeeded")
		}
	})
	t.Run("close kills the handler", func(t *testing.T) {
		h := start(t, project(t, ""), baseEnv(), nil)
		handlerURL := h.HandlerURL()
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-h.Done():
		default:
			t.Fatal("Done not closed after Close")
		}
		if _, err := http.Get(handlerURL + "/"); err == nil {
			t.Error("the handler still answers after Close")
		}
		if _, _, err := h.Invoke(context.Background(), "compliance"); err == nil {
			t.Error("Invoke after Close succeeded")
		}
	})
}
