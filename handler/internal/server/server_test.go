package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/hostproto"
	"github.com/scepman-appreg/appreg/handler/internal/logctx"
)

const fixtures = "../hostproto/testdata"

// stub is a Service that answers what it is told and counts calls.
type stub struct {
	provision  appreg.ProvisionResult
	status     appreg.StatusReport
	compliance appreg.ComplianceResult
	rotate     appreg.RotateResult
	err        error
	panicMsg   string

	calls     atomic.Int32
	deadlines chan time.Duration // remaining time until the deadline at each call (buffered)
}

func newStub() *stub {
	return &stub{
		provision: appreg.ProvisionResult{TenantID: "t", AppID: "app", DisplayName: "SCEPman", UniqueName: "scepman", Changes: []string{}},
		status:    appreg.StatusReport{Compliant: true, AppID: "app", Findings: []appreg.Finding{}},
		compliance: appreg.ComplianceResult{Compliant: true,
			Before: appreg.StatusReport{Compliant: true, AppID: "app", Findings: []appreg.Finding{}}},
		rotate:    appreg.RotateResult{Renewed: true, Reason: "secret expiring", Changes: []string{"added credential k2", "stored secret version v2"}},
		deadlines: make(chan time.Duration, 16),
	}
}

func (s *stub) enter(ctx context.Context) error {
	s.calls.Add(1)
	if d, ok := ctx.Deadline(); ok {
		s.deadlines <- time.Until(d)
	} else {
		s.deadlines <- -1
	}
	logctx.From(ctx).Info("engine at work")
	if s.panicMsg != "" {
		panic(s.panicMsg)
	}
	return s.err
}

func (s *stub) Provision(ctx context.Context) (appreg.ProvisionResult, error) {
	return s.provision, s.enter(ctx)
}
func (s *stub) Status(ctx context.Context) (appreg.StatusReport, error) {
	return s.status, s.enter(ctx)
}
func (s *stub) Compliance(ctx context.Context) (appreg.ComplianceResult, error) {
	return s.compliance, s.enter(ctx)
}
func (s *stub) Rotate(ctx context.Context) (appreg.RotateResult, error) {
	return s.rotate, s.enter(ctx)
}

// logBuffer collects JSON log lines safely.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines parses every log line; the test fails on a line that is not JSON.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func (b *logBuffer) withMsg(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range b.lines(t) {
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

type fixture struct {
	e    *echo.Echo
	svc  *stub
	logs *logBuffer
}

func newFixture(t *testing.T, cfgErr error) *fixture {
	t.Helper()
	f := &fixture{svc: newStub(), logs: &logBuffer{}}
	logger := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.e = New(Options{Service: f.svc, ConfigErr: cfgErr, Logger: logger, HTTPTimeout: time.Minute, TimerTimeout: 5 * time.Minute})
	return f
}

type reqOpt func(*http.Request)

func header(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

func unknownLength(r *http.Request) { r.ContentLength = -1 }

func (f *fixture) do(t *testing.T, method, path, body string, opts ...reqOpt) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for _, o := range opts {
		o(req)
	}
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, req)
	return rec
}

func decodeError(t *testing.T, rec *httptest.ResponseRecorder) ErrorDetail {
	t.Helper()
	var b ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Error.Code == "" {
		t.Fatalf("body %q is not the contract's error JSON: %v", rec.Body.String(), err)
	}
	return b.Error
}

func timerBody(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var jsonCT = header("Content-Type", hostproto.ContentType)

func TestReady(t *testing.T) {
	for name, cfgErr := range map[string]error{"valid configuration": nil, "invalid configuration": errors.New("APPREG_KEY_VAULT_URL is not set")} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, cfgErr)
			rec := f.do(t, http.MethodGet, "/", "")
			if rec.Code != http.StatusOK {
				t.Errorf("GET / = %d, want 200", rec.Code)
			}
			if n := f.svc.calls.Load(); n != 0 {
				t.Errorf("service called %d times by the readiness probe", n)
			}
		})
	}
}

