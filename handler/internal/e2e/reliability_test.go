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
	"strings"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest/report"
	"github.com/scepman-appreg/appreg/handler/internal/funchost"
)

// The black-box part of RELIABILITY.md: the built handler under the local host, killed right after each
// write; bad requests and bad settings; exposure.

// process is one handler process (bin/handler under funchost) on a tenant that outlives it.
type process struct {
	t    *testing.T
	host *funchost.Host
	logs *syncBuffer
}

// startOn starts bin/handler under funchost on an existing emulated tenant.
func startOn(t *testing.T, tenant *emulator.Tenant, settings map[string]string) *process {
	t.Helper()
	host, logs := launch(t, tenant, settings, nil)
	return &process{t: t, host: host, logs: logs}
}

// send sends a request and returns its status and body ("" and the error on a transport failure); it is
// safe in a goroutine.
func send(method, url, contentType string, body []byte, chunked bool) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
		if chunked {
			r = io.NopCloser(r) // no length known: Transfer-Encoding chunked
		}
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	hygiene.Record(b)
	if err != nil {
		return resp.StatusCode, b, fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, b, nil
}

// provision calls POST /api/provision through the host.
func (p *process) provision() (int, []byte, error) {
	return send(http.MethodPost, p.host.URL()+"/api/provision", "", nil, false)
}

// rotate runs the rotate timer through the host.
func (p *process) rotate() (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	status, body, err := p.host.Invoke(ctx, "rotate")
	hygiene.Record(body)
	return status, body, err
}

// crashStep is a write after which the handler is killed.
type crashStep struct {
	run   string // "provision" or "rotation"
	op    string
	skip  int // matching requests let through first (the second assignment)
	label string
	state string // what an admin did before the run: "", stateDeleted or stateDisabled
}

// What an admin did to the secret before a crash step's run (reference section 8).
const (
	stateDeleted  = "secret deleted"   // soft-deleted: the run recovers it, which takes crashRecovery
	stateDisabled = "version disabled" // the current version disabled: the run stores a new one
)

// crashRecovery is how long a recovery of the soft-deleted secret takes in the crash steps: long enough
// that the new process may start while it still runs.
const crashRecovery = 3 * time.Second

var crashSteps = []crashStep{
	{"provision", emulator.OpUpsertApplication, 0, "upsertApplication", ""},
	{"provision", emulator.OpCreateServicePrincipal, 0, "createServicePrincipal", ""},
	{"provision", emulator.OpAssignAppRole, 0, "assignAppRole #1", ""},
	{"provision", emulator.OpAssignAppRole, 1, "assignAppRole #2", ""},
	{"provision", emulator.OpAddPassword, 0, "addPassword", ""},
	{"provision", emulator.OpSetSecret, 0, "setSecret", ""},
	{"rotation", emulator.OpAddPassword, 0, "addPassword", ""},
	{"rotation", emulator.OpSetSecret, 0, "setSecret", ""},
	{"rotation", emulator.OpRemovePassword, 0, "removePassword", ""},
	{"provision", emulator.OpRecoverDeletedSecret, 0, "recoverDeletedSecret", stateDeleted},
	{"rotation", emulator.OpRecoverDeletedSecret, 0, "recoverDeletedSecret", stateDeleted},
	{"rotation", emulator.OpSetSecret, 0, "setSecret after the recovery", stateDeleted},
	{"provision", emulator.OpSetSecret, 0, "setSecret replacing the disabled version", stateDisabled},
	{"rotation", emulator.OpSetSecret, 0, "setSecret replacing the disabled version", stateDisabled},
	// The renewal signs the new credential in before it stores it (issue 11): killed while waiting for
	// the token service to accept it. The two sign-ins before are the observation's, with the current
	// secret, one per resource.
	{"rotation", emulator.OpLoginToken, 2, "sign-in of the new credential (waiting for acceptance)", ""},
}

// name is the step's run, with what was done to the secret before it.
func (s crashStep) name() string {
	if s.state == "" {
		return s.run
	}
	return s.run + " (" + s.state + ")"
}

