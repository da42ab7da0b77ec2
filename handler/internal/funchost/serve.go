package funchost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/hostproto"
)

// hopHeaders are not forwarded (RFC 9110 section 7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (h *Host) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/api/"):
		h.forward(w, r)
	case strings.HasPrefix(p, "/admin/functions/"):
		h.admin(w, r)
	case p == "/admin/emulator/expire-secret":
		h.expireSecret(w, r)
	case p == "/admin/emulator/tamper-secret":
		h.tamperSecret(w, r)
	case p == "/":
		fmt.Fprintln(w, "funchost: the local Functions host is running; functions are under /api/ and /admin/functions/")
	default:
		http.NotFound(w, r)
	}
}

func (h *Host) httpFunction(route string) *Function {
	for i := range h.fns {
		if h.fns[i].Trigger == TriggerHTTP && strings.EqualFold(h.fns[i].Route, route) {
			return &h.fns[i]
		}
	}
	return nil
}

// forward sends the original request to the handler and returns its answer unchanged.
func (h *Host) forward(w http.ResponseWriter, r *http.Request) {
	fn := h.httpFunction(strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/"), "/"))
	if fn == nil || !allows(fn.Methods, r.Method) {
		// The host routes by route and method: either mismatch is 404.
		w.WriteHeader(http.StatusNotFound)
		return
	}
	inv := Invocation{Function: fn.Name, ID: newGUID(), Trigger: "http"}
	start := time.Now()
	defer func() {
		inv.Duration = time.Since(start)
		h.report(inv)
	}()

	ctx, cancel := h.invocationContext(r.Context())
	defer cancel()
	out, err := http.NewRequestWithContext(ctx, r.Method, h.base+r.URL.RequestURI(), r.Body)
	if err != nil {
		inv.Err = err
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	out.ContentLength = r.ContentLength
	if r.ContentLength == 0 {
		out.Body = http.NoBody
	}
	out.Header = r.Header.Clone()
	for _, k := range hopHeaders {
		out.Header.Del(k)
	}
	out.Header.Set(hostproto.HeaderHostVersion, hostproto.HostVersion)
	out.Header.Set(hostproto.HeaderInvocationID, inv.ID)
	ua := hostproto.UserAgentProduct + "/" + hostproto.HostVersion
	if orig := r.Header.Get("User-Agent"); orig != "" {
		ua = orig + " " + ua
	}
	out.Header.Set("User-Agent", ua)

	resp, err := h.client.Do(out)
	if err != nil {
		inv.Err = err
		// The host fails the invocation: 500 without a body.
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	defer resp.Body.Close()
	inv.Status = resp.StatusCode
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	for _, k := range hopHeaders {
		w.Header().Del(k)
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		inv.Err = fmt.Errorf("copying the answer: %w", err)
	}
}

func allows(methods []string, m string) bool {
	if len(methods) == 0 {
		return true
	}
	for _, x := range methods {
		if strings.EqualFold(x, m) {
			return true
		}
	}
	return false
}

// secretExpirer is what an emulated tenant offers to stand in for the passing of time.
type secretExpirer interface {
	ExpireSecret(name string, in time.Duration) (string, error)
}

// expireSecret is POST /admin/emulator/expire-secret?days=N[&name=S]: on the emulated tenant only, make
// the current secret expire in N days (default 20, inside the default renewal window), so that a renewal
// can be shown without waiting months.
func (h *Host) expireSecret(w http.ResponseWriter, r *http.Request) {
	if !postOnly(w, r, "POST /admin/emulator/expire-secret?days=N moves the current secret's expiry") {
		return
	}
	ex, ok := h.tenant.(secretExpirer)
	if !ok {
		http.Error(w, "not running on the emulated tenant: a real secret's expiry cannot be moved", http.StatusConflict)
		return
	}
	days := 20
	if d := r.URL.Query().Get("days"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 3650 {
			http.Error(w, "days must be a whole number from 0 to 3650", http.StatusBadRequest)
			return
		}
		days = n
	}
	keyID, err := ex.ExpireSecret(h.secretName(r), time.Duration(days)*24*time.Hour)
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	h.logf("emulated tenant: the current secret (keyId %s) now expires in %d days", keyID, days)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"keyId": keyID, "expiresInDays": days})
}

// postOnly answers 405 with usage to anything but a POST, and tells whether the request is one.
func postOnly(w http.ResponseWriter, r *http.Request, usage string) bool {
	if r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", http.MethodPost)
	http.Error(w, usage, http.StatusMethodNotAllowed)
	return false
}

// secretName is the secret an emulator admin call is about: ?name=, else APPREG_SECRET_NAME, else the
// contract's default.
func (h *Host) secretName(r *http.Request) string {
	if name := r.URL.Query().Get("name"); name != "" {
		return name
	}
	if name := h.env.get("APPREG_SECRET_NAME"); name != "" {
		return name
	}
	return "AppConfig--AuthConfig--ApplicationKey"
}

// secretTamperer is the emulated tenant's TamperSecret.
type secretTamperer interface {
	TamperSecret(name string) (string, error)
}

// tamperSecret is POST /admin/emulator/tamper-secret[?name=S]: on the emulated tenant only, store a wrong
// value as the secret's new version (the tags still right), as an admin pasting the wrong value would, so
// that the sign-in check can be shown catching it.
func (h *Host) tamperSecret(w http.ResponseWriter, r *http.Request) {
	if !postOnly(w, r, "POST /admin/emulator/tamper-secret stores a wrong value as the secret's new version") {
		return
	}
	tt, ok := h.tenant.(secretTamperer)
	if !ok {
		http.Error(w, "not running on the emulated tenant: a real vault is not tampered with", http.StatusConflict)
		return
	}
	name := h.secretName(r)
	keyID, err := tt.TamperSecret(name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	h.logf("emulated tenant: secret %s now holds a wrong value (its tags still name keyId %s)", name, keyID)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"tampered": name, "keyId": keyID})
}

