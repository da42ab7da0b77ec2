package hostproto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// DecodeTimer decodes the body of a timer invocation whose binding is named binding (the contract's is
// BindingTimer). It accepts what hosts send: ScheduleStatus null or absent, timestamps with or without an
// offset (read as UTC) and with up to seven fractional digits, the binding value as an object or as a JSON
// string that holds the object, and Metadata.RetryContext. Members it does not know are ignored; a member it
// knows with the wrong type, a bad timestamp, or a missing binding is an *Error naming the member. A body over
// MaxBodyBytes is ErrTooLarge.
func DecodeTimer(body []byte, binding string) (TimerInvocation, error) {
	var inv TimerInvocation
	if len(body) > MaxBodyBytes {
		return inv, ErrTooLarge
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return inv, &Error{Problem: `empty body: expected the host's JSON {"Data": {...}, "Metadata": {...}}`}
	}
	root, err := objectOf(body, "", false)
	if err != nil {
		return inv, err
	}

	dataRaw, ok := member(root, "Data")
	if !ok || isNull(dataRaw) {
		return inv, &Error{Path: "Data", Problem: "missing: expected an object with the function's input bindings"}
	}
	data, err := objectOf(dataRaw, "Data", false)
	if err != nil {
		return inv, err
	}
	key, timerRaw, ok := memberKey(data, binding)
	if !ok {
		return inv, &Error{Path: "Data." + binding, Problem: "missing: expected the timer binding" + present(data)}
	}
	inv.Binding = key
	path := "Data." + key
	if isNull(timerRaw) {
		return inv, &Error{Path: path, Problem: "null: expected the TimerInfo object"}
	}
	if inv.Timer, err = decodeTimerInfo(timerRaw, path); err != nil {
		return inv, err
	}

	metaRaw, ok := member(root, "Metadata")
	if !ok || isNull(metaRaw) {
		return inv, nil
	}
	meta, err := objectOf(metaRaw, "Metadata", false)
	if err != nil {
		return inv, err
	}
	if raw, ok := member(meta, "sys"); ok && !isNull(raw) {
		sys, err := decodeSys(raw, "Metadata.sys")
		if err != nil {
			return inv, err
		}
		inv.Sys = &sys
	}
	if raw, ok := member(meta, "RetryContext"); ok && !isNull(raw) {
		rc, err := decodeRetry(raw, "Metadata.RetryContext")
		if err != nil {
			return inv, err
		}
		inv.Retry = &rc
	}
	return inv, nil
}

func decodeTimerInfo(raw json.RawMessage, path string) (TimerInfo, error) {
	var t TimerInfo
	obj, err := objectOf(raw, path, true)
	if err != nil {
		return t, err
	}
	schedRaw, ok := member(obj, "Schedule")
	if !ok || isNull(schedRaw) {
		return t, &Error{Path: path + ".Schedule", Problem: `missing: expected an object such as {"AdjustForDST": true}`}
	}
	sched, err := objectOf(schedRaw, path+".Schedule", false)
	if err != nil {
		return t, err
	}
	if v, ok := member(sched, "AdjustForDST"); ok {
		if t.Schedule.AdjustForDST, err = boolOf(v, path+".Schedule.AdjustForDST"); err != nil {
			return t, err
		}
	}
	if v, ok := member(obj, "ScheduleStatus"); ok && !isNull(v) {
		st, err := decodeStatus(v, path+".ScheduleStatus")
		if err != nil {
			return t, err
		}
		t.ScheduleStatus = &st
	}
	v, ok := member(obj, "IsPastDue")
	if !ok {
		return t, &Error{Path: path + ".IsPastDue", Problem: "missing: expected true or false"}
	}
	if t.IsPastDue, err = boolOf(v, path+".IsPastDue"); err != nil {
		return t, err
	}
	return t, nil
}

