package hostproto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"
)

// DecodeTimer reads the body of a timer invocation whose binding is named binding (the contract's is
// BindingTimer). The payload is read for logging only, and a renewal must never be lost to a change in
// the host's payload, so ANY JSON object is a valid invocation: what DecodeTimer can read it reads, and
// whatever is missing, null or of an unexpected type is left at its zero value. It reads what hosts send:
// ScheduleStatus null or absent, timestamps with or without an offset (read as UTC) and with up to seven
// fractional digits, the binding value as an object or as a JSON string that holds the object, Metadata,
// Metadata.sys and Metadata.RetryContext absent or present; member names are matched case-insensitively
// and unknown members are ignored.
//
// A member that the host always sends but the body lacks (Data, the binding, Schedule, IsPastDue, the
// members of ScheduleStatus, sys and RetryContext), and any member of an unexpected type or value, is
// noted in TimerInvocation.Warnings for the caller to log; members that hosts leave out (ScheduleStatus,
// Metadata, sys, RetryContext) are not.
//
// Only a body that is not one JSON object is an error: an *Error (wrapping ErrMalformed) for an empty
// body, malformed JSON, data after the value, or a value other than an object (array, string, number,
// null), and ErrTooLarge for a body over MaxBodyBytes.
func DecodeTimer(body []byte, binding string) (TimerInvocation, error) {
	var inv TimerInvocation
	if len(body) > MaxBodyBytes {
		return inv, ErrTooLarge
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return inv, &Error{Problem: `empty body: expected the host's JSON object {"Data": {...}, "Metadata": {...}}`}
	}
	root, err := objectOf(body, "", false)
	if err != nil {
		return inv, err
	}
	r := &reader{}

	if data, ok := r.object(root, "Data", "Data", false, true); ok {
		key, raw, found := memberKey(data, binding)
		switch {
		case !found:
			r.warn("Data."+binding, "missing: expected the timer binding"+present(data))
		case isNull(raw):
			inv.Binding = key
			r.warn("Data."+key, "null: expected the TimerInfo object")
		default:
			inv.Binding = key
			if obj, ok := r.value(raw, "Data."+key, true); ok {
				inv.Timer = r.timerInfo(obj, "Data."+key)
			}
		}
	}
	if meta, ok := r.object(root, "Metadata", "Metadata", false, false); ok {
		if sys, ok := r.object(meta, "sys", "Metadata.sys", false, false); ok {
			s := r.sys(sys, "Metadata.sys")
			inv.Sys = &s
		}
		if rc, ok := r.object(meta, "RetryContext", "Metadata.RetryContext", true, false); ok {
			c := r.retry(rc, "Metadata.RetryContext")
			inv.Retry = &c
		}
	}
	inv.Warnings = r.warnings
	return inv, nil
}

// reader reads the members of a payload that it can, and notes the rest as warnings.
type reader struct {
	warnings []string
}

// warn notes a member of unexpected shape. The decoder reads each member it knows once, so the warnings
// are bounded by those members (12), however surprising the payload.
func (r *reader) warn(path, problem string) {
	r.warnings = append(r.warnings, path+": "+problem)
}

// object reads the member name of m as an object (with stringOK, also a JSON string that holds one). A
// missing or null member is false, noted only with warnMissing; any other shape is false and noted.
func (r *reader) object(m map[string]json.RawMessage, name, path string, stringOK, warnMissing bool) (map[string]json.RawMessage, bool) {
	raw, ok := member(m, name)
	if !ok || isNull(raw) {
		if warnMissing {
			what := "missing"
			if ok {
				what = "null"
			}
			r.warn(path, what+": expected an object")
		}
		return nil, false
	}
	return r.value(raw, path, stringOK)
}

// value reads raw as an object (see objectOf); a value of another shape is false and noted.
func (r *reader) value(raw json.RawMessage, path string, stringOK bool) (map[string]json.RawMessage, bool) {
	obj, err := objectOf(raw, path, stringOK)
	if err != nil {
		if e, ok := err.(*Error); ok {
			r.warn(e.Path, e.Problem)
		} else {
			r.warn(path, err.Error())
		}
		return nil, false
	}
	return obj, true
}