// admin is POST /admin/functions/<name>: run a non-HTTP function now. 202 like Core Tools; ?wait=true
// answers the handler's status and body instead.
func (h *Host) admin(w http.ResponseWriter, r *http.Request) {
	name := strings.Trim(strings.TrimPrefix(r.URL.Path, "/admin/functions/"), "/")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST /admin/functions/<name> runs a function", http.StatusMethodNotAllowed)
		return
	}
	var fn *Function
	for i := range h.fns {
		if strings.EqualFold(h.fns[i].Name, name) {
			fn = &h.fns[i]
		}
	}
	if fn == nil {
		http.Error(w, fmt.Sprintf("no function %q", name), http.StatusNotFound)
		return
	}
	if fn.Trigger != TriggerTimer {
		http.Error(w, fmt.Sprintf("%s is an HTTP function: call %s/api/%s", fn.Name, h.url, fn.Route), http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, hostproto.MaxBodyBytes+1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if b := bytes.TrimSpace(body); len(b) > 0 {
		var in map[string]json.RawMessage
		if len(body) > hostproto.MaxBodyBytes || json.Unmarshal(b, &in) != nil {
			http.Error(w, `the body must be empty or a JSON object such as {"input":""}`, http.StatusBadRequest)
			return
		}
	}
	t := h.timers[strings.ToLower(fn.Name)]
	if r.URL.Query().Get("wait") != "true" {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				select {
				case <-h.closing:
					cancel()
				case <-ctx.Done():
				}
			}()
			_, _, _, _ = h.invokeTimer(ctx, t, "admin", false)
		}()
		w.WriteHeader(http.StatusAccepted)
		return
	}
	status, header, respBody, err := h.invokeTimer(r.Context(), t, "admin", false)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if ct := header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(status)
	_, _ = w.Write(respBody)
}

// Invoke runs a timer function now, as the admin API does, and returns the handler's status and body.
func (h *Host) Invoke(ctx context.Context, name string) (int, []byte, error) {
	t := h.timers[strings.ToLower(name)]
	if t == nil {
		return 0, nil, fmt.Errorf("no timer function %q", name)
	}
	status, _, body, err := h.invokeTimer(ctx, t, "admin", false)
	return status, body, err
}

