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

func TestTimerFixtures(t *testing.T) {
	type want struct {
		path      string
		status    *ScheduleStatus
		pastDue   bool
		method    string
		utcNow    string
		retry     *RetryContext
		reencodes bool // EncodeTimer(DecodeTimer(body)) == body
	}
	tests := []struct {
		fixture string
		want    want
	}{
		{"timer_normal.http", want{
			path: "/compliance", method: "compliance", utcNow: "2024-10-04T12:00:00.0173415Z", reencodes: true,
			status: &ScheduleStatus{
				Last:        mustTime(t, "2024-10-04T06:00:00Z"),
				Next:        mustTime(t, "2024-10-04T12:00:00Z"),
				LastUpdated: mustTime(t, "2024-10-04T06:00:00.4180473Z"),
			},
		}},
		{"timer_null_schedule_status.http", want{
			path: "/rotate", method: "rotate", utcNow: "2024-10-05T03:30:00.004275Z", reencodes: true,
		}},
		{"timer_offsetless.http", want{
			path: "/compliance", method: "compliance", utcNow: "2021-05-18T00:00:00.0031882Z",
			status: &ScheduleStatus{
				Last:        mustTime(t, "2021-05-17T18:00:00Z"),
				Next:        mustTime(t, "2021-05-18T00:00:00Z"),
				LastUpdated: mustTime(t, "2021-05-17T18:00:00.2731459Z"),
			},
		}},
		{"timer_string_binding.http", want{
			path: "/rotate", method: "rotate", utcNow: "2024-10-05T03:30:00.0412733Z",
			status: &ScheduleStatus{
				Last:        mustTime(t, "2024-10-04T03:30:00Z"),
				Next:        mustTime(t, "2024-10-05T03:30:00Z"),
				LastUpdated: mustTime(t, "2024-10-04T03:30:01.2024518Z"),
			},
		}},
		{"timer_past_due.http", want{
			path: "/rotate", method: "rotate", utcNow: "2024-10-06T08:12:44.9050117Z", pastDue: true, reencodes: true,
			status: &ScheduleStatus{
				Last:        mustTime(t, "2024-10-04T03:30:00Z"),
				Next:        mustTime(t, "2024-10-05T03:30:00Z"),
				LastUpdated: mustTime(t, "2024-10-04T03:30:02.1185502Z"),
			},
		}},
		{"timer_retry_context.http", want{
			path: "/compliance", method: "compliance", utcNow: "2024-10-04T12:00:05.1195021Z",
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
			if inv.Binding != BindingTimer {
				t.Errorf("Binding = %q, want %q", inv.Binding, BindingTimer)
			}
			if !inv.Timer.Schedule.AdjustForDST {
				t.Error("Schedule.AdjustForDST = false, want true")
			}
			if inv.Timer.IsPastDue != tt.want.pastDue {
				t.Errorf("IsPastDue = %v, want %v", inv.Timer.IsPastDue, tt.want.pastDue)
			}
			assertStatus(t, inv.Timer.ScheduleStatus, tt.want.status)
			if inv.Sys == nil {
				t.Fatal("Sys = nil, want the host's sys metadata")
			}
			if inv.Sys.MethodName != tt.want.method {
				t.Errorf("Sys.MethodName = %q, want %q", inv.Sys.MethodName, tt.want.method)
			}
			if want := mustTime(t, tt.want.utcNow); !inv.Sys.UtcNow.Equal(want) {
				t.Errorf("Sys.UtcNow = %v, want %v", inv.Sys.UtcNow, want)
			}
			if !guidRE.MatchString(inv.Sys.RandGuid) {
				t.Errorf("Sys.RandGuid = %q, want a GUID", inv.Sys.RandGuid)
			}
			if !reflect.DeepEqual(inv.Retry, tt.want.retry) {
				t.Errorf("Retry = %+v, want %+v", inv.Retry, tt.want.retry)
			}
			if tt.want.reencodes {
				if got := EncodeTimer(inv); !bytes.Equal(got, body) {
					t.Errorf("EncodeTimer differs from the host's bytes:\n got %s\nwant %s", got, body)
				}
			}
		})
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

func TestDecodeTimerRejects(t *testing.T) {
	const sys = `"Metadata":{"sys":{"MethodName":"rotate","UtcNow":"2024-10-05T03:30:00.004275Z","RandGuid":"0d00378b-6426-4af1-9fc0-0793f4ce3745"}}`
	const okTimer = `{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}`
	tests := []struct {
		name string
		body string
		path string // the member the error must name ("" for the body)
		says string // a phrase the error must contain
	}{
		{"empty", "", "", "empty body"},
		{"whitespace", " \r\n ", "", "empty body"},
		{"not JSON", "POST /rotate", "", "not valid JSON"},
		{"truncated", `{"Data":{"timer":`, "", "not valid JSON"},
		{"trailing data", `{"Data":{"timer":` + okTimer + `}} {}`, "", "unexpected data"},
		{"array", `[]`, "", "an array: expected a JSON object"},
		{"string", `"x"`, "", `the string "x": expected a JSON object`},
		{"no Data", `{` + sys + `}`, "Data", "missing"},
		{"Data null", `{"Data":null}`, "Data", "missing"},
		{"Data array", `{"Data":[]}`, "Data", "an array"},
		{"no timer", `{"Data":{"req":{}},` + sys + `}`, "Data.timer", `Data has "req"`},
		{"empty Data", `{"Data":{}}`, "Data.timer", "Data is empty"},
		{"timer null", `{"Data":{"timer":null}}`, "Data.timer", "null"},
		{"timer number", `{"Data":{"timer":42}}`, "Data.timer", "the number 42"},
		{"timer string without object", `{"Data":{"timer":"tick"}}`, "Data.timer", "does not hold a JSON object"},
		{"timer string with bad JSON", `{"Data":{"timer":"{\"Schedule\":"}}`, "Data.timer", "string-encoded value: not valid JSON"},
		{"no Schedule", `{"Data":{"timer":{"IsPastDue":false}}}`, "Data.timer.Schedule", "missing"},
		{"Schedule string", `{"Data":{"timer":{"Schedule":"0 0 * * * *","IsPastDue":false}}}`, "Data.timer.Schedule", "expected a JSON object"},
		{"AdjustForDST string", `{"Data":{"timer":{"Schedule":{"AdjustForDST":"yes"},"IsPastDue":false}}}`, "Data.timer.Schedule.AdjustForDST", "expected true or false"},
		{"no IsPastDue", `{"Data":{"timer":{"Schedule":{}}}}`, "Data.timer.IsPastDue", "missing"},
		{"IsPastDue string", `{"Data":{"timer":{"Schedule":{},"IsPastDue":"false"}}}`, "Data.timer.IsPastDue", `the string "false": expected true or false`},
		{"ScheduleStatus array", `{"Data":{"timer":{"Schedule":{},"ScheduleStatus":[],"IsPastDue":false}}}`, "Data.timer.ScheduleStatus", "an array"},
		{"Last missing", `{"Data":{"timer":{"Schedule":{},"ScheduleStatus":{"Next":"2024-10-04T12:00:00+00:00","LastUpdated":"2024-10-04T12:00:00+00:00"},"IsPastDue":false}}}`, "Data.timer.ScheduleStatus.Last", "missing"},
		{"Next not a time", `{"Data":{"timer":{"Schedule":{},"ScheduleStatus":{"Last":"2024-10-04T06:00:00+00:00","Next":"tomorrow","LastUpdated":"2024-10-04T06:00:00+00:00"},"IsPastDue":false}}}`, "Data.timer.ScheduleStatus.Next", `"tomorrow" is not a timestamp`},
		{"LastUpdated number", `{"Data":{"timer":{"Schedule":{},"ScheduleStatus":{"Last":"2024-10-04T06:00:00+00:00","Next":"2024-10-04T12:00:00+00:00","LastUpdated":1728036000},"IsPastDue":false}}}`, "Data.timer.ScheduleStatus.LastUpdated", "the number 1728036000"},
		{"Metadata array", `{"Data":{"timer":` + okTimer + `},"Metadata":[]}`, "Metadata", "an array"},
		{"sys string", `{"Data":{"timer":` + okTimer + `},"Metadata":{"sys":"x"}}`, "Metadata.sys", "expected a JSON object"},
		{"sys without MethodName", `{"Data":{"timer":` + okTimer + `},"Metadata":{"sys":{"UtcNow":"2024-10-05T03:30:00Z","RandGuid":"0d00378b-6426-4af1-9fc0-0793f4ce3745"}}}`, "Metadata.sys.MethodName", "missing"},
		{"UtcNow bad", `{"Data":{"timer":` + okTimer + `},"Metadata":{"sys":{"MethodName":"rotate","UtcNow":"05/10/2024 03:30:00","RandGuid":"0d00378b-6426-4af1-9fc0-0793f4ce3745"}}}`, "Metadata.sys.UtcNow", "is not a timestamp"},
		{"RandGuid bad", `{"Data":{"timer":` + okTimer + `},"Metadata":{"sys":{"MethodName":"rotate","UtcNow":"2024-10-05T03:30:00Z","RandGuid":"not-a-guid"}}}`, "Metadata.sys.RandGuid", "is not a GUID"},
		{"RetryCount negative", `{"Data":{"timer":` + okTimer + `},"Metadata":{"RetryContext":{"RetryCount":-1,"MaxRetryCount":3}}}`, "Metadata.RetryContext.RetryCount", "expected a whole number"},
		{"RetryCount fraction", `{"Data":{"timer":` + okTimer + `},"Metadata":{"RetryContext":{"RetryCount":1.5,"MaxRetryCount":3}}}`, "Metadata.RetryContext.RetryCount", "expected a whole number"},
		{"MaxRetryCount missing", `{"Data":{"timer":` + okTimer + `},"Metadata":{"RetryContext":{"RetryCount":1}}}`, "Metadata.RetryContext.MaxRetryCount", "missing"},
		{"Exception string", `{"Data":{"timer":` + okTimer + `},"Metadata":{"RetryContext":{"RetryCount":1,"MaxRetryCount":3,"Exception":"boom"}}}`, "Metadata.RetryContext.Exception", "expected a JSON object"},
		{"Exception Message number", `{"Data":{"timer":` + okTimer + `},"Metadata":{"RetryContext":{"RetryCount":1,"MaxRetryCount":3,"Exception":{"Message":1}}}}`, "Metadata.RetryContext.Exception.Message", "expected a string"},
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
			if e.Path != tt.path {
				t.Errorf("Path = %q, want %q (error: %v)", e.Path, tt.path, err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
		})
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
			if inv.Sys != nil || inv.Retry != nil || !inv.Timer.IsPastDue || inv.Timer.ScheduleStatus != nil {
				t.Errorf("got %+v", inv)
			}
		}},
		{"unknown members ignored", `{"Data":{"timer":{"Schedule":{"AdjustForDST":false,"Kind":"cron"},"IsPastDue":false,"Extra":[1]}},"Metadata":{"sys":{"MethodName":"rotate","UtcNow":"2024-10-05T03:30:00Z","RandGuid":"0d00378b-6426-4af1-9fc0-0793f4ce3745","More":1},"Other":{}},"Future":true}`, "timer", func(t *testing.T, inv TimerInvocation) {
			if inv.Timer.Schedule.AdjustForDST || inv.Sys == nil || inv.Sys.MethodName != "rotate" {
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