func TestProvision(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		opts    []reqOpt
		created bool
		want    int
	}{
		{"empty body, no content type", "", nil, false, http.StatusOK},
		{"empty body, text content type", "", []reqOpt{header("Content-Type", "text/plain")}, false, http.StatusOK},
		{"empty object", "{}", []reqOpt{header("Content-Type", "application/json")}, false, http.StatusOK},
		{"empty object with spaces and charset", " { }\r\n", []reqOpt{header("Content-Type", "application/json; charset=utf-8")}, false, http.StatusOK},
		{"created", "", nil, true, http.StatusCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.svc.provision.Created = tt.created
			rec := f.do(t, http.MethodPost, "/api/provision", tt.body, tt.opts...)
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.want, rec.Body)
			}
			var got appreg.ProvisionResult
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %s: %v", rec.Body, err)
			}
			if got.AppID != "app" || got.UniqueName != "scepman" {
				t.Errorf("body = %+v, want the service's result", got)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t, nil)
	f.svc.status = appreg.StatusReport{Compliant: false, AppID: "app",
		Findings: []appreg.Finding{{Code: appreg.CodeConsentMissing, Severity: appreg.SeverityError, Message: "no consent"}}}
	rec := f.do(t, http.MethodGet, "/api/status", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", rec.Code, rec.Body)
	}
	var got appreg.StatusReport
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Compliant || len(got.Findings) != 1 || got.Findings[0].Code != appreg.CodeConsentMissing {
		t.Errorf("body = %+v, want the service's report", got)
	}
}

