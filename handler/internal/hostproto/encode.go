package hostproto

import (
	"bytes"
	"encoding/json"
	"time"
)

// Newtonsoft.Json's ISO format for a DateTime ("yyyy-MM-ddTHH:mm:ss.FFFFFFFK"): up to seven fractional digits,
// trailing zeros dropped.
const (
	layoutLocal = "2006-01-02T15:04:05.9999999-07:00" // DateTimeKind.Local on a UTC machine: +00:00
	layoutUTC   = "2006-01-02T15:04:05.9999999Z07:00" // DateTimeKind.Utc: Z
	zeroTime    = "0001-01-01T00:00:00"               // default(DateTime), DateTimeKind.Unspecified
)

// FormatScheduleTime writes a ScheduleStatus time as the host does on a UTC machine (the schedule monitor's
// times are local DateTimes): 2024-10-04T10:15:00+00:00; the zero time as 0001-01-01T00:00:00.
func FormatScheduleTime(t time.Time) string {
	if t.IsZero() {
		return zeroTime
	}
	return t.UTC().Format(layoutLocal)
}

// FormatUTCTime writes a UTC DateTime as the host does: 2024-10-04T10:20:00.1234567Z.
func FormatUTCTime(t time.Time) string {
	if t.IsZero() {
		return zeroTime
	}
	return t.UTC().Format(layoutUTC)
}

type wireTimer struct {
	Schedule       wireSchedule `json:"Schedule"`
	ScheduleStatus *wireStatus  `json:"ScheduleStatus"`
	IsPastDue      bool         `json:"IsPastDue"`
}

type wireSchedule struct {
	AdjustForDST bool `json:"AdjustForDST"`
}

type wireStatus struct {
	Last        string `json:"Last"`
	Next        string `json:"Next"`
	LastUpdated string `json:"LastUpdated"`
}

type wireSys struct {
	MethodName string `json:"MethodName"`
	UtcNow     string `json:"UtcNow"`
	RandGuid   string `json:"RandGuid"`
}

type wireRetry struct {
	RetryCount    int            `json:"RetryCount"`
	MaxRetryCount int            `json:"MaxRetryCount"`
	Exception     *wireException `json:"Exception"`
	Instance      any            `json:"Instance"`
}

// wireException is System.Exception as Newtonsoft.Json writes an ISerializable (GetObjectData's members).
type wireException struct {
	ClassName              string `json:"ClassName"`
	Message                string `json:"Message"`
	Data                   any    `json:"Data"`
	InnerException         any    `json:"InnerException"`
	HelpURL                any    `json:"HelpURL"`
	StackTraceString       any    `json:"StackTraceString"`
	RemoteStackTraceString any    `json:"RemoteStackTraceString"`
	RemoteStackIndex       int    `json:"RemoteStackIndex"`
	ExceptionMethod        any    `json:"ExceptionMethod"`
	HResult                int    `json:"HResult"`
	Source                 any    `json:"Source"`
	WatsonBuckets          any    `json:"WatsonBuckets"`
}

// EncodeTimer writes the body the host sends for a timer invocation, byte for byte as the host's
// JsonMediaTypeFormatter does (compact, PascalCase, Data then Metadata, sys before RetryContext). inv.Binding
// defaults to BindingTimer; a nil inv.Sys leaves Metadata empty.
func EncodeTimer(inv TimerInvocation) []byte {
	binding := inv.Binding
	if binding == "" {
		binding = BindingTimer
	}
	t := wireTimer{Schedule: wireSchedule{inv.Timer.Schedule.AdjustForDST}, IsPastDue: inv.Timer.IsPastDue}
	if s := inv.Timer.ScheduleStatus; s != nil {
		t.ScheduleStatus = &wireStatus{FormatScheduleTime(s.Last), FormatScheduleTime(s.Next), FormatScheduleTime(s.LastUpdated)}
	}
	var b bytes.Buffer
	b.WriteString(`{"Data":{`)
	b.Write(compact(binding))
	b.WriteByte(':')
	b.Write(compact(t))
	b.WriteString(`},"Metadata":{`)
	sep := ""
	if inv.Sys != nil {
		b.WriteString(`"sys":`)
		b.Write(compact(wireSys{inv.Sys.MethodName, FormatUTCTime(inv.Sys.UtcNow), inv.Sys.RandGuid}))
		sep = ","
	}
	if r := inv.Retry; r != nil {
		w := wireRetry{RetryCount: r.RetryCount, MaxRetryCount: r.MaxRetryCount}
		if r.Exception != nil {
			w.Exception = &wireException{ClassName: r.Exception.ClassName, Message: r.Exception.Message, HResult: -2146233088}
		}
		b.WriteString(sep + `"RetryContext":`)
		b.Write(compact(w))
	}
	b.WriteString(`}}`)
	return b.Bytes()
}

// compact marshals v without HTML escaping (Newtonsoft does not escape <, > and &) and without a newline.
func compact(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only strings, bools, ints and nils are encoded here: this cannot fail.
		panic("hostproto: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// MarshalJSON writes Outputs as {} and Logs as [] when they are nil: the host expects objects, not null.
func (r Response) MarshalJSON() ([]byte, error) {
	type plain Response
	p := plain(r)
	if p.Outputs == nil {
		p.Outputs = map[string]any{}
	}
	if p.Logs == nil {
		p.Logs = []string{}
	}
	return json.Marshal(p)
}