// invocationContext bounds an invocation by host.json's functionTimeout (plus the minute of grace the host
// gives its HttpClient).
func (h *Host) invocationContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if h.cfg.FunctionTimeout > 0 {
		return context.WithTimeout(ctx, h.cfg.FunctionTimeout+time.Minute)
	}
	return context.WithCancel(ctx)
}

// invokeTimer POSTs the host's timer invocation to /<name> and reports the outcome.
func (h *Host) invokeTimer(ctx context.Context, t *timer, trigger string, pastDue bool) (int, http.Header, []byte, error) {
	inv := Invocation{Function: t.fn.Name, ID: newGUID(), Trigger: trigger}
	start := time.Now()
	status, header, body, err := h.postTimer(ctx, t, inv.ID, pastDue)
	inv.Status, inv.Err, inv.Duration = status, err, time.Since(start)
	h.report(inv)
	if err == nil {
		h.printLogs(t.fn.Name, status, body)
	}
	return status, header, body, err
}

func (h *Host) postTimer(ctx context.Context, t *timer, id string, pastDue bool) (int, http.Header, []byte, error) {
	select {
	case <-h.done:
		return 0, nil, nil, errNotRunning
	default:
	}
	now := time.Now().UTC()
	payload := hostproto.TimerInvocation{
		Binding: t.fn.Binding,
		Timer:   hostproto.TimerInfo{Schedule: hostproto.Schedule{AdjustForDST: true}, IsPastDue: pastDue},
		Sys:     &hostproto.Sys{MethodName: t.fn.Name, UtcNow: now, RandGuid: newGUID()},
	}
	t.mu.Lock()
	if t.schedule != nil && t.fn.UseMonitor {
		payload.Timer.ScheduleStatus = &hostproto.ScheduleStatus{Last: t.status.last, Next: t.status.next, LastUpdated: t.status.updated}
	}
	t.mu.Unlock()

	ctx, cancel := h.invocationContext(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/"+t.fn.Name, io.NopCloser(bytes.NewReader(hostproto.EncodeTimer(payload))))
	if err != nil {
		return 0, nil, nil, err
	}
	req.ContentLength = -1 // unknown, so chunked: the host's ObjectContent has no length either
	req.Header.Set(hostproto.HeaderHostVersion, hostproto.HostVersion)
	req.Header.Set(hostproto.HeaderInvocationID, id)
	req.Header.Set("User-Agent", hostproto.UserAgentProduct+"/"+hostproto.HostVersion)
	req.Header.Set("traceparent", traceparent())
	req.Header.Set("Content-Type", hostproto.ContentType)
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, resp.Header, nil, fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// printLogs prints the Logs of a successful invocation as the host logs them; the host ignores the body of
// a failed one.
func (h *Host) printLogs(name string, status int, body []byte) {
	if status < 200 || status > 299 {
		return
	}
	var r struct{ Logs []string }
	if err := json.Unmarshal(body, &r); err != nil {
		h.logf("%s: the answer is not the invocation response JSON (the host fails such an invocation): %v", name, err)
		return
	}
	for _, l := range r.Logs {
		h.logf("%s: %s", name, l)
	}
}

// runTimer fires a timer on its schedule until ctx ends. Like the host's TimerListener it waits for a run
// to finish before it computes the next occurrence, so a run never overlaps the next.
func (h *Host) runTimer(ctx context.Context, t *timer) {
	defer h.wg.Done()
	for {
		now := time.Now().UTC()
		next := t.schedule.Next(now)
		if next.IsZero() {
			h.logf("%s: schedule %q has no next occurrence", t.fn.Name, t.schedule.String())
			return
		}
		t.mu.Lock()
		t.status.next = next
		t.mu.Unlock()
		wait := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-h.done:
			wait.Stop()
			return
		case <-wait.C:
		}
		pastDue := time.Since(next) > time.Minute // the machine slept through the occurrence
		_, _, _, _ = h.invokeTimer(ctx, t, "timer", pastDue)
		if ctx.Err() != nil {
			return
		}
		done := time.Now().UTC()
		t.mu.Lock()
		t.status = hostStatus{last: next, next: t.schedule.Next(done), updated: done}
		t.mu.Unlock()
	}
}