// sendRaw writes a fixture's bytes as they are to the server and reads the answer.
func sendRaw(t *testing.T, addr string, raw []byte) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestHostFixturesByteForByte(t *testing.T) {
	tests := []struct {
		fixture string
		want    int
		invoke  bool // answer is the invocation response JSON
	}{
		{"timer_normal.http", http.StatusOK, true},
		{"timer_null_schedule_status.http", http.StatusOK, true},
		{"timer_offsetless.http", http.StatusOK, true},
		{"timer_string_binding.http", http.StatusOK, true},
		{"timer_past_due.http", http.StatusOK, true},
		{"timer_retry_context.http", http.StatusOK, true},
		{"http_provision.http", http.StatusOK, false},
		{"http_status.http", http.StatusOK, false},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			f := newFixture(t, nil)
			ts := httptest.NewServer(f.e)
			t.Cleanup(ts.Close)
			raw, err := os.ReadFile(filepath.Join(fixtures, tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
			if err != nil {
				t.Fatal(err)
			}
			resp, body := sendRaw(t, ts.Listener.Addr().String(), raw)
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.want, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want application/json (the host fails other types)", ct)
			}
			if tt.invoke {
				var r struct {
					Outputs     map[string]any
					Logs        []string
					ReturnValue map[string]any
				}
				if err := json.Unmarshal(body, &r); err != nil {
					t.Fatalf("answer %s: %v", body, err)
				}
				if r.Outputs == nil || len(r.Logs) == 0 || r.ReturnValue == nil {
					t.Errorf("answer = %s, want Outputs {}, Logs and the ReturnValue", body)
				}
			}
			if n := f.svc.calls.Load(); n != 1 {
				t.Errorf("service calls = %d, want 1", n)
			}
			id := req.Header.Get(hostproto.HeaderInvocationID)
			work := f.logs.withMsg(t, "engine at work")
			if len(work) != 1 || work[0]["invocationId"] != id {
				t.Errorf("engine log lines = %v, want one with invocationId %s", work, id)
			}
			if key := req.Header.Get("x-functions-key"); key != "" && strings.Contains(f.logs.String(), key) {
				t.Error("the function key appears in the logs")
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	big := strings.Repeat(" ", hostproto.MaxBodyBytes+1)
	tests := []struct {
		name         string
		method, path string
		body         string
		opts         []reqOpt
		status       int
		code         string
		says         string
	}{
		{"GET provision", http.MethodGet, "/api/provision", "", nil, 405, CodeMethodNotAllowed, "GET is not allowed on /api/provision; allowed: OPTIONS, POST"},
		{"POST status", http.MethodPost, "/api/status", "", nil, 405, CodeMethodNotAllowed, "POST is not allowed on /api/status"},
		{"GET compliance", http.MethodGet, "/compliance", "", nil, 405, CodeMethodNotAllowed, ""},
		{"PUT rotate", http.MethodPut, "/rotate", "", nil, 405, CodeMethodNotAllowed, ""},
		{"DELETE ready", http.MethodDelete, "/", "", nil, 405, CodeMethodNotAllowed, ""},
		{"unknown route", http.MethodGet, "/api/nope", "", nil, 404, CodeNotFound, "no function answers GET /api/nope"},
		{"trailing slash", http.MethodPost, "/api/provision/", "", nil, 404, CodeNotFound, ""},
		{"provision text body", http.MethodPost, "/api/provision", "{}", []reqOpt{header("Content-Type", "text/plain")}, 400, CodeInvalidContentType, "expected Content-Type application/json"},
		{"provision body without content type", http.MethodPost, "/api/provision", "{}", nil, 400, CodeInvalidContentType, "no Content-Type"},
		{"provision unknown field", http.MethodPost, "/api/provision", `{"force":true}`, []reqOpt{jsonCT}, 400, CodeBadRequest, `unknown field "force"`},
		{"provision array", http.MethodPost, "/api/provision", `[]`, []reqOpt{jsonCT}, 400, CodeBadRequest, "the body is an array"},
		{"provision null", http.MethodPost, "/api/provision", `null`, []reqOpt{jsonCT}, 400, CodeBadRequest, "the body is null"},
		{"provision string", http.MethodPost, "/api/provision", `"{}"`, []reqOpt{jsonCT}, 400, CodeBadRequest, "the body is a string"},
		{"provision two objects", http.MethodPost, "/api/provision", `{}{}`, []reqOpt{jsonCT}, 400, CodeBadRequest, "data after the JSON object"},
		{"provision truncated", http.MethodPost, "/api/provision", `{`, []reqOpt{jsonCT}, 400, CodeBadRequest, "not JSON"},
		{"provision oversized", http.MethodPost, "/api/provision", big, []reqOpt{jsonCT}, 413, CodeTooLarge, "exceeds the limit of 65536 bytes"},
		{"provision oversized, unknown length", http.MethodPost, "/api/provision", big, []reqOpt{jsonCT, unknownLength}, 413, CodeTooLarge, "exceeds the limit"},
		{"compliance text", http.MethodPost, "/compliance", "{}", []reqOpt{header("Content-Type", "text/plain")}, 400, CodeInvalidContentType, "an invocation with"},
		{"compliance without content type", http.MethodPost, "/compliance", "{}", nil, 400, CodeInvalidContentType, ""},
		{"compliance empty", http.MethodPost, "/compliance", "", []reqOpt{jsonCT}, 400, CodeInvalidInvocation, "empty body"},
		{"compliance array", http.MethodPost, "/compliance", `[{"Data":{}}]`, []reqOpt{jsonCT}, 400, CodeInvalidInvocation, "an array: expected a JSON object"},
		{"rotate not JSON", http.MethodPost, "/rotate", `timer`, []reqOpt{jsonCT}, 400, CodeInvalidInvocation, "not valid JSON"},
		{"rotate null", http.MethodPost, "/rotate", `null`, []reqOpt{jsonCT}, 400, CodeInvalidInvocation, "null: expected a JSON object"},
		{"rotate string holding the object", http.MethodPost, "/rotate", `"{\"Data\":{}}"`, []reqOpt{jsonCT}, 400, CodeInvalidInvocation, "expected a JSON object"},
		{"rotate oversized", http.MethodPost, "/rotate", big, []reqOpt{jsonCT}, 413, CodeTooLarge, ""},
		{"rotate oversized, unknown length", http.MethodPost, "/rotate", big, []reqOpt{jsonCT, unknownLength}, 413, CodeTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			rec := f.do(t, tt.method, tt.path, tt.body, tt.opts...)
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			e := decodeError(t, rec)
			if e.Code != tt.code {
				t.Errorf("code = %q, want %q (message %q)", e.Code, tt.code, e.Message)
			}
			if !strings.Contains(e.Message, tt.says) {
				t.Errorf("message %q does not say %q", e.Message, tt.says)
			}
			if n := f.svc.calls.Load(); n != 0 {
				t.Errorf("service called %d times for a bad request", n)
			}
			if got := f.logs.withMsg(t, "request failed"); len(got) != 1 {
				t.Errorf("%d 'request failed' log lines, want 1", len(got))
			}
		})
	}
}

func TestConfigError(t *testing.T) {
	cfgErr := errors.New(`invalid configuration: APPREG_KEY_VAULT_URL is not set: expected the vault's https URL`)
	timer := timerBody(t, "timer_normal.http")
	tests := []struct {
		method, path, body string
		opts               []reqOpt
	}{
		{http.MethodPost, "/api/provision", "", nil},
		{http.MethodPost, "/api/provision", "{}", []reqOpt{jsonCT}},
		{http.MethodGet, "/api/status", "", nil},
		{http.MethodPost, "/compliance", timer, []reqOpt{jsonCT}},
		{http.MethodPost, "/rotate", timer, []reqOpt{jsonCT}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			f := newFixture(t, cfgErr)
			rec := f.do(t, tt.method, tt.path, tt.body, tt.opts...)
			if rec.Code != http.StatusInternalServerError {
				t.Errorf("status = %d, want 500", rec.Code)
			}
			e := decodeError(t, rec)
			if e.Code != CodeInvalidConfiguration || !strings.Contains(e.Message, "APPREG_KEY_VAULT_URL") {
				t.Errorf("error = %+v, want InvalidConfiguration naming APPREG_KEY_VAULT_URL", e)
			}
			if n := f.svc.calls.Load(); n != 0 {
				t.Errorf("service called %d times with an invalid configuration", n)
			}
			failed := f.logs.withMsg(t, "request failed")
			if len(failed) != 1 || failed[0]["level"] != "ERROR" || !strings.Contains(fmt.Sprint(failed[0]["error"]), "APPREG_KEY_VAULT_URL") {
				t.Errorf("failure log = %v, want one ERROR line naming the setting", failed)
			}
		})
	}
}

// TestErrorMapping covers the classified failures, which are answered with their own message; an
// unexpected one is TestInternalErrorsAreLoggedNotAnswered's.
func TestErrorMapping(t *testing.T) {
	svcErr := func(kind error, status int, need string) error {
		return fmt.Errorf("adding password to application 42: %w",
			&appreg.ServiceError{Service: appreg.ServiceGraph, Kind: kind, Status: status, Code: "Code", Message: "refused", Need: need})
	}
	tests := []struct {
		name   string
		err    error
		status int
		code   string
		says   string
	}{
		{"forbidden", svcErr(appreg.ErrForbidden, 403, "Application.ReadWrite.OwnedBy"), 502, CodeUpstreamForbidden, "needs Application.ReadWrite.OwnedBy"},
		{"rejected", svcErr(appreg.ErrRejected, 400, ""), 502, CodeUpstreamRejected, "adding password to application 42"},
		{"not found", svcErr(appreg.ErrNotFound, 404, ""), 502, CodeUpstreamNotFound, ""},
		{"already exists", svcErr(appreg.ErrAlreadyExists, 409, ""), 502, CodeUpstreamConflict, ""},
		{"lifetime policy", svcErr(appreg.ErrLifetimePolicy, 400, ""), 502, CodeLifetimePolicy, ""},
		{"unique name taken", svcErr(appreg.ErrUniqueNameTaken, 400, ""), 502, CodeUniqueNameTaken, ""},
		{"throttled", svcErr(appreg.ErrThrottled, 429, ""), 503, CodeUpstreamUnavailable, "429"},
		{"unavailable", svcErr(appreg.ErrUnavailable, 503, ""), 503, CodeUpstreamUnavailable, ""},
		{"not replicated", svcErr(appreg.ErrNotReplicated, 400, ""), 503, CodeUpstreamUnavailable, ""},
		{"concurrency", svcErr(appreg.ErrConcurrency, 412, ""), 503, CodeUpstreamUnavailable, ""},
		{"deadline", fmt.Errorf("reading the application: %w", context.DeadlineExceeded), 503, CodeUpstreamUnavailable, "deadline"},
		{"canceled", fmt.Errorf("reading the application: %w", context.Canceled), 503, CodeCanceled, ""},
	}
	timer := timerBody(t, "timer_normal.http")
	routes := []struct {
		method, path, body string
		opts               []reqOpt
	}{
		{http.MethodPost, "/api/provision", "", nil},
		{http.MethodGet, "/api/status", "", nil},
		{http.MethodPost, "/compliance", timer, []reqOpt{jsonCT}},
		{http.MethodPost, "/rotate", timer, []reqOpt{jsonCT}},
	}
	for _, tt := range tests {
		for _, r := range routes {
			t.Run(tt.name+" "+r.path, func(t *testing.T) {
				f := newFixture(t, nil)
				f.svc.err = tt.err
				rec := f.do(t, r.method, r.path, r.body, r.opts...)
				want := tt.status
				if !strings.HasPrefix(r.path, "/api/") {
					want = http.StatusInternalServerError // a failed timer run is 500 (contract), with the same code
				}
				if rec.Code != want {
					t.Errorf("status = %d, want %d", rec.Code, want)
				}
				e := decodeError(t, rec)
				if e.Code != tt.code {
					t.Errorf("code = %q, want %q", e.Code, tt.code)
				}
				if e.Message != tt.err.Error() {
					t.Errorf("message = %q, want the error text %q", e.Message, tt.err.Error())
				}
				if !strings.Contains(e.Message, tt.says) {
					t.Errorf("message %q does not say %q", e.Message, tt.says)
				}
			})
		}
	}
}

func TestComplianceVerdict(t *testing.T) {
	warn := appreg.Finding{Code: appreg.CodeSecretExpiring, Severity: appreg.SeverityWarning, Message: "expires in 10 days"}
	errF := appreg.Finding{Code: appreg.CodeConsentMissing, Severity: appreg.SeverityError, Message: "Directory.Read.All has no consent"}
	errG := appreg.Finding{Code: appreg.CodeSecretMissing, Severity: appreg.SeverityError, Message: "no secret"}
	after := appreg.StatusReport{Compliant: true, AppID: "app", Findings: []appreg.Finding{warn}}
	tests := []struct {
		name     string
		result   appreg.ComplianceResult
		status   int
		findings []string // codes of the "finding" log lines, in order
	}{
		{"compliant with a warning", appreg.ComplianceResult{Compliant: true,
			Before: appreg.StatusReport{Compliant: true, Findings: []appreg.Finding{warn}}}, 200, []string{"SECRET_EXPIRING"}},
		{"not compliant", appreg.ComplianceResult{Compliant: false,
			Before: appreg.StatusReport{Findings: []appreg.Finding{errF, warn, errG}}}, 500, []string{"CONSENT_MISSING", "SECRET_EXPIRING", "SECRET_MISSING"}},
		{"remediated", appreg.ComplianceResult{Compliant: true,
			Before:     appreg.StatusReport{Findings: []appreg.Finding{errF}},
			Remediated: &appreg.ProvisionResult{Changes: []string{"granted Directory.Read.All"}},
			After:      &after}, 200, []string{"CONSENT_MISSING", "SECRET_EXPIRING"}},
		{"remediation did not help", appreg.ComplianceResult{Compliant: false,
			Before:     appreg.StatusReport{Findings: []appreg.Finding{errF}},
			Remediated: &appreg.ProvisionResult{Changes: []string{}},
			After:      &appreg.StatusReport{Findings: []appreg.Finding{errF}}}, 500, []string{"CONSENT_MISSING", "CONSENT_MISSING"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.svc.compliance = tt.result
			rec := f.do(t, http.MethodPost, "/compliance", timerBody(t, "timer_normal.http"), jsonCT)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status == 500 {
				e := decodeError(t, rec)
				if e.Code != CodeNonCompliant || !strings.Contains(e.Message, "CONSENT_MISSING") {
					t.Errorf("error = %+v, want NonCompliant naming CONSENT_MISSING", e)
				}
			} else {
				var r hostproto.Response
				if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || len(r.Logs) == 0 {
					t.Errorf("answer %s is not an invocation response with Logs: %v", rec.Body, err)
				}
			}
			var got []string
			for _, m := range f.logs.withMsg(t, "finding") {
				got = append(got, fmt.Sprint(m["code"]))
				if m["severity"] == appreg.SeverityError && m["level"] != "ERROR" {
					t.Errorf("error finding logged at %v", m["level"])
				}
				if id, _ := m["invocationId"].(string); id == "" {
					t.Errorf("finding line without invocationId: %v", m)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.findings, ",") {
				t.Errorf("finding lines = %v, want %v", got, tt.findings)
			}
		})
	}
}

func TestRotateAnswer(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.do(t, http.MethodPost, "/rotate", timerBody(t, "timer_past_due.http"), jsonCT)
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", rec.Code, rec.Body)
	}
	var r struct {
		Outputs     map[string]any
		Logs        []string
		ReturnValue appreg.RotateResult
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Outputs == nil || !r.ReturnValue.Renewed || len(r.Logs) != 3 || !strings.Contains(r.Logs[2], "renewed (secret expiring)") {
		t.Errorf("answer = %s", rec.Body)
	}
	inv := f.logs.withMsg(t, "timer invocation")
	if len(inv) != 1 || inv[0]["isPastDue"] != true || inv[0]["function"] != "rotate" {
		t.Errorf("timer invocation log = %v, want one line with isPastDue true", inv)
	}
}

func TestDeadlines(t *testing.T) {
	tests := []struct {
		method, path, body string
		opts               []reqOpt
		max                time.Duration
	}{
		{http.MethodPost, "/api/provision", "", nil, time.Minute},
		{http.MethodGet, "/api/status", "", nil, time.Minute},
		{http.MethodPost, "/compliance", timerBody(t, "timer_normal.http"), []reqOpt{jsonCT}, 5 * time.Minute},
		{http.MethodPost, "/rotate", timerBody(t, "timer_normal.http"), []reqOpt{jsonCT}, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			f := newFixture(t, nil)
			if rec := f.do(t, tt.method, tt.path, tt.body, tt.opts...); rec.Code != http.StatusOK {
				t.Fatalf("status = %d; body %s", rec.Code, rec.Body)
			}
			d := <-f.svc.deadlines
			if d <= 0 || d > tt.max {
				t.Errorf("time left at the call = %v, want a deadline within %v", d, tt.max)
			}
		})
	}
}

func TestLogging(t *testing.T) {
	t.Run("invocation id from the host", func(t *testing.T) {
		f := newFixture(t, nil)
		f.do(t, http.MethodGet, "/api/status?code=query-function-key", "", header(hostproto.HeaderInvocationID, "inv-1"),
			header("x-functions-key", "header-function-key"), header("Authorization", "Bearer token-value"))
		access := f.logs.withMsg(t, "request")
		if len(access) != 1 {
			t.Fatalf("access lines = %v, want 1", access)
		}
		a := access[0]
		if a["method"] != "GET" || a["path"] != "/api/status" || a["status"] != float64(200) || a["invocationId"] != "inv-1" || a["durationMs"] == nil {
			t.Errorf("access line = %v", a)
		}
		for _, secret := range []string{"query-function-key", "header-function-key", "token-value"} {
			if strings.Contains(f.logs.String(), secret) {
				t.Errorf("logs contain %q", secret)
			}
		}
	})
	t.Run("request id otherwise", func(t *testing.T) {
		f := newFixture(t, nil)
		rec := f.do(t, http.MethodGet, "/api/status", "")
		rid := rec.Header().Get(echo.HeaderXRequestID)
		if len(rid) != 32 {
			t.Fatalf("X-Request-Id = %q, want 32 hex digits", rid)
		}
		for _, m := range f.logs.lines(t) {
			if m["invocationId"] != rid {
				t.Errorf("line %v has invocationId %v, want %s", m["msg"], m["invocationId"], rid)
			}
		}
	})
	t.Run("error status in the access line", func(t *testing.T) {
		f := newFixture(t, nil)
		f.do(t, http.MethodGet, "/nowhere", "")
		access := f.logs.withMsg(t, "request")
		if len(access) != 1 || access[0]["status"] != float64(404) {
			t.Errorf("access lines = %v, want one with status 404", access)
		}
	})
	t.Run("readiness probe at debug", func(t *testing.T) {
		f := newFixture(t, nil)
		f.do(t, http.MethodGet, "/", "")
		access := f.logs.withMsg(t, "request")
		if len(access) != 1 || access[0]["level"] != "DEBUG" {
			t.Errorf("access lines = %v, want one at DEBUG", access)
		}
	})
}

// TestInternalErrorsAreLoggedNotAnswered checks that an unexpected error's text and a panic's value never
// reach the answer: it names an id, and the log line that carries the details carries the same id.
func TestInternalErrorsAreLoggedNotAnswered(t *testing.T) {
	const detail = "detail-only-for-the-log"
	idRE := regexp.MustCompile(`^internal error ([0-9a-f]{16}): the details are in the function's log$`)
	timer := timerBody(t, "timer_normal.http")
	routes := []struct {
		method, path, body string
		opts               []reqOpt
	}{
		{http.MethodPost, "/api/provision", "", nil},
		{http.MethodGet, "/api/status", "", nil},
		{http.MethodPost, "/compliance", timer, []reqOpt{jsonCT}},
		{http.MethodPost, "/rotate", timer, []reqOpt{jsonCT}},
	}
	tests := []struct {
		name  string
		err   error  // the service's error
		panic string // else the service panics with this
	}{
		{"unexpected error", fmt.Errorf("reading the application: %w", errors.New(detail)), ""},
		{"panic", nil, "nil map: " + detail},
	}
	for _, tt := range tests {
		for _, r := range routes {
			t.Run(tt.name+" "+r.path, func(t *testing.T) {
				f := newFixture(t, nil)
				f.svc.err, f.svc.panicMsg = tt.err, tt.panic
				rec := f.do(t, r.method, r.path, r.body, r.opts...)
				if rec.Code != http.StatusInternalServerError {
					t.Errorf("status = %d, want 500", rec.Code)
				}
				if strings.Contains(rec.Body.String(), detail) {
					t.Errorf("answer %s contains the error's text", rec.Body)
				}
				e := decodeError(t, rec)
				if e.Code != CodeInternal {
					t.Errorf("code = %q, want %q", e.Code, CodeInternal)
				}
				m := idRE.FindStringSubmatch(e.Message)
				if m == nil {
					t.Fatalf("message = %q, want %q", e.Message, idRE)
				}
				id := m[1]
				failed := f.logs.withMsg(t, "request failed")
				if len(failed) != 1 {
					t.Fatalf("request failed lines = %v, want 1", failed)
				}
				if got := failed[0]["errorId"]; got != id {
					t.Errorf("errorId of the log line = %v, want the answer's %s", got, id)
				}
				if got := fmt.Sprint(failed[0]["error"]); !strings.Contains(got, detail) {
					t.Errorf("error of the log line = %q, want the full text with %q", got, detail)
				}
				panics := f.logs.withMsg(t, "panic")
				if tt.panic == "" {
					if len(panics) != 0 {
						t.Errorf("panic lines = %v, want none", panics)
					}
					return
				}
				if len(panics) != 1 {
					t.Fatalf("panic lines = %v, want 1", panics)
				}
				if panics[0]["errorId"] != id || panics[0]["panic"] != tt.panic || panics[0]["stack"] == nil {
					t.Errorf("panic line = %v, want errorId %s, the value and the stack", panics[0], id)
				}
			})
		}
	}
	t.Run("a new id each time", func(t *testing.T) {
		f := newFixture(t, nil)
		f.svc.err = errors.New(detail)
		a := decodeError(t, f.do(t, http.MethodGet, "/api/status", "")).Message
		b := decodeError(t, f.do(t, http.MethodGet, "/api/status", "")).Message
		if a == b {
			t.Errorf("two failures answered the same message %q", a)
		}
	})
}
