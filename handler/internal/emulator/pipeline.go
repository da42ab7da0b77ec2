package emulator

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds request bodies (decoded).
const maxBody = 4 << 20

// request is one request to a fake, from the wire or from inside a $batch.
type request struct {
	ctx       context.Context
	service   string
	op        string
	method    string
	host      string
	path      string   // escaped path (for Graph: relative to /v1.0)
	fullPath  string   // escaped path as received
	segs      []string // unescaped path segments
	query     url.Values
	header    http.Header
	rawBody   []byte
	body      []byte // decoded
	claims    *claims
	batched   bool
	applied   bool // set by a handler that changed the state
	requestID string
}

// answer is what a fake answers.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// route is an operation a request maps to.
type route struct {
	op    string
	write bool
	// handle computes the answer; it runs under Tenant.mu unless unlocked is set.
	handle   func(*request) answer
	unlocked bool
}

// newRequest reads r into a request for service.
func newRequest(r *http.Request, service string) (*request, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		q = r.URL.Query() // keep what parses; handlers see the rest as absent
	}
	return &request{
		ctx:       r.Context(),
		service:   service,
		method:    r.Method,
		host:      r.Host,
		path:      r.URL.EscapedPath(),
		fullPath:  r.URL.EscapedPath(),
		segs:      splitPath(r.URL.EscapedPath()),
		query:     q,
		header:    r.Header,
		rawBody:   raw,
		requestID: NewGUID(),
	}, nil
}

// splitPath splits an escaped path into unescaped segments; a trailing slash yields a last "".
func splitPath(escaped string) []string {
	escaped = strings.TrimPrefix(escaped, "/")
	if escaped == "" {
		return nil
	}
	parts := strings.Split(escaped, "/")
	for i, p := range parts {
		if u, err := url.PathUnescape(p); err == nil {
			parts[i] = u
		}
	}
	return parts
}

// target describes a request for logs and Unknown.
func (r *request) target() string {
	scheme := "https://"
	if r.service == ServiceIdentity {
		scheme = "http://"
	}
	s := r.method + " " + scheme + r.host + r.fullPath
	if r.batched {
		s = r.method + " $batch:" + r.path
	}
	if len(r.query) > 0 {
		s += "?" + r.query.Encode()
	}
	return s
}

// errBodyEncoding is a body that does not decode as its Content-Encoding says.
var errBodyEncoding = errors.New("body does not decode as its Content-Encoding says")

// errUnsupportedEncoding is a Content-Encoding the fakes do not accept.
var errUnsupportedEncoding = errors.New("unsupported Content-Encoding")

// decodeBody decodes the raw body per Content-Encoding.
func (r *request) decodeBody() error {
	enc := strings.ToLower(strings.TrimSpace(r.header.Get("Content-Encoding")))
	if len(r.rawBody) > maxBody {
		return fmt.Errorf("request body larger than %d bytes", maxBody)
	}
	switch enc {
	case "", "identity":
		r.body = r.rawBody
		return nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(r.rawBody))
		if err != nil {
			return fmt.Errorf("%w: %v", errBodyEncoding, err)
		}
		b, err := io.ReadAll(io.LimitReader(zr, maxBody+1))
		if err != nil {
			return fmt.Errorf("%w: %v", errBodyEncoding, err)
		}
		if len(b) > maxBody {
			return fmt.Errorf("request body larger than %d bytes", maxBody)
		}
		r.body = b
		return nil
	}
	return fmt.Errorf("%w %q", errUnsupportedEncoding, enc)
}

// serviceOf maps a TLS host name to its service; "" for a host the tenant does not serve.
func (t *Tenant) serviceOf(host string) string {
	switch host {
	case GraphHost:
		return ServiceGraph
	case t.vaultHost:
		return ServiceKeyVault
	case ARMHost, ARMHostUSGov:
		return ServiceARM
	case LoginHost:
		return ServiceLogin
	}
	return ""
}