// TestReliabilityCrashAtEveryStep kills the handler process with SIGKILL right after each write of a
// fresh provision and of a rotation (the write applied, its answer held back), starts a new process on
// the same tenant, runs again, and checks the invariants; past the orphan rule a rotation cleans up.
func TestReliabilityCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	rows := make([][]string, len(crashSteps))
	t.Run("steps", func(t *testing.T) {
		for i, step := range crashSteps {
			t.Run(step.name()+" "+step.label, func(t *testing.T) {
				t.Parallel()
				rows[i] = crashAt(t, step)
			})
		}
	})
	tab := report.Table{
		File:  "2-crash",
		Title: "Crash at every step: the handler killed (SIGKILL) right after the write, a new process runs again",
		Header: []string{"run", "killed right after", "the killed call", "right after the kill", "run again (new process)",
			"after a rotation past the orphan rule", "invariants"},
		Notes: []string{
			"a rotation run here renews the secret and removes the credential whose overlap has passed: three writes",
			"cred, ver: the application's password credentials and the secret's versions; unnamed: credentials that no version names (left by the killed run), which the orphan rule removes once an hour old",
			"the rotation past the orphan rule runs after the state was aged by 61 minutes (every time in the tenant moved back), as the handler runs on the wall clock",
			fmt.Sprintf("(secret deleted): the secret soft-deleted before the run; a recovery takes %s, so the new process may start while it runs (Key Vault then answers 404 to reads and 409 ObjectIsBeingRecovered to writes)", crashRecovery),
			"(version disabled): the current version disabled before the run (403 SecretDisabled on read); the run stores a new version, and the disabled version's credential follows the overlap rule",
		},
	}
	for _, r := range rows {
		if r != nil {
			tab.Rows = append(tab.Rows, r)
		}
	}
	if err := tab.Print(); err != nil {
		t.Error(err)
	}
}