func decodeStatus(raw json.RawMessage, path string) (ScheduleStatus, error) {
	var s ScheduleStatus
	obj, err := objectOf(raw, path, false)
	if err != nil {
		return s, err
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"Last", &s.Last}, {"Next", &s.Next}, {"LastUpdated", &s.LastUpdated}} {
		v, ok := member(obj, f.name)
		if !ok {
			return s, &Error{Path: path + "." + f.name, Problem: "missing: expected a timestamp such as 2024-10-04T10:15:00+00:00"}
		}
		if *f.dst, err = timeOf(v, path+"."+f.name); err != nil {
			return s, err
		}
	}
	return s, nil
}

var guidRE = &lazyRegexp{pattern: `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`}

// lazyRegexp compiles its pattern on first use: a package-level regexp.MustCompile would run on every
// cold start of the handler, whether the pattern is needed or not.
type lazyRegexp struct {
	pattern string
	once    sync.Once
	re      *regexp.Regexp
}

func (l *lazyRegexp) MatchString(s string) bool {
	l.once.Do(func() { l.re = regexp.MustCompile(l.pattern) })
	return l.re.MatchString(s)
}

func decodeSys(raw json.RawMessage, path string) (Sys, error) {
	var s Sys
	obj, err := objectOf(raw, path, false)
	if err != nil {
		return s, err
	}
	v, ok := member(obj, "MethodName")
	if !ok {
		return s, &Error{Path: path + ".MethodName", Problem: "missing: expected the function name"}
	}
	if s.MethodName, err = stringOf(v, path+".MethodName"); err != nil {
		return s, err
	}
	if v, ok = member(obj, "UtcNow"); !ok {
		return s, &Error{Path: path + ".UtcNow", Problem: "missing: expected a timestamp such as 2024-10-04T10:20:00.1234567Z"}
	}
	if s.UtcNow, err = timeOf(v, path+".UtcNow"); err != nil {
		return s, err
	}
	if v, ok = member(obj, "RandGuid"); !ok {
		return s, &Error{Path: path + ".RandGuid", Problem: "missing: expected a GUID"}
	}
	if s.RandGuid, err = stringOf(v, path+".RandGuid"); err != nil {
		return s, err
	}
	if !guidRE.MatchString(s.RandGuid) {
		return s, &Error{Path: path + ".RandGuid", Problem: fmt.Sprintf("%s is not a GUID", quoteShort(s.RandGuid))}
	}
	return s, nil
}

func decodeRetry(raw json.RawMessage, path string) (RetryContext, error) {
	var r RetryContext
	obj, err := objectOf(raw, path, true)
	if err != nil {
		return r, err
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"RetryCount", &r.RetryCount}, {"MaxRetryCount", &r.MaxRetryCount}} {
		v, ok := member(obj, f.name)
		if !ok {
			return r, &Error{Path: path + "." + f.name, Problem: "missing: expected a whole number"}
		}
		if *f.dst, err = countOf(v, path+"."+f.name); err != nil {
			return r, err
		}
	}
	if v, ok := member(obj, "Exception"); ok && !isNull(v) {
		ex, err := objectOf(v, path+".Exception", false)
		if err != nil {
			return r, err
		}
		r.Exception = &Exception{}
		for _, f := range []struct {
			name string
			dst  *string
		}{{"ClassName", &r.Exception.ClassName}, {"Message", &r.Exception.Message}} {
			if v, ok := member(ex, f.name); ok && !isNull(v) {
				if *f.dst, err = stringOf(v, path+".Exception."+f.name); err != nil {
					return r, err
				}
			}
		}
	}
	return r, nil
}

// objectOf parses raw as a JSON object. With stringOK, a JSON string that holds an object is accepted too
// (older hosts sent binding values that way).
func objectOf(raw []byte, path string, stringOK bool) (map[string]json.RawMessage, error) {
	if err := single(raw, path); err != nil {
		return nil, err
	}
	raw = bytes.TrimSpace(raw)
	switch raw[0] {
	case '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, &Error{Path: path, Problem: "not a JSON object: " + err.Error()}
		}
		return m, nil
	case '"':
		if stringOK {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, &Error{Path: path, Problem: "bad JSON string: " + err.Error()}
			}
			inner := strings.TrimSpace(s)
			if !strings.HasPrefix(inner, "{") {
				return nil, &Error{Path: path, Problem: "a string that does not hold a JSON object: expected an object or a string with one"}
			}
			m, err := objectOf([]byte(inner), path, false)
			if err != nil {
				var e *Error
				if ok := asError(err, &e); ok {
					return nil, &Error{Path: path, Problem: "string-encoded value: " + e.Problem}
				}
				return nil, err
			}
			return m, nil
		}
	}
	want := "a JSON object"
	if stringOK {
		want = "a JSON object (or a string holding one)"
	}
	return nil, &Error{Path: path, Problem: fmt.Sprintf("%s: expected %s", kind(raw), want)}
}