// tunnelable tells whether the proxy tunnels CONNECTs to host.
func tunnelable(host string) bool {
	host = strings.ToLower(host)
	switch host {
	case GraphHost, ARMHost, ARMHostUSGov, LoginHost:
		return true
	}
	return strings.HasSuffix(host, VaultSuffix) && len(host) > len(VaultSuffix)
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// serveTLS is the handler of the TLS listener: it routes by Host.
func (t *Tenant) serveTLS(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(hostOnly(r.Host))
	service := t.serviceOf(host)
	if service == "" {
		t.noteUnknown("%s https://%s%s: host not served by the emulated tenant", r.Method, r.Host, r.URL.RequestURI())
		writeAnswer(w, jsonAnswer(http.StatusNotFound, map[string]any{"error": map[string]any{
			"code": "UnknownHost", "message": "The emulated tenant does not serve host " + host + ".",
		}}, "application/json; charset=utf-8"))
		return
	}
	t.serve(w, r, service)
}

// serve runs a request through latency, routing, authentication, faults and the handler.
func (t *Tenant) serve(w http.ResponseWriter, r *http.Request, service string) {
	t.mu.Lock()
	latency := t.latency
	t.stats.service(service, func(s *ServiceStats) { s.Requests++ })
	t.mu.Unlock()
	if err := t.sleep(r.Context(), latency); err != nil {
		return
	}
	req, err := newRequest(r, service)
	if err != nil {
		return // the client went away while sending
	}
	rt, ok := t.routeFor(req)
	if !ok {
		ans := t.unknownRoute(req)
		t.finish(req, ans)
		writeAnswer(w, ans)
		return
	}
	req.op = rt.op
	t.mu.Lock()
	t.stats.op(rt.op, func(o *OpStats) { o.Requests++ })
	t.mu.Unlock()
	if ans := t.authenticate(req); ans != nil {
		t.finish(req, *ans)
		writeAnswer(w, *ans)
		return
	}
	if tenantScoped(service) {
		t.mu.Lock()
		if d := t.requestTenant(req); d != nil {
			t.stats.ByTenant[d.id]++
		}
		t.mu.Unlock()
	}
	if err := req.decodeBody(); err != nil {
		ans := t.bodyError(req, err)
		t.finish(req, ans)
		writeAnswer(w, ans)
		return
	}
	ans := t.execute(req, rt)
	t.finish(req, ans)
	writeAnswer(w, ans)
}

// bodyError answers a body that does not decode.
func (t *Tenant) bodyError(req *request, err error) answer {
	t.logf("emulator: rejecting %s: %v", req.target(), err)
	if errors.Is(err, errUnsupportedEncoding) {
		return t.errorAnswer(req, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "The Content-Encoding of the request is not supported.")
	}
	code := "BadRequest"
	if req.service == ServiceKeyVault {
		code = "BadParameter"
	}
	return t.errorAnswer(req, http.StatusBadRequest, code, "The request body could not be decoded: "+err.Error()+".")
}

// execute answers for a tenant that is down (SetTenantDown), applies faults before and after the
// handler, and runs the handler in the request's directory. A drop or hang fault does not return.
func (t *Tenant) execute(req *request, rt route) answer {
	t.mu.Lock()
	d := t.requestTenant(req)
	tenant := ""
	if d != nil {
		tenant = d.id
	}
	if d != nil && d.down && tenantScoped(req.service) {
		t.mu.Unlock()
		t.logf("emulator: tenant %s is down: 503 for %s", tenant, rt.op)
		return t.faultAnswer(req, Fault{Status: 503})
	}
	f, ok := t.takeFault(req.service, rt.op, tenant, false)
	t.mu.Unlock()
	if ok && f.Kind == FaultHook {
		f.Hook(t)
	} else if ok {
		return t.fire(req, f)
	}
	var ans answer
	if rt.unlocked {
		ans = rt.handle(req)
	} else {
		func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			defer t.enter(t.requestTenant(req))()
			if rt.write {
				t.stats.service(req.service, func(s *ServiceStats) { s.Writes++ })
				t.stats.op(rt.op, func(o *OpStats) { o.Writes++ })
			}
			ans = rt.handle(req)
			if req.applied {
				t.stats.service(req.service, func(s *ServiceStats) { s.Applied++ })
				t.stats.op(rt.op, func(o *OpStats) { o.Applied++ })
			}
		}()
	}
	t.mu.Lock()
	f, ok = t.takeFault(req.service, rt.op, tenant, true)
	t.mu.Unlock()
	if ok && f.Kind == FaultHook {
		f.Hook(t)
	} else if ok {
		return t.fire(req, f)
	}
	return ans
}

// fire carries out a fault: a status fault returns its answer; drop and hang abort the connection.
func (t *Tenant) fire(req *request, f Fault) answer {
	switch f.Kind {
	case FaultDrop, FaultHang:
		t.mu.Lock()
		t.stats.answered(req.service, req.op, statusDroppedWithoutAnswer)
		t.mu.Unlock()
		if f.Kind == FaultHang {
			select {
			case <-req.ctx.Done():
			case <-t.closing:
			}
		}
		panic(http.ErrAbortHandler) // closes the connection without an answer
	}
	return t.faultAnswer(req, f)
}