func crashAt(t *testing.T, step crashStep) []string {
	t.Helper()
	tenant := newTenant(t, emulator.Options{})
	a := startOn(t, tenant, nil)
	var violations []string
	check := func(when string, phase emulatortest.Phase, noneYet bool) {
		t.Helper()
		want := emulatortest.Want{Now: time.Now(), OrphanAge: appreg.OrphanAge, NoneYet: noneYet}
		violations = append(violations, emulatortest.Verify(t, when, tenant, want, phase)...)
	}
	call := (*process).provision
	if step.run == "provision" && step.state != "" {
		if status, body, err := a.provision(); err != nil || status != http.StatusCreated {
			t.Fatalf("setting up: provision: %d %s %v", status, body, err)
		}
	}
	if step.run == "rotation" {
		// Provisioned, renewed once, the overlap passed, and due again: the next rotation adds a
		// credential, stores it, and removes the credential replaced two renewals ago.
		if status, body, err := a.provision(); err != nil || status != http.StatusCreated {
			t.Fatalf("setting up: provision: %d %s %v", status, body, err)
		}
		emulatortest.Age(tenant, 24*time.Hour) // Key Vault's created times have whole seconds: keep the versions apart
		dueIn(tenant, 20*24*time.Hour)
		if status, body, err := a.rotate(); err != nil || status != http.StatusOK {
			t.Fatalf("setting up: renewal: %d %s %v", status, body, err)
		}
		emulatortest.Age(tenant, 49*time.Hour)
		dueIn(tenant, 20*24*time.Hour)
		call = (*process).rotate
	}
	switch step.state {
	case stateDeleted:
		if err := tenant.DeleteSecret(secretName); err != nil {
			t.Fatalf("setting up: %v", err)
		}
		tenant.SetRecoveryDelay(crashRecovery)
	case stateDisabled:
		if err := tenant.DisableCurrentVersion(secretName); err != nil {
			t.Fatalf("setting up: %v", err)
		}
	}
	service := serviceOf(step.op)
	tenant.ResetStats()
	tenant.AddFault(emulator.Fault{Service: service, Operation: step.op, Kind: emulator.FaultHang, After: true, Skip: step.skip})

	type answer struct {
		status int
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		status, _, err := call(a)
		done <- answer{status, err}
	}()
	deadline := time.Now().Add(time.Minute)
	for tenant.Stats().FaultsFired == 0 {
		select {
		case ans := <-done:
			t.Fatalf("the %s run ended (%d, %v) before the write %s", step.run, ans.status, ans.err, step.label)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the write %s never happened", step.label)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if applied := tenant.Stats().Op(step.op).Applied; step.op != emulator.OpLoginToken && applied < step.skip+1 {
		t.Fatalf("%s applied %d times when the fault fired, want %d", step.op, applied, step.skip+1)
	}
	pid := a.host.PID()
	if err := a.host.Kill(); err != nil {
		t.Fatalf("killing handler %d: %v", pid, err)
	}
	ans := <-done
	killed := fmt.Sprintf("the host answered %d, no body", ans.status)
	if ans.err != nil {
		killed = "the invocation failed (" + shortErr(ans.err) + ")"
	}
	tenant.ClearFaults()
	// A first provision killed may leave nothing yet.
	check("right after the kill", emulatortest.Always, step.run == "provision" && step.state == "")
	afterKill := summarize(tenant)

	b := startOn(t, tenant, nil)
	status, body, err := call(b)
	if err != nil || status >= 300 {
		t.Errorf("the %s run in a new process: %d %s %v", step.run, status, body, err)
	}
	again := fmt.Sprintf("%d", status)
	check("after the run in a new process", emulatortest.Converged, false)
	again += ", " + summarize(tenant)

	emulatortest.Age(tenant, appreg.OrphanAge+time.Minute)
	if status, body, err := b.rotate(); err != nil || status != http.StatusOK {
		t.Errorf("the rotation past the orphan rule: %d %s %v", status, body, err)
	}
	check("after a rotation past the orphan rule", emulatortest.Cleaned, false)
	return []string{step.name(), step.label, killed, afterKill, again, summarize(tenant), emulatortest.Verdict(violations)}
}

// dueIn moves the current credential's end (and its version's exp) to now+d: inside the renewal window.
func dueIn(tenant *emulator.Tenant, d time.Duration) {
	tenant.Mutate(func(s *emulator.State) {
		app := s.Application("scepman")
		setExpiry(s, app.AppID, time.Now().Add(d))
	})
}

// summarize says what the tenant holds: credentials, versions, and the unnamed credentials.
func summarize(tenant *emulator.Tenant) string {
	s := tenant.Snapshot()
	app := s.Application("scepman")
	if app == nil {
		return "no application"
	}
	versions, where := 0, ""
	if sec := s.Secret(secretName); sec != nil {
		versions = len(sec.Versions)
	}
	for _, d := range s.DeletedSecrets {
		if strings.EqualFold(d.Name, secretName) {
			versions, where = len(d.Versions), " (deleted)"
			if !d.RecoveredAt.IsZero() {
				where = " (being recovered)"
			}
		}
	}
	out := fmt.Sprintf("%d cred, %d ver%s", len(app.PasswordCredentials), versions, where)
	if n := len(emulatortest.Unnamed(s, emulatortest.Want{})); n > 0 {
		out += fmt.Sprintf(", %d unnamed", n)
	}
	return out
}

func serviceOf(op string) string { return op[:strings.IndexByte(op, '.')] }

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// badRequest is a hand-written request the handler must refuse without touching the tenant.
type badRequest struct {
	name        string
	direct      bool // to the handler itself (as only the host can), else through the host
	method      string
	path        string
	contentType string
	body        string
	chunked     bool
	status      int
	code        string // the error code of the handler's answer; "" when the host answers
	says        string
}

var timerBody = `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{"sys":{"MethodName":"rotate","UtcNow":"2024-10-04T12:00:00.0173415Z","RandGuid":"4e773554-f6b7-4ea2-b07d-4c5fd5aba741"}}}`

func badRequests() []badRequest {
	big := strings.Repeat(" ", 64<<10+1)
	const js = "application/json"
	return []badRequest{
		{"GET provision at the host", false, http.MethodGet, "/api/provision", "", "", false, 404, "", "the host routes by method"},
		{"GET provision", true, http.MethodGet, "/api/provision", "", "", false, 405, "MethodNotAllowed", "GET is not allowed on /api/provision"},
		{"POST status", true, http.MethodPost, "/api/status", "", "", false, 405, "MethodNotAllowed", "POST is not allowed on /api/status"},
		{"GET rotate", true, http.MethodGet, "/rotate", "", "", false, 405, "MethodNotAllowed", "GET is not allowed on /rotate"},
		{"unknown route", true, http.MethodPost, "/api/delete", js, "{}", false, 404, "NotFound", "no function answers POST /api/delete"},
		{"provision text/plain", false, http.MethodPost, "/api/provision", "text/plain", "{}", false, 400, "InvalidContentType", "expected Content-Type application/json"},
		{"provision body without content type", false, http.MethodPost, "/api/provision", "", "{}", false, 400, "InvalidContentType", "no Content-Type"},
		{"provision form", false, http.MethodPost, "/api/provision", "application/x-www-form-urlencoded", "force=1", false, 400, "InvalidContentType", "application/x-www-form-urlencoded"},
		{"provision unknown field", false, http.MethodPost, "/api/provision", js, `{"uniqueName":"other"}`, false, 400, "BadRequest", `unknown field "uniqueName"`},
		{"provision array", false, http.MethodPost, "/api/provision", js, `[{}]`, false, 400, "BadRequest", "the body is an array"},
		{"provision null", false, http.MethodPost, "/api/provision", js, `null`, false, 400, "BadRequest", "the body is null"},
		{"provision truncated", false, http.MethodPost, "/api/provision", js, `{"a`, false, 400, "BadRequest", "not JSON"},
		{"provision two objects", false, http.MethodPost, "/api/provision", js, `{} {}`, false, 400, "BadRequest", "data after the JSON object"},
		{"provision invalid UTF-8", false, http.MethodPost, "/api/provision", js, "{\"\xff\":1}", false, 400, "BadRequest", "unknown field"},
		{"provision oversized", false, http.MethodPost, "/api/provision", js, big, false, 413, "RequestTooLarge", "exceeds the limit of 65536 bytes"},
		{"provision oversized, chunked", false, http.MethodPost, "/api/provision", js, big, true, 413, "RequestTooLarge", "exceeds the limit"},
		{"timer text/plain", true, http.MethodPost, "/rotate", "text/plain", timerBody, false, 400, "InvalidContentType", "an invocation with Content-Type \"text/plain\""},
		{"timer empty", true, http.MethodPost, "/rotate", js, "", false, 400, "InvalidInvocation", "empty body"},
		{"timer not JSON", true, http.MethodPost, "/compliance", js, "timer", false, 400, "InvalidInvocation", "not valid JSON"},
		{"timer array", true, http.MethodPost, "/compliance", js, `[{"Data":{}}]`, false, 400, "InvalidInvocation", "an array: expected a JSON object"},
		{"timer null", true, http.MethodPost, "/rotate", js, `null`, false, 400, "InvalidInvocation", "null: expected a JSON object"},
		{"timer a JSON string", true, http.MethodPost, "/rotate", js, `"{\"Data\":{}}"`, false, 400, "InvalidInvocation", "expected a JSON object"},
		{"timer a number", true, http.MethodPost, "/rotate", js, `42`, false, 400, "InvalidInvocation", "the number 42: expected a JSON object"},
		{"timer two objects", true, http.MethodPost, "/rotate", js, `{} {}`, false, 400, "InvalidInvocation", "unexpected data after the JSON value"},
		{"timer oversized", true, http.MethodPost, "/rotate", js, big, false, 413, "RequestTooLarge", "exceeds the limit"},
	}
}

// TestReliabilityBadRequests sends every bad request to a handler on a provisioned tenant: each gets its
// status and a message that says what is wrong, and none reaches Graph or Key Vault.
func TestReliabilityBadRequests(t *testing.T) {
	t.Parallel()
	a := start(t, setup{})
	if got := a.call(http.MethodPost, "/api/provision", "", nil); got != http.StatusCreated {
		t.Fatalf("provision: %d", got)
	}
	tab := report.Table{
		File:   "4-bad-requests",
		Title:  "Bad requests: status and message; requests and writes that reached Graph and Key Vault",
		Header: []string{"request", "to", "status", "message", "requests / writes"},
	}
	for _, br := range badRequests() {
		a.tenant.ResetStats()
		base, to := a.host.URL(), "host"
		if br.direct {
			base, to = a.host.HandlerURL(), "handler"
		}
		var body []byte
		if br.body != "" || br.method == http.MethodPost {
			body = []byte(br.body)
		}
		status, b, err := send(br.method, base+br.path, br.contentType, body, br.chunked)
		if err != nil {
			t.Errorf("%s: %v", br.name, err)
			continue
		}
		msg := "(the host's answer, no body)"
		if br.code != "" {
			var e apiError
			if err := json.Unmarshal(b, &e); err != nil {
				t.Errorf("%s: %d %q is not the error JSON: %v", br.name, status, b, err)
			}
			if e.Error.Code != br.code || !strings.Contains(e.Error.Message, br.says) {
				t.Errorf("%s: error %+v, want code %s saying %q", br.name, e.Error, br.code, br.says)
			}
			msg = e.Error.Code + ": " + e.Error.Message
		}
		if status != br.status {
			t.Errorf("%s: status %d, want %d (%s)", br.name, status, br.status, b)
		}
		st := a.tenant.Stats()
		reqs := st.Service(emulator.ServiceGraph).Requests + st.Service(emulator.ServiceKeyVault).Requests
		if reqs != 0 || a.writes() != 0 {
			t.Errorf("%s: %d requests and %d writes reached the tenant, want none", br.name, reqs, a.writes())
		}
		tab.Rows = append(tab.Rows, []string{br.name, to, fmt.Sprint(status), msg, fmt.Sprintf("%d / %d", reqs, a.writes())})
	}
	checkConverged(t, a.tenant)
	if err := tab.Print(); err != nil {
		t.Error(err)
	}
}

// badSetting is an invalid app setting, with what the message must say.
type badSetting struct {
	name, value string // value "" with unset: the setting is removed
	unset       bool
	says        string
}

func badSettings() []badSetting {
	return []badSetting{
		{"APPREG_KEY_VAULT_URL", "", true, "APPREG_KEY_VAULT_URL is not set: expected the vault's https URL"},
		{"APPREG_KEY_VAULT_URL", "http://appreg-emulated.vault.azure.net/", false, "expected the vault's https URL"},
		{"APPREG_KEY_VAULT_URL", "https://appreg-emulated.vault.azure.net/secrets/x", false, "expected the vault's https URL"},
		{"APPREG_DISPLAY_NAME", strings.Repeat("S", 121), false, "at most 120 characters"},
		{"APPREG_UNIQUE_NAME", "scep man", false, "1 to 120 letters, digits"},
		{"APPREG_PERMISSION_LEVEL", "3", false, "0, 1 or 2"},
		{"APPREG_PERMISSION_LEVEL", "high", false, "0, 1 or 2"},
		{"APPREG_SECRET_NAME", "App_Key", false, "a Key Vault secret name"},
		{"APPREG_SECRET_LIFETIME_DAYS", "0", false, "from 1 to 3650"},
		{"APPREG_SECRET_LIFETIME_DAYS", "3651", false, "from 1 to 3650"},
		{"APPREG_SECRET_RENEW_BEFORE_DAYS", "180", false, "fewer days than APPREG_SECRET_LIFETIME_DAYS"},
		{"APPREG_SECRET_RENEW_BEFORE_DAYS", "-1", false, "from 0 to 3649"},
		{"APPREG_SECRET_OVERLAP_HOURS", "soon", false, "from 0 to 8760"},
		{"APPREG_SECRET_OVERLAP_HOURS", "4320", false, "fewer hours than the secret lifetime"},
		{"APPREG_REMEDIATE", "yes", false, "true or false"},
		{"APPREG_GRAPH_ENDPOINT", "http://graph.microsoft.com", false, "an https root URL"},
		{"APPREG_GRAPH_ENDPOINT", "https://graph.microsoft.com/v1.0", false, "an https root URL"},
		{"APPREG_COMPLIANCE_SCHEDULE", "0 */6 * * *", false, "six fields"},
		{"APPREG_ROTATION_SCHEDULE", "daily", false, "six fields"},
		{"APPREG_REFRESH_SITE_IDS", "scepman-site", false, "App Service resource ids"},
		{"AZURE_CLIENT_ID", "scepman-identity", false, "a GUID"},
	}
}

// TestReliabilityBadSettings starts the handler with each invalid setting: every function answers 500
// InvalidConfiguration naming the setting and what it expects, and nothing reaches Graph or Key Vault. An
// invalid FUNCTIONS_CUSTOMHANDLER_PORT stops the handler at start, naming the variable.
func TestReliabilityBadSettings(t *testing.T) {
	t.Parallel()
	settings := badSettings()
	rows := make([][]string, len(settings)+1)
	t.Run("settings", func(t *testing.T) {
		for i, bs := range settings {
			t.Run(bs.name+"="+bs.value, func(t *testing.T) {
				t.Parallel()
				s := setup{settings: map[string]string{bs.name: bs.value}}
				if bs.unset {
					s = setup{env: func(env map[string]string) { delete(env, bs.name) }}
				}
				a := start(t, s)
				var e apiError
				status := a.call(http.MethodPost, "/api/provision", "", &e)
				if status != http.StatusInternalServerError || e.Error.Code != "InvalidConfiguration" ||
					!strings.Contains(e.Error.Message, bs.name) || !strings.Contains(e.Error.Message, bs.says) {
					t.Errorf("provision = %d %+v, want 500 InvalidConfiguration naming %s and saying %q", status, e, bs.name, bs.says)
				}
				var se apiError
				if got := a.call(http.MethodGet, "/api/status", "", &se); got != http.StatusInternalServerError || se.Error.Code != "InvalidConfiguration" {
					t.Errorf("status = %d %+v, want 500 InvalidConfiguration", got, se)
				}
				timers := ""
				for _, fn := range []string{"rotate", "compliance"} {
					got, _ := a.invoke(fn)
					if got != http.StatusInternalServerError {
						t.Errorf("%s = %d, want 500", fn, got)
					}
					timers += fmt.Sprintf(", %s %d", fn, got)
				}
				st := a.tenant.Stats()
				reqs := st.Service(emulator.ServiceGraph).Requests + st.Service(emulator.ServiceKeyVault).Requests
				if reqs != 0 {
					t.Errorf("%d requests reached Graph and Key Vault, want 0", reqs)
				}
				if a.waitLog(func(l map[string]any) bool {
					return l["level"] == "ERROR" && strings.Contains(fmt.Sprint(l["err"]), bs.name)
				}) == nil {
					t.Errorf("no ERROR log line at start names %s", bs.name)
				}
				value := fmt.Sprintf("%q", bs.value)
				if bs.unset {
					value = "(unset)"
				} else if len(value) > 24 {
					value = value[:21] + "…\""
				}
				rows[i] = []string{bs.name, value, fmt.Sprintf("provision %d, status %d%s", status, 500, timers),
					e.Error.Message, fmt.Sprintf("%d / %d", reqs, a.writes())}
			})
		}
		t.Run("FUNCTIONS_CUSTOMHANDLER_PORT", func(t *testing.T) {
			t.Parallel()
			tenant := newTenant(t, emulator.Options{})
			cmd := exec.Command(handlerBin)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "FUNCTIONS_CUSTOMHANDLER_PORT=70000"}
			for k, v := range emulatortest.Env(t, tenant) {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.CombinedOutput()
			hygiene.Record(out)
			if err == nil || !bytes.Contains(out, []byte("FUNCTIONS_CUSTOMHANDLER_PORT")) {
				t.Errorf("the handler with port 70000: %v, output %s; want it to stop naming the variable", err, out)
			}
			msg := ""
			for _, line := range bytes.Split(out, []byte("\n")) {
				var l map[string]any
				if json.Unmarshal(line, &l) == nil && l["msg"] == "handler stopped" {
					msg = fmt.Sprint(l["err"])
				}
			}
			st := tenant.Stats()
			reqs := st.Service(emulator.ServiceGraph).Requests + st.Service(emulator.ServiceKeyVault).Requests
			rows[len(settings)] = []string{"FUNCTIONS_CUSTOMHANDLER_PORT", `"70000"`, "the handler exits 1 at start (" + shortErr(err) + ")", msg, fmt.Sprintf("%d / 0", reqs)}
		})
	})
	tab := report.Table{
		File:   "4-bad-settings",
		Title:  "Invalid settings: every function refuses, naming the setting; nothing reaches Graph or Key Vault",
		Header: []string{"setting", "value", "answers", "message", "requests / writes"},
	}
	for _, r := range rows {
		if r != nil {
			tab.Rows = append(tab.Rows, r)
		}
	}
	if err := tab.Print(); err != nil {
		t.Error(err)
	}
}

// TestReliabilityExposure: the HTTP functions keep authLevel function (the host checks the function key
// before forwarding); the handler listens on loopback only (TestHandlerListensOnLoopbackOnly); the
// templates give the identity nothing beyond its roles (infra's TestRoleAssignments); the package check
// refuses an anonymous function (pack's TestVerify).
func TestReliabilityExposure(t *testing.T) {
	t.Parallel()
	fns, err := filepath.Glob(filepath.Join(repoRoot, "functions", "*", "function.json"))
	if err != nil || len(fns) != 4 {
		t.Fatalf("functions/*/function.json: %v, %d found", err, len(fns))
	}
	tab := report.Table{
		File:   "6-exposure",
		Title:  "Exposure",
		Header: []string{"check", "result", "test"},
	}
	for _, f := range fns {
		var fj struct {
			Bindings []struct {
				Type, AuthLevel string
			}
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &fj); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := filepath.Base(filepath.Dir(f))
		for _, bd := range fj.Bindings {
			switch {
			case bd.Type == "httpTrigger" && bd.AuthLevel != "function":
				t.Errorf("function %s: authLevel %q, want function", name, bd.AuthLevel)
			case bd.Type == "httpTrigger":
				tab.Rows = append(tab.Rows, []string{"functions/" + name + " authLevel", bd.AuthLevel, "TestReliabilityExposure (e2e)"})
			case bd.Type == "timerTrigger":
				tab.Rows = append(tab.Rows, []string{"functions/" + name + " trigger", "timer (not reachable over HTTP but through the host's admin API, which needs the master key)", "TestReliabilityExposure (e2e)"})
			}
		}
	}
	tab.Rows = append(tab.Rows,
		[]string{"the handler listens on", "127.0.0.1 only: no connection on any other address", "TestHandlerListensOnLoopbackOnly (e2e)"},
		[]string{"a package with an anonymous HTTP function", "refused by make package's check", "TestVerify/anonymous_HTTP_function (pack)"},
		[]string{"roles of the function's identity in the templates", "only the listed ones, at their scopes", "TestRoleAssignments (infra)"},
		[]string{"secrets in template outputs or defaults", "none", "TestNoSecretDefaultsOrOutputs (infra)"},
	)
	if err := tab.Print(); err != nil {
		t.Error(err)
	}
}
