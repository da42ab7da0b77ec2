package emulator

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// FaultKind is what a fault does to a request.
type FaultKind int

const (
	// FaultStatus answers Status with the service's error body (Code, Message).
	FaultStatus FaultKind = iota
	// FaultDrop closes the connection without an answer.
	FaultDrop
	// FaultHang sends nothing until the client gives up (its context ends) or the tenant closes.
	FaultHang
	// FaultHook runs Fault.Hook, outside the tenant's lock, and then lets the request go on as usual:
	// something else happens to the tenant at that very moment (an admin deletes the secret while a
	// write is on its way).
	FaultHook
)

func (k FaultKind) String() string {
	switch k {
	case FaultStatus:
		return "status"
	case FaultDrop:
		return "drop"
	case FaultHang:
		return "hang"
	case FaultHook:
		return "hook"
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// Always makes a fault fire on every matching request (Fault.Times).
const Always = -1

// Fault is an injected failure.
//
// Inside a $batch a status fault answers the one request it matches; a drop or hang fault that matches a
// batched request drops or hangs the whole $batch.
type Fault struct {
	Service   string // ServiceGraph, ServiceKeyVault, ServiceIdentity, ServiceARM, ServiceLogin; "" = any
	Operation string // an Op* name; "" = any operation of Service
	// TenantID limits the fault to requests of that tenant (case-insensitive; "" = any): Graph requests
	// whose token carries that tid, token service requests for it, and, for the home tenant, the Key
	// Vault, ARM and managed identity requests, which all belong to it.
	TenantID string
	Kind     FaultKind
	// Status of a FaultStatus: 429, 503, 500, or any other; 0 means 503.
	Status int
	// Code and Message of the error body; empty: a default per status ("TooManyRequests", …).
	Code, Message string
	// RetryAfter is the Retry-After header in whole seconds. 429 and 503 always carry the header (0
	// when unset, which makes the SDKs retry at once or with their own back-off); other statuses carry
	// it when RetryAfter > 0.
	RetryAfter int
	// After applies the fault after the request was applied: the write happened, its answer is lost
	// (Kind drop or hang) or replaced (Kind status).
	After bool
	// Times is how often the fault fires: 0 once (unlimited when Probability is set), N > 0 N times,
	// Always on every matching request.
	Times int
	// Probability, when > 0, fires the fault on each matching request with that probability, drawn from
	// the tenant's seeded RNG (Options.Seed).
	Probability float64
	// Skip is how many matching requests (in the fault's phase) pass untouched before the fault can fire:
	// Skip 1 on OpAssignAppRole hits the second assignment.
	Skip int
	// Hook is what a FaultHook runs.
	Hook func(*Tenant)
}

func (f Fault) String() string {
	s := fmt.Sprintf("%s/%s %s", orAny(f.Service), orAny(f.Operation), f.Kind)
	if f.TenantID != "" {
		s = "tenant " + f.TenantID + " " + s
	}
	if f.Kind == FaultStatus {
		s += " " + strconv.Itoa(f.status())
	}
	if f.After {
		s += " after apply"
	}
	return s
}

func orAny(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

func (f Fault) status() int {
	if f.Status == 0 {
		return http.StatusServiceUnavailable
	}
	return f.Status
}

// faultEntry is an added fault with its remaining firings (-1: unlimited).
type faultEntry struct {
	f    Fault
	left int
	skip int
}

// AddFault adds a fault. Faults are matched in the order they were added.
func (t *Tenant) AddFault(f Fault) {
	left := f.Times
	switch {
	case f.Times < 0:
		left = -1
	case f.Times == 0 && f.Probability > 0:
		left = -1
	case f.Times == 0:
		left = 1
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.faults = append(t.faults, &faultEntry{f: f, left: left, skip: max(f.Skip, 0)})
}

// ClearFaults removes every fault.
func (t *Tenant) ClearFaults() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.faults = nil
}

// PendingFaults returns the faults that can still fire.
func (t *Tenant) PendingFaults() []Fault {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Fault
	for _, e := range t.faults {
		if e.left != 0 {
			out = append(out, e.f)
		}
	}
	return out
}

// takeFault returns the first fault that matches and fires for an operation of a tenant ("" when the
// request has none) in a phase. Runs under t.mu.
func (t *Tenant) takeFault(service, op, tenant string, after bool) (Fault, bool) {
	for _, e := range t.faults {
		f := e.f
		if e.left == 0 || f.After != after {
			continue
		}
		if f.Service != "" && f.Service != service {
			continue
		}
		if f.Operation != "" && f.Operation != op {
			continue
		}
		if f.TenantID != "" && !strings.EqualFold(f.TenantID, tenant) {
			continue
		}
		if e.skip > 0 {
			e.skip--
			continue
		}
		if f.Probability > 0 && t.rng.Float64() >= f.Probability {
			continue
		}
		if e.left > 0 {
			e.left--
		}
		t.stats.FaultsFired++
		t.logf("emulator: fault %s fired on %s", f, op)
		return f, true
	}
	return Fault{}, false
}

// defaultFaultCode is the error code of a status fault without Code.
func defaultFaultCode(service string, status int) string {
	switch status {
	case http.StatusTooManyRequests:
		if service == ServiceKeyVault {
			return "Throttled"
		}
		return "TooManyRequests"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	case http.StatusInternalServerError:
		if service == ServiceGraph {
			return "generalException"
		}
		return "InternalServerError"
	case http.StatusGatewayTimeout:
		return "GatewayTimeout"
	}
	return http.StatusText(status)
}

// faultAnswer is the answer of a status fault.
func (t *Tenant) faultAnswer(req *request, f Fault) answer {
	status := f.status()
	code := f.Code
	if code == "" {
		code = defaultFaultCode(req.service, status)
	}
	msg := f.Message
	if msg == "" {
		switch status {
		case http.StatusTooManyRequests:
			msg = "Too many requests. Please retry after the time given in the Retry-After header (emulated)."
		case http.StatusServiceUnavailable:
			msg = "The service is temporarily unavailable. Please retry later (emulated)."
		default:
			msg = fmt.Sprintf("Emulated fault: %s.", http.StatusText(status))
		}
	}
	ans := t.errorAnswer(req, status, code, msg)
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable || f.RetryAfter > 0 {
		ans.header.Set("Retry-After", strconv.Itoa(max(f.RetryAfter, 0)))
	}
	return ans
}
