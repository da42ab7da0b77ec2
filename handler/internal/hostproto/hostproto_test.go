package hostproto

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// readFixture parses a testdata/*.http request and returns it with its (de-chunked) body.
func readFixture(t testing.TB, name string) (*http.Request, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("%s: not an HTTP request: %v", name, err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatalf("%s: body: %v", name, err)
	}
	return req, body
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// warnedPaths are the member paths of inv.Warnings, in order.
func warnedPaths(inv TimerInvocation) []string {
	var out []string
	for _, w := range inv.Warnings {
		path, _, _ := strings.Cut(w, ": ")
		out = append(out, path)
	}
	return out
}

func TestTimerFixtures(t *testing.T) {
	type want struct {
		path      string
		binding   string // Binding; "" when the payload has none
		noDST     bool   // Schedule.AdjustForDST is false (the fixture has no readable Schedule)
		status    *ScheduleStatus
		pastDue   bool
		noSys     bool // Sys is nil
		method    string
		utcNow    string // "" for the zero time
		retry     *RetryContext
		warned    []string // paths of the warnings, in order
		reencodes bool     // EncodeTimer(DecodeTimer(body)) == body
	}
	tests := []struct {
		fixture string
		want    want
	}{
		{"timer_normal.http", want{
			path: "/compliance", binding: "timer", method: "compliance", utcNow: "2024-10-04T12:00:00.0173415Z", reencodes: true,
			status: &ScheduleStatus{
				Last:        mustTime(t, "2024-10-04T06:00:00Z"),
				Next:        mustTime(t, "2024-10-04T12:00:00Z"),
				LastUpdated: mustTime(t, "2024-10-04T06:00:00.4180473Z"),
			},
		}},
		{"timer_null_schedule_status.http", want{
			path: "/rotate", binding: "timer", method: "rotate", utcNow: "2024-10-05T03:30:00.004275Z", reencodes: true,
		}},
		{"timer_offsetless.http", want{
			path: "/compliance", binding: "timer", method: "compliance", utcNow: "2021-05-18T00:00:00.0031882Z",
			status: &ScheduleStatus{
				Last:        mustTime(t, "2021-05-17T18:00:00Z"),
				Next:        mustTime(t, "2021-05-18T00:00:00Z"),
				LastUpdated: mustTime(t, "2021-05-17T18:00:00.2731459Z"),
			},
		}},
		{"timer_string_binding.http", want{
			path: "/rotate", binding: "timer", method: "rotate", utcNow: "2024-10-05T03:30:00.0412733Z",
			status: &ScheduleStatus{
				Last:        mustTime(t, "2024-10-04T03:30:00Z"),
				Next:        mustTime(t, "2024-10-05T03:30:00Z"),
				LastUpdated: mustTime(t, "2024-10-04T03:30:01.2024518Z"),
			},
		}},
		{"timer_past_due.http", want{
			path: "/rotate", binding: "timer", method: "rotate", utcNow: "2024-10-06T08:12:44.9050117Z", pastDue: true, reencodes: true,
			status: &ScheduleStatus{
				Last:        mustTime(t, "2024-10-04T03:30:00Z"),
				Next:        mustTime(t, "2024-10-05T03:30:00Z"),
				LastUpdated: mustTime(t, "2024-10-04T03:30:02.1185502Z"),
			},
		}},
		{"timer_retry_context.http", want{
			path: "/compliance", binding: "timer", method: "compliance", utcNow: "2024-10-04T12:00:05.1195021Z",
			status: &ScheduleStatus{
				Last:        mustTime(t, "2024-10-04T06:00:00Z"),
				Next:        mustTime(t, "2024-10-04T12:00:00Z"),
				LastUpdated: mustTime(t, "2024-10-04T06:00:00.4180473Z"),
			},
			retry: &RetryContext{RetryCount: 1, MaxRetryCount: 3, Exception: &Exception{
				ClassName: "Microsoft.Azure.WebJobs.Host.FunctionInvocationException",
				Message:   "Exception while executing function: Functions.compliance",
			}},
		}},
		{"timer_no_binding.http", want{
			path: "/rotate", noDST: true, method: "rotate", utcNow: "2024-10-07T03:30:00.0051234Z",
			warned: []string{"Data.timer"},
		}},
		{"timer_no_metadata.http", want{
			path: "/rotate", binding: "timer", noSys: true,
			status: &ScheduleStatus{
				Last:        mustTime(t, "2024-10-06T03:30:00Z"),
				Next:        mustTime(t, "2024-10-07T03:30:00Z"),
				LastUpdated: mustTime(t, "2024-10-06T03:30:00.9123456Z"),
			},
		}},
		{"timer_no_sys.http", want{path: "/compliance", binding: "timer", noSys: true}},
		{"timer_unexpected_shapes.http", want{
			path: "/rotate", binding: "timer", noDST: true, status: &ScheduleStatus{},
			warned: []string{
				"Data.timer.Schedule", "Data.timer.ScheduleStatus.Last", "Data.timer.ScheduleStatus.Next",
				"Data.timer.ScheduleStatus.LastUpdated", "Data.timer.IsPastDue",
				"Metadata.sys.MethodName", "Metadata.sys.UtcNow", "Metadata.sys.RandGuid", "Metadata.RetryContext",
			},
		}},
		{"timer_empty_object.http", want{path: "/compliance", noDST: true, noSys: true, warned: []string{"Data"}}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			req, body := readFixture(t, tt.fixture)
			if req.Method != http.MethodPost || req.URL.Path != tt.want.path {
				t.Errorf("request = %s %s, want POST %s", req.Method, req.URL.Path, tt.want.path)
			}
			if got := req.Header.Get(HeaderInvocationID); !guidRE.MatchString(got) {
				t.Errorf("%s = %q, want a GUID", HeaderInvocationID, got)
			}
			if got := req.Header.Get(HeaderHostVersion); got != HostVersion {
				t.Errorf("%s = %q, want %q", HeaderHostVersion, got, HostVersion)
			}
			if got, want := req.UserAgent(), UserAgentProduct+"/"+HostVersion; got != want {
				t.Errorf("User-Agent = %q, want %q", got, want)
			}
			if got := req.Header.Get("Content-Type"); got != ContentType {
				t.Errorf("Content-Type = %q, want %q", got, ContentType)
			}
			if len(req.TransferEncoding) != 1 || req.TransferEncoding[0] != "chunked" {
				t.Errorf("Transfer-Encoding = %v, want [chunked]", req.TransferEncoding)
			}

			inv, err := DecodeTimer(body, BindingTimer)
			if err != nil {
				t.Fatalf("DecodeTimer: %v", err)
			}
			if inv.Binding != tt.want.binding {
				t.Errorf("Binding = %q, want %q", inv.Binding, tt.want.binding)
			}
			if got, want := inv.Timer.Schedule.AdjustForDST, !tt.want.noDST; got != want {
				t.Errorf("Schedule.AdjustForDST = %v, want %v", got, want)
			}
			if inv.Timer.IsPastDue != tt.want.pastDue {
				t.Errorf("IsPastDue = %v, want %v", inv.Timer.IsPastDue, tt.want.pastDue)
			}
			assertStatus(t, inv.Timer.ScheduleStatus, tt.want.status)
			if got := warnedPaths(inv); !reflect.DeepEqual(got, tt.want.warned) {
				t.Errorf("warnings = %q, want paths %q", inv.Warnings, tt.want.warned)
			}
			if !reflect.DeepEqual(inv.Retry, tt.want.retry) {
				t.Errorf("Retry = %+v, want %+v", inv.Retry, tt.want.retry)
			}
			if tt.want.noSys {
				if inv.Sys != nil {
					t.Errorf("Sys = %+v, want nil", inv.Sys)
				}
				return
			}
			if inv.Sys == nil {
				t.Fatal("Sys = nil, want the host's sys metadata")
			}
			if inv.Sys.MethodName != tt.want.method {
				t.Errorf("Sys.MethodName = %q, want %q", inv.Sys.MethodName, tt.want.method)
			}
			want := time.Time{}
			if tt.want.utcNow != "" {
				want = mustTime(t, tt.want.utcNow)
			}
			if !inv.Sys.UtcNow.Equal(want) {
				t.Errorf("Sys.UtcNow = %v, want %v", inv.Sys.UtcNow, want)
			}
			if tt.want.method != "" && !guidRE.MatchString(inv.Sys.RandGuid) {
				t.Errorf("Sys.RandGuid = %q, want a GUID", inv.Sys.RandGuid)
			}
			if tt.want.reencodes {
				if got := EncodeTimer(inv); !bytes.Equal(got, body) {
					t.Errorf("EncodeTimer differs from the host's bytes:\n got %s\nwant %s", got, body)
				}
			}
		})
	}
}