// field returns the member name of m for a reader of one value; a missing member is noted when required.
func (r *reader) field(m map[string]json.RawMessage, name, path string, required bool) (json.RawMessage, bool) {
	raw, ok := member(m, name)
	if !ok && required {
		r.warn(path, "missing")
	}
	return raw, ok
}

func (r *reader) readBool(m map[string]json.RawMessage, name, path string, required bool) bool {
	raw, ok := r.field(m, name, path, required)
	if !ok {
		return false
	}
	v, err := boolOf(raw, path)
	r.note(err)
	return v
}

func (r *reader) readString(m map[string]json.RawMessage, name, path string, required, nullOK bool) string {
	raw, ok := r.field(m, name, path, required)
	if !ok || (nullOK && isNull(raw)) {
		return ""
	}
	v, err := stringOf(raw, path)
	r.note(err)
	return v
}

func (r *reader) readTime(m map[string]json.RawMessage, name, path string) time.Time {
	raw, ok := r.field(m, name, path, true)
	if !ok {
		return time.Time{}
	}
	v, err := timeOf(raw, path)
	r.note(err)
	return v
}

func (r *reader) readCount(m map[string]json.RawMessage, name, path string) int {
	raw, ok := r.field(m, name, path, true)
	if !ok {
		return 0
	}
	v, err := countOf(raw, path)
	r.note(err)
	return v
}

// note turns a value reader's *Error into a warning.
func (r *reader) note(err error) {
	if err == nil {
		return
	}
	if e, ok := err.(*Error); ok {
		r.warn(e.Path, e.Problem)
		return
	}
	r.warn("", err.Error())
}

func (r *reader) timerInfo(obj map[string]json.RawMessage, path string) TimerInfo {
	var t TimerInfo
	if raw, ok := r.field(obj, "Schedule", path+".Schedule", true); ok {
		if sched, ok := r.value(raw, path+".Schedule", false); ok {
			t.Schedule.AdjustForDST = r.readBool(sched, "AdjustForDST", path+".Schedule.AdjustForDST", false)
		}
	}
	if st, ok := r.object(obj, "ScheduleStatus", path+".ScheduleStatus", false, false); ok {
		s := ScheduleStatus{
			Last:        r.readTime(st, "Last", path+".ScheduleStatus.Last"),
			Next:        r.readTime(st, "Next", path+".ScheduleStatus.Next"),
			LastUpdated: r.readTime(st, "LastUpdated", path+".ScheduleStatus.LastUpdated"),
		}
		t.ScheduleStatus = &s
	}
	t.IsPastDue = r.readBool(obj, "IsPastDue", path+".IsPastDue", true)
	return t
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func (r *reader) sys(obj map[string]json.RawMessage, path string) Sys {
	s := Sys{
		MethodName: r.readString(obj, "MethodName", path+".MethodName", true, false),
		UtcNow:     r.readTime(obj, "UtcNow", path+".UtcNow"),
		RandGuid:   r.readString(obj, "RandGuid", path+".RandGuid", true, false),
	}
	if s.RandGuid != "" && !guidRE.MatchString(s.RandGuid) {
		r.warn(path+".RandGuid", fmt.Sprintf("%s is not a GUID", quoteShort(s.RandGuid)))
		s.RandGuid = ""
	}
	return s
}

func (r *reader) retry(obj map[string]json.RawMessage, path string) RetryContext {
	c := RetryContext{
		RetryCount:    r.readCount(obj, "RetryCount", path+".RetryCount"),
		MaxRetryCount: r.readCount(obj, "MaxRetryCount", path+".MaxRetryCount"),
	}
	if ex, ok := r.object(obj, "Exception", path+".Exception", false, false); ok {
		c.Exception = &Exception{
			ClassName: r.readString(ex, "ClassName", path+".Exception.ClassName", false, true),
			Message:   r.readString(ex, "Message", path+".Exception.Message", false, true),
		}
	}
	return c
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