// finish records the final answer of a request.
func (t *Tenant) finish(req *request, ans answer) {
	op := req.op
	if op == "" {
		op = req.service + opUnknownSuffix
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stats.answered(req.service, op, ans.status)
}

// routeFor maps a request to its operation.
func (t *Tenant) routeFor(req *request) (route, bool) {
	switch req.service {
	case ServiceGraph:
		return t.graphRoute(req)
	case ServiceKeyVault:
		return t.vaultRoute(req)
	case ServiceARM:
		return t.armRoute(req)
	case ServiceIdentity:
		return t.identityRoute(req)
	case ServiceLogin:
		return t.loginRoute(req)
	}
	return route{}, false
}

// authenticate checks a request's credentials; a non-nil answer rejects it.
func (t *Tenant) authenticate(req *request) *answer {
	switch req.service {
	case ServiceGraph:
		return t.graphAuth(req)
	case ServiceKeyVault:
		return t.vaultAuth(req)
	case ServiceARM:
		return t.armAuth(req)
	case ServiceIdentity:
		return t.identityAuth(req)
	case ServiceLogin:
		return nil // no bearer token: clients authenticate in the token request itself (login.go)
	}
	return nil
}

// unknownRoute records and answers a request that hits no route.
func (t *Tenant) unknownRoute(req *request) answer {
	req.op = req.service + opUnknownSuffix
	t.mu.Lock()
	t.stats.op(req.op, func(o *OpStats) { o.Requests++ })
	t.mu.Unlock()
	t.noteUnknown("%s: no such route in the emulated %s", req.target(), req.service)
	switch req.service {
	case ServiceGraph:
		seg := ""
		if len(req.segs) > 0 {
			seg = req.segs[len(req.segs)-1]
		}
		return t.errorAnswer(req, http.StatusBadRequest, "BadRequest",
			fmt.Sprintf("Resource not found for the segment '%s'.", seg))
	case ServiceKeyVault:
		return t.errorAnswer(req, http.StatusNotFound, "NotFound", "The requested resource or operation does not exist: "+req.method+" "+req.path)
	case ServiceARM:
		return t.errorAnswer(req, http.StatusNotFound, "NoRegisteredProviderFound", "No registered resource provider found for "+req.method+" "+req.path+".")
	case ServiceLogin:
		return jsonAnswer(http.StatusNotFound, map[string]any{
			"statusCode": http.StatusNotFound, "message": "Not found: " + req.method + " " + req.path, "correlationId": req.requestID,
		}, "application/json; charset=utf-8")
	}
	return t.errorAnswer(req, http.StatusNotFound, "NotFound", "Not found: "+req.method+" "+req.path)
}

// errorAnswer builds the service's error answer.
func (t *Tenant) errorAnswer(req *request, status int, code, message string) answer {
	switch req.service {
	case ServiceGraph:
		return graphError(req, status, code, message)
	case ServiceKeyVault, ServiceARM:
		return jsonAnswer(status, map[string]any{"error": map[string]any{"code": code, "message": message}},
			"application/json; charset=utf-8")
	case ServiceLogin:
		return loginError(req, status, code, 0, message)
	}
	return jsonAnswer(status, map[string]any{
		"statusCode": status, "message": message, "correlationId": req.requestID,
	}, "application/json; charset=utf-8")
}

// jsonAnswer marshals v as an answer with a Content-Type.
func jsonAnswer(status int, v any, contentType string) answer {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("emulator: marshalling an answer: %v", err)) // answers are plain maps
	}
	h := http.Header{}
	h.Set("Content-Type", contentType)
	return answer{status: status, header: h, body: b}
}

// emptyAnswer is an answer without a body.
func emptyAnswer(status int) answer { return answer{status: status, header: http.Header{}} }

// writeAnswer writes ans to w.
func writeAnswer(w http.ResponseWriter, ans answer) {
	h := w.Header()
	for k, v := range ans.header {
		h[k] = v
	}
	if len(ans.body) > 0 || ans.status != http.StatusNoContent {
		h.Set("Content-Length", strconv.Itoa(len(ans.body)))
	}
	w.WriteHeader(ans.status)
	w.Write(ans.body)
}

// parseObject parses a JSON object body; every key is returned as raw JSON.
func parseObject(body []byte) (map[string]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, errors.New("the request body is empty")
	}
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, errors.New("the request body is null")
	}
	if dec.More() {
		return nil, errors.New("data after the JSON object")
	}
	return obj, nil
}

// isAnnotation tells whether a JSON key is an OData instance annotation kiota sends (@odata.type).
func isAnnotation(key string) bool { return strings.HasPrefix(key, "@odata.") }

// isNull tells whether raw JSON is null.
func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// jsonTime formats a time for Graph (RFC 3339, UTC); nil for the zero time.
func jsonTime(tm time.Time) any {
	if tm.IsZero() {
		return nil
	}
	return tm.UTC().Format(time.RFC3339)
}

// nullable returns nil for "".
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nonNil returns an empty slice for nil, so that JSON says [] and not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