// single checks that raw is exactly one well-formed JSON value.
func single(raw []byte, path string) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return &Error{Path: path, Problem: "not valid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &Error{Path: path, Problem: "unexpected data after the JSON value"}
	}
	return nil
}

func boolOf(raw json.RawMessage, path string) (bool, error) {
	switch string(bytes.TrimSpace(raw)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, &Error{Path: path, Problem: kind(raw) + ": expected true or false"}
}

func stringOf(raw json.RawMessage, path string) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return "", &Error{Path: path, Problem: kind(raw) + ": expected a string"}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &Error{Path: path, Problem: "bad JSON string: " + err.Error()}
	}
	return s, nil
}

func countOf(raw json.RawMessage, path string) (int, error) {
	var n int
	if err := json.Unmarshal(raw, &n); err != nil || n < 0 {
		return 0, &Error{Path: path, Problem: kind(raw) + ": expected a whole number >= 0"}
	}
	return n, nil
}

func timeOf(raw json.RawMessage, path string) (time.Time, error) {
	s, err := stringOf(raw, path)
	if err != nil {
		return time.Time{}, &Error{Path: path, Problem: kind(raw) + ": expected a timestamp string such as 2024-10-04T10:15:00+00:00"}
	}
	t, err := ParseTime(s)
	if err != nil {
		return time.Time{}, &Error{Path: path, Problem: err.Error()}
	}
	return t, nil
}

// ParseTime reads a timestamp as Newtonsoft.Json writes a .NET DateTime: ISO 8601 with up to seven
// fractional digits and an offset ("Z", "+00:00") when the DateTime had a Kind, none when it had not; a time
// without an offset is read as UTC.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t, err = time.ParseInLocation("2006-01-02T15:04:05", s, time.UTC)
	}
	if err == nil {
		// A .NET DateTime holds years 1 to 9999.
		if y := t.UTC().Year(); y < 1 || y > 9999 {
			return time.Time{}, fmt.Errorf("%s is outside the years 0001 to 9999 of a .NET DateTime", quoteShort(s))
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s is not a timestamp: expected ISO 8601 such as 2024-10-04T10:15:00+00:00, 2024-10-04T10:20:00.1234567Z or 2021-05-17T21:00:00", quoteShort(s))
}

func member(m map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	_, v, ok := memberKey(m, name)
	return v, ok
}

// memberKey finds a member by exact name, else case-insensitively (deterministically: the smallest key).
func memberKey(m map[string]json.RawMessage, name string) (string, json.RawMessage, bool) {
	if v, ok := m[name]; ok {
		return name, v, true
	}
	found := ""
	for k := range m {
		if strings.EqualFold(k, name) && (found == "" || k < found) {
			found = k
		}
	}
	if found == "" {
		return "", nil, false
	}
	return found, m[found], true
}

func present(m map[string]json.RawMessage) string {
	if len(m) == 0 {
		return " (Data is empty)"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, quoteShort(k))
	}
	sort.Strings(keys)
	if len(keys) > 5 {
		keys = append(keys[:5], "…")
	}
	return " (Data has " + strings.Join(keys, ", ") + ")"
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// kind names the JSON type of raw for messages, never echoing long values.
func kind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return "the string " + quoteShort(s)
		}
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "the number " + shorten(string(raw))
}

func quoteShort(s string) string { return fmt.Sprintf("%q", shorten(s)) }

func shorten(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max]) + "…"
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}