// TestTimerPayloadContractCases: every case that the contract's "Timer payloads" names is a fixture, and
// each decodes without error (so the function runs); so does every other timer fixture.
func TestTimerPayloadContractCases(t *testing.T) {
	cases := []struct{ contract, fixture string }{
		{"Data.timer as an object", "timer_normal.http"},
		{"Data.timer as a JSON string", "timer_string_binding.http"},
		{"Data.timer absent", "timer_no_binding.http"},
		{"ScheduleStatus null", "timer_null_schedule_status.http"},
		{"IsPastDue true", "timer_past_due.http"},
		{"Metadata absent", "timer_no_metadata.http"},
		{"Metadata.sys absent", "timer_no_sys.http"},
		{"timestamps with an offset", "timer_normal.http"},
		{"timestamps without an offset", "timer_offsetless.http"},
		{"members of unexpected types", "timer_unexpected_shapes.http"},
		{"any JSON object, even {}", "timer_empty_object.http"},
	}
	for _, c := range cases {
		t.Run(c.contract, func(t *testing.T) {
			_, body := readFixture(t, c.fixture)
			if _, err := DecodeTimer(body, BindingTimer); err != nil {
				t.Errorf("%s (%s): DecodeTimer: %v, want the function to run", c.contract, c.fixture, err)
			}
		})
	}
	names, err := filepath.Glob(filepath.Join("testdata", "timer_*.http"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no timer fixtures: %v", err)
	}
	for _, name := range names {
		_, body := readFixture(t, filepath.Base(name))
		if _, err := DecodeTimer(body, BindingTimer); err != nil {
			t.Errorf("%s: DecodeTimer: %v", name, err)
		}
	}
}

func assertStatus(t *testing.T, got, want *ScheduleStatus) {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Fatalf("ScheduleStatus = %+v, want %+v", got, want)
	}
	if got == nil {
		return
	}
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{{"Last", got.Last, want.Last}, {"Next", got.Next, want.Next}, {"LastUpdated", got.LastUpdated, want.LastUpdated}} {
		if !f.got.Equal(f.want) {
			t.Errorf("ScheduleStatus.%s = %v, want %v", f.name, f.got, f.want)
		}
	}
}

