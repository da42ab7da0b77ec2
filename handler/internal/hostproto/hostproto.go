// Package hostproto is the Azure Functions custom-handler invocation protocol, as the Functions host speaks
// it to a custom handler for every function that is not a forwarded HTTP trigger: the host POSTs
// `/{functionName}` with the headers X-Azure-Functions-InvocationId, X-Azure-Functions-HostVersion and
// User-Agent: Azure-Functions-Host/{version}, and a PascalCase JSON body
//
//	{"Data": {"timer": {"Schedule": {"AdjustForDST": true},
//	                    "ScheduleStatus": {"Last": "…", "Next": "…", "LastUpdated": "…"},
//	                    "IsPastDue": false}},
//	 "Metadata": {"sys": {"MethodName": "…", "UtcNow": "…", "RandGuid": "…"}}}
//
// The host builds that body in ScriptInvocationContextExtensions.ToHttpScriptInvocationContext: every input
// binding under Data (JObject.FromObject of the value, or a JSON string when that fails), the trigger's binding
// data under Metadata (sys always; RetryContext when function.json has a retry policy) and serializes it with
// Newtonsoft.Json: DateTime values with up to seven fractional digits, an offset only when the DateTime had a
// Kind, and ScheduleStatus null when the schedule monitor is off.
//
// The handler answers 2xx with application/json {"Outputs": {}, "Logs": [...], "ReturnValue": …}; see Response.
//
// DecodeTimer is a pure function of the body (no I/O, no clock), so it is also a fuzz target. EncodeTimer
// writes the body the host would send, byte for byte; the local host (package funchost) uses it.
package hostproto

import (
	"errors"
	"fmt"
	"time"
)

// Header names and values of the protocol.
const (
	HeaderInvocationID = "X-Azure-Functions-InvocationId"
	HeaderHostVersion  = "X-Azure-Functions-HostVersion"
	UserAgentProduct   = "Azure-Functions-Host" // User-Agent: Azure-Functions-Host/{HostVersion}
	// HostVersion is the host version the fixtures were captured with; the local host sends it too.
	HostVersion = "4.24.4.4"
	// ContentType is what the host sends (System.Net.Http.Formatting's JsonMediaTypeFormatter).
	ContentType = "application/json; charset=utf-8"
	// BindingTimer is the contract's timer binding name.
	BindingTimer = "timer"
)

// MaxBodyBytes is the largest invocation body a handler accepts (64 KiB; a timer payload is about 400 bytes).
const MaxBodyBytes = 64 << 10

// ErrMalformed is wrapped by every *Error: the body is not a well-formed invocation.
var ErrMalformed = errors.New("malformed invocation payload")

// ErrTooLarge: the body exceeds MaxBodyBytes.
var ErrTooLarge = fmt.Errorf("invocation payload larger than %d bytes", MaxBodyBytes)

// Error says what was wrong with an invocation payload, and where.
type Error struct {
	Path    string // JSON path of the offending member, e.g. "Data.timer.ScheduleStatus.Last"; "" for the body
	Problem string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "invocation payload: " + e.Problem
	}
	return "invocation payload: " + e.Path + ": " + e.Problem
}

// Unwrap makes errors.Is(err, ErrMalformed) true.
func (e *Error) Unwrap() error { return ErrMalformed }

// TimerInvocation is a decoded timer invocation. DecodeTimer fills what the payload held in the shape the
// host sends; everything else is the zero value.
type TimerInvocation struct {
	Binding string        // the Data member that held the timer (the binding name of function.json); "" when absent
	Timer   TimerInfo     // the TimerInfo of the trigger
	Sys     *Sys          // Metadata.sys; nil when the host sent none
	Retry   *RetryContext // Metadata.RetryContext; nil unless function.json has a retry policy and this is a retry
	// Warnings say, for the log, where the payload differed from what the host sends ("Data.timer.IsPastDue:
	// missing"): members it lacked or held in an unexpected shape, which were ignored. Never the values of
	// long strings: at most 64 characters of one are quoted. EncodeTimer ignores them.
	Warnings []string
}

// TimerInfo is Microsoft.Azure.WebJobs.TimerInfo as the host serializes it.
type TimerInfo struct {
	Schedule       Schedule
	ScheduleStatus *ScheduleStatus // nil when the schedule monitor is off (useMonitor false, or no storage)
	IsPastDue      bool            // the invocation is due to a missed occurrence
}

// Schedule is the serialized TimerSchedule: a CronSchedule has only AdjustForDST.
type Schedule struct {
	AdjustForDST bool
}

// ScheduleStatus is the schedule monitor's record. Times without an offset are read as UTC; a time the host
// never recorded is 0001-01-01T00:00:00 (the zero time.Time).
type ScheduleStatus struct {
	Last        time.Time // last recorded occurrence
	Next        time.Time // expected next occurrence
	LastUpdated time.Time // when the record was last written
}

// Sys is the host's system binding data.
type Sys struct {
	MethodName string    // the function name
	UtcNow     time.Time // when the host built the invocation
	RandGuid   string    // a random GUID for binding expressions
}

// RetryContext is present when function.json has a retry policy and this invocation retries a failed one.
type RetryContext struct {
	RetryCount    int
	MaxRetryCount int
	// Exception is the failed attempt's exception as .NET serializes one (ISerializable); nil when null.
	Exception *Exception
}

// Exception is the part of a serialized .NET exception worth logging.
type Exception struct {
	ClassName string
	Message   string
}

// Response is the body a handler answers an invocation with. Outputs and Logs are never null on the wire.
// The host reads Logs only from a 2xx answer; it logs each line at Information level.
type Response struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// NewResponse is a Response with empty Outputs, the given log lines and return value.
func NewResponse(returnValue any, logs ...string) Response {
	if logs == nil {
		logs = []string{}
	}
	return Response{Outputs: map[string]any{}, Logs: logs, ReturnValue: returnValue}
}