func TestHTTPFixturesAreForwardedRequests(t *testing.T) {
	for _, tt := range []struct{ fixture, method, path string }{
		{"http_provision.http", http.MethodPost, "/api/provision"},
		{"http_status.http", http.MethodGet, "/api/status"},
	} {
		t.Run(tt.fixture, func(t *testing.T) {
			req, _ := readFixture(t, tt.fixture)
			if req.Method != tt.method || req.URL.Path != tt.path {
				t.Errorf("request = %s %s, want %s %s", req.Method, req.URL.Path, tt.method, tt.path)
			}
			if got := req.Header.Get(HeaderInvocationID); !guidRE.MatchString(got) {
				t.Errorf("%s = %q, want a GUID", HeaderInvocationID, got)
			}
		})
	}
}

// TestDecodeTimerRejects: only a body that is not one JSON object is an error (400 at the server).
func TestDecodeTimerRejects(t *testing.T) {
	const okTimer = `{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}`
	tests := []struct {
		name string
		body string
		says string // a phrase the error must contain
	}{
		{"empty", "", "empty body"},
		{"whitespace", " \r\n ", "empty body"},
		{"not JSON", "POST /rotate", "not valid JSON"},
		{"truncated", `{"Data":{"timer":`, "not valid JSON"},
		{"trailing data", `{"Data":{"timer":` + okTimer + `}} {}`, "unexpected data"},
		{"array", `[]`, "an array: expected a JSON object"},
		{"array of the object", `[{"Data":{"timer":` + okTimer + `}}]`, "an array: expected a JSON object"},
		{"string", `"x"`, `the string "x": expected a JSON object`},
		{"string holding the object", `"{\"Data\":{}}"`, `expected a JSON object`},
		{"null", `null`, "null: expected a JSON object"},
		{"number", `42`, "the number 42: expected a JSON object"},
		{"boolean", `true`, "a boolean: expected a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeTimer([]byte(tt.body), BindingTimer)
			if err == nil {
				t.Fatal("DecodeTimer succeeded, want an error")
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error", err)
			}
			if e.Path != "" {
				t.Errorf("Path = %q, want the body (\"\") (error: %v)", e.Path, err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
		})
	}
}

// TestDecodeTimerToleratesShapes: a JSON object with members missing, null or of an unexpected shape
// decodes without error; what it could not read is a warning naming the member, and the rest is read.
func TestDecodeTimerToleratesShapes(t *testing.T) {
	const sys = `"Metadata":{"sys":{"MethodName":"rotate","UtcNow":"2024-10-05T03:30:00.004275Z","RandGuid":"0d00378b-6426-4af1-9fc0-0793f4ce3745"}}`
	const okTimer = `{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":true}`
	tests := []struct {
		name     string
		body     string
		path     string // the member the warning must name
		says     string // a phrase the warning must contain
		pastDue  bool   // IsPastDue still read
		withSys  bool   // Sys still read (MethodName rotate)
		noReport bool   // no warning at all (path and says unused)
	}{
		{name: "no Data", body: `{` + sys + `}`, path: "Data", says: "missing", withSys: true},
		{name: "Data null", body: `{"Data":null,` + sys + `}`, path: "Data", says: "null", withSys: true},
		{name: "Data array", body: `{"Data":[],` + sys + `}`, path: "Data", says: "an array", withSys: true},
		{name: "no timer", body: `{"Data":{"req":{}},` + sys + `}`, path: "Data.timer", says: `Data has "req"`, withSys: true},
		{name: "empty Data", body: `{"Data":{}}`, path: "Data.timer", says: "Data is empty"},
		{name: "timer null", body: `{"Data":{"timer":null}}`, path: "Data.timer", says: "null"},
		{name: "timer number", body: `{"Data":{"timer":42},` + sys + `}`, path: "Data.timer", says: "the number 42", withSys: true},
		{name: "timer string without object", body: `{"Data":{"timer":"tick"}}`, path: "Data.timer", says: "does not hold a JSON object"},
		{name: "timer string with bad JSON", body: `{"Data":{"timer":"{\"Schedule\":"}}`, path: "Data.timer", says: "string-encoded value: not valid JSON"},
		{name: "no Schedule", body: `{"Data":{"timer":{"IsPastDue":true}}}`, path: "Data.timer.Schedule", says: "missing", pastDue: true},
		{name: "Schedule string", body: `{"Data":{"timer":{"Schedule":"0 0 * * * *","IsPastDue":true}}}`, path: "Data.timer.Schedule", says: "expected a JSON object", pastDue: true},
		{name: "AdjustForDST string", body: `{"Data":{"timer":{"Schedule":{"AdjustForDST":"yes"},"IsPastDue":true}}}`, path: "Data.timer.Schedule.AdjustForDST", says: "expected true or false", pastDue: true},
		{name: "no IsPastDue", body: `{"Data":{"timer":{"Schedule":{}}},` + sys + `}`, path: "Data.timer.IsPastDue", says: "missing", withSys: true},
		{name: "IsPastDue string", body: `{"Data":{"timer":{"Schedule":{},"IsPastDue":"false"}},` + sys + `}`, path: "Data.timer.IsPastDue", says: `the string "false": expected true or false`, withSys: true},
		{name: "IsPastDue null", body: `{"Data":{"timer":{"Schedule":{},"IsPastDue":null}}}`, path: "Data.timer.IsPastDue", says: "null"},
		{name: "ScheduleStatus array", body: `{"Data":{"timer":{"Schedule":{},"ScheduleStatus":[],"IsPastDue":true}}}`, path: "Data.timer.ScheduleStatus", says: "an array", pastDue: true},
		{name: "Last missing", body: `{"Data":{"timer":{"Schedule":{},"ScheduleStatus":{"Next":"2024-10-04T12:00:00+00:00","LastUpdated":"2024-10-04T12:00:00+00:00"},"IsPastDue":true}}}`, path: "Data.timer.ScheduleStatus.Last", says: "missing", pastDue: true},
		{name: "Next not a time", body: `{"Data":{"timer":{"Schedule":{},"ScheduleStatus":{"Last":"2024-10-04T06:00:00+00:00","Next":"tomorrow","LastUpdated":"2024-10-04T06:00:00+00:00"},"IsPastDue":true}}}`, path: "Data.timer.ScheduleStatus.Next", says: `"tomorrow" is not a timestamp`, pastDue: true},
		{name: "LastUpdated number", body: `{"Data":{"timer":{"Schedule":{},"ScheduleStatus":{"Last":"2024-10-04T06:00:00+00:00","Next":"2024-10-04T12:00:00+00:00","LastUpdated":1728036000},"IsPastDue":true}}}`, path: "Data.timer.ScheduleStatus.LastUpdated", says: "the number 1728036000", pastDue: true},
		{name: "Metadata array", body: `{"Data":{"timer":` + okTimer + `},"Metadata":[]}`, path: "Metadata", says: "an array", pastDue: true},
		{name: "Metadata null", body: `{"Data":{"timer":` + okTimer + `},"Metadata":null}`, pastDue: true, noReport: true},
		{name: "sys string", body: `{"Data":{"timer":` + okTimer + `},"Metadata":{"sys":"x"}}`, path: "Metadata.sys", says: "expected a JSON object", pastDue: true},
		{name: "sys without MethodName", body: `{"Data":{"timer":` + okTimer + `},"Metadata":{"sys":{"UtcNow":"2024-10-05T03:30:00Z","RandGuid":"0d00378b-6426-4af1-9fc0-0793f4ce3745"}}}`, path: "Metadata.sys.MethodName", says: "missing", pastDue: true},
		{name: "UtcNow bad", body: `{"Data":{"timer":` + okTimer + `},"Metadata":{"sys":{"MethodName":"rotate","UtcNow":"05/10/2024 03:30:00","RandGuid":"0d00378b-6426-4af1-9fc0-0793f4ce3745"}}}`, path: "Metadata.sys.UtcNow", says: "is not a timestamp", pastDue: true, withSys: true},
		{name: "RandGuid bad", body: `{"Data":{"timer":` + okTimer + `},"Metadata":{"sys":{"MethodName":"rotate","UtcNow":"2024-10-05T03:30:00Z","RandGuid":"not-a-guid"}}}`, path: "Metadata.sys.RandGuid", says: "is not a GUID", pastDue: true, withSys: true},
		{name: "RetryCount negative", body: `{"Data":{"timer":` + okTimer + `},"Metadata":{"RetryContext":{"RetryCount":-1,"MaxRetryCount":3}}}`, path: "Metadata.RetryContext.RetryCount", says: "expected a whole number", pastDue: true},
		{name: "RetryCount fraction", body: `{"Data":{"timer":` + okTimer + `},"Metadata":{"RetryContext":{"RetryCount":1.5,"MaxRetryCount":3}}}`, path: "Metadata.RetryContext.RetryCount", says: "expected a whole number", pastDue: true},
		{name: "MaxRetryCount missing", body: `{"Data":{"timer":` + okTimer + `},"Metadata":{"RetryContext":{"RetryCount":1}}}`, path: "Metadata.RetryContext.MaxRetryCount", says: "missing", pastDue: true},
		{name: "Exception string", body: `{"Data":{"timer":` + okTimer + `},"Metadata":{"RetryContext":{"RetryCount":1,"MaxRetryCount":3,"Exception":"boom"}}}`, path: "Metadata.RetryContext.Exception", says: "expected a JSON object", pastDue: true},
		{name: "Exception Message number", body: `{"Data":{"timer":` + okTimer + `},"Metadata":{"RetryContext":{"RetryCount":1,"MaxRetryCount":3,"Exception":{"Message":1}}}}`, path: "Metadata.RetryContext.Exception.Message", says: "expected a string", pastDue: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := DecodeTimer([]byte(tt.body), BindingTimer)
			if err != nil {
				t.Fatalf("DecodeTimer: %v, want the function to run", err)
			}
			if inv.Timer.IsPastDue != tt.pastDue {
				t.Errorf("IsPastDue = %v, want %v", inv.Timer.IsPastDue, tt.pastDue)
			}
			if got := inv.Sys != nil && inv.Sys.MethodName == "rotate"; tt.withSys && !got {
				t.Errorf("Sys = %+v, want the sys metadata read", inv.Sys)
			}
			if tt.noReport {
				if len(inv.Warnings) != 0 {
					t.Errorf("warnings = %q, want none", inv.Warnings)
				}
				return
			}
			found := false
			for _, w := range inv.Warnings {
				if strings.HasPrefix(w, tt.path+": ") && strings.Contains(w, tt.says) {
					found = true
				}
			}
			if !found {
				t.Errorf("warnings = %q, want one on %s saying %q", inv.Warnings, tt.path, tt.says)
			}
		})
	}
}

func TestDecodeTimerWarningsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"Data":{"timer":{"Schedule":1,"IsPastDue":1,"ScheduleStatus":{"Last":1,"Next":1,"LastUpdated":1}}},"Metadata":{"sys":{"MethodName":1,"UtcNow":1,"RandGuid":1},"RetryContext":{"RetryCount":"a","MaxRetryCount":"b","Exception":{"ClassName":1,"Message":2}}}}`)
	inv, err := DecodeTimer([]byte(b.String()), BindingTimer)
	if err != nil {
		t.Fatalf("DecodeTimer: %v", err)
	}
	if len(inv.Warnings) != 12 {
		t.Errorf("%d warnings, want 12: one for each member the decoder reads, every one of unexpected shape", len(inv.Warnings))
	}
	long := `{"Data":{"timer":{"Schedule":{},"IsPastDue":"` + strings.Repeat("x", 5000) + `"}}}`
	inv, err = DecodeTimer([]byte(long), BindingTimer)
	if err != nil {
		t.Fatalf("DecodeTimer: %v", err)
	}
	for _, w := range inv.Warnings {
		if len(w) > 300 {
			t.Errorf("warning of %d bytes repeats a long value: %.80s…", len(w), w)
		}
	}
}

func TestDecodeTimerAccepts(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		binding string
		check   func(t *testing.T, inv TimerInvocation)
	}{
		{"no Metadata", `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"IsPastDue":true}}}`, "timer", func(t *testing.T, inv TimerInvocation) {
			if inv.Sys != nil || inv.Retry != nil || !inv.Timer.IsPastDue || inv.Timer.ScheduleStatus != nil || len(inv.Warnings) != 0 {
				t.Errorf("got %+v", inv)
			}
		}},
		{"unknown members ignored", `{"Data":{"timer":{"Schedule":{"AdjustForDST":false,"Kind":"cron"},"IsPastDue":false,"Extra":[1]}},"Metadata":{"sys":{"MethodName":"rotate","UtcNow":"2024-10-05T03:30:00Z","RandGuid":"0d00378b-6426-4af1-9fc0-0793f4ce3745","More":1},"Other":{}},"Future":true}`, "timer", func(t *testing.T, inv TimerInvocation) {
			if inv.Timer.Schedule.AdjustForDST || inv.Sys == nil || inv.Sys.MethodName != "rotate" || len(inv.Warnings) != 0 {
				t.Errorf("got %+v", inv)
			}
		}},
		{"camelCase members", `{"data":{"timer":{"schedule":{"adjustForDST":true},"scheduleStatus":null,"isPastDue":true}},"metadata":{"sys":{"methodName":"rotate","utcNow":"2024-10-05T03:30:00Z","randGuid":"0d00378b-6426-4af1-9fc0-0793f4ce3745"}}}`, "timer", func(t *testing.T, inv TimerInvocation) {
			if !inv.Timer.IsPastDue || inv.Sys == nil || inv.Sys.MethodName != "rotate" {
				t.Errorf("got %+v", inv)
			}
		}},
		{"other binding name kept", `{"Data":{"myTimer":{"Schedule":{},"IsPastDue":false}}}`, "MYTIMER", func(t *testing.T, inv TimerInvocation) {
			if inv.Binding != "myTimer" {
				t.Errorf("Binding = %q, want myTimer", inv.Binding)
			}
		}},
		{"zero DateTime", `{"Data":{"timer":{"Schedule":{},"ScheduleStatus":{"Last":"0001-01-01T00:00:00","Next":"2024-10-04T12:00:00+00:00","LastUpdated":"2024-10-04T11:58:03.1+00:00"},"IsPastDue":false}}}`, "timer", func(t *testing.T, inv TimerInvocation) {
			if !inv.Timer.ScheduleStatus.Last.IsZero() {
				t.Errorf("Last = %v, want the zero time", inv.Timer.ScheduleStatus.Last)
			}
		}},
		{"RetryContext as string, Exception null", `{"Data":{"timer":{"Schedule":{},"IsPastDue":false}},"Metadata":{"RetryContext":"{\"RetryCount\":2,\"MaxRetryCount\":5,\"Exception\":null}"}}`, "timer", func(t *testing.T, inv TimerInvocation) {
			if want := (&RetryContext{RetryCount: 2, MaxRetryCount: 5}); !reflect.DeepEqual(inv.Retry, want) {
				t.Errorf("Retry = %+v, want %+v", inv.Retry, want)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := DecodeTimer([]byte(tt.body), tt.binding)
			if err != nil {
				t.Fatalf("DecodeTimer: %v", err)
			}
			tt.check(t, inv)
		})
	}
}

func TestDecodeTimerTooLarge(t *testing.T) {
	_, body := readFixture(t, "timer_normal.http")
	padded := append(bytes.TrimSuffix(body, []byte("}")), []byte(`,"Pad":"`+strings.Repeat("x", MaxBodyBytes)+`"}`)...)
	if _, err := DecodeTimer(padded, BindingTimer); !errors.Is(err, ErrTooLarge) {
		t.Errorf("DecodeTimer(%d bytes) error = %v, want ErrTooLarge", len(padded), err)
	}
	if _, err := DecodeTimer(body, BindingTimer); err != nil {
		t.Errorf("DecodeTimer(%d bytes): %v", len(body), err)
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want string // RFC 3339 in UTC; "" for an error
	}{
		{"2024-10-04T10:15:00+00:00", "2024-10-04T10:15:00Z"},
		{"2024-10-04T10:20:00.1234567Z", "2024-10-04T10:20:00.1234567Z"},
		{"2024-10-04T12:15:00+02:00", "2024-10-04T10:15:00Z"},
		{"2021-05-17T21:00:00", "2021-05-17T21:00:00Z"},
		{"2021-05-17T21:00:00.2731459", "2021-05-17T21:00:00.2731459Z"},
		{"0001-01-01T00:00:00", "0001-01-01T00:00:00Z"},
		{"2024-10-04 10:15:00", ""},
		{"10/04/2024 10:15:00", ""},
		{"2024-13-04T10:15:00Z", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTime(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Errorf("ParseTime(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTime(%q): %v", tt.in, err)
			}
			if s := got.UTC().Format(time.RFC3339Nano); s != tt.want {
				t.Errorf("ParseTime(%q) = %s, want %s", tt.in, s, tt.want)
			}
		})
	}
}

func TestFormatTimes(t *testing.T) {
	tm := mustTime(t, "2024-10-04T10:20:00.1234560Z")
	if got, want := FormatScheduleTime(tm), "2024-10-04T10:20:00.123456+00:00"; got != want {
		t.Errorf("FormatScheduleTime = %q, want %q", got, want)
	}
	if got, want := FormatUTCTime(tm), "2024-10-04T10:20:00.123456Z"; got != want {
		t.Errorf("FormatUTCTime = %q, want %q", got, want)
	}
	if got, want := FormatScheduleTime(time.Time{}), "0001-01-01T00:00:00"; got != want {
		t.Errorf("FormatScheduleTime(zero) = %q, want %q", got, want)
	}
}

func TestResponseJSON(t *testing.T) {
	tests := []struct {
		name string
		resp Response
		want string
	}{
		{"zero", Response{}, `{"Outputs":{},"Logs":[],"ReturnValue":null}`},
		{"NewResponse", NewResponse(map[string]bool{"compliant": true}, "compliant: 0 findings"),
			`{"Outputs":{},"Logs":["compliant: 0 findings"],"ReturnValue":{"compliant":true}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.resp)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("json = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestEncodeTimerRetryDecodes(t *testing.T) {
	in := TimerInvocation{
		Binding: "timer",
		Timer:   TimerInfo{Schedule: Schedule{AdjustForDST: true}},
		Sys:     &Sys{MethodName: "rotate", UtcNow: mustTime(t, "2024-10-05T03:30:00Z"), RandGuid: "0d00378b-6426-4af1-9fc0-0793f4ce3745"},
		Retry:   &RetryContext{RetryCount: 1, MaxRetryCount: 2, Exception: &Exception{ClassName: "System.Exception", Message: "boom <&>"}},
	}
	body := EncodeTimer(in)
	if !bytes.Contains(body, []byte(`"Message":"boom <&>"`)) {
		t.Errorf("body %s escapes HTML characters; Newtonsoft does not", body)
	}
	got, err := DecodeTimer(body, BindingTimer)
	if err != nil {
		t.Fatalf("DecodeTimer(EncodeTimer): %v\n%s", err, body)
	}
	if !reflect.DeepEqual(got.Retry, in.Retry) || got.Sys.MethodName != "rotate" || !got.Sys.UtcNow.Equal(in.Sys.UtcNow) {
		t.Errorf("round trip = %+v, want %+v", got, in)
	}
}
