package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// maxBatchRequests is Graph's limit of requests in one JSON batch.
const maxBatchRequests = 20

// batchItem is one request of a JSON batch.
type batchItem struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Body      json.RawMessage   `json:"body"`
	DependsOn []string          `json:"dependsOn"`
}

// graphBatch serves POST /$batch: every request is routed, authorized, faulted and counted on its own,
// in order, with the caller's token. It runs without t.mu.
func (t *Tenant) graphBatch(req *request) answer {
	obj, bad := parseJSONBody(req)
	if bad != nil {
		return *bad
	}
	var items []batchItem
	for k, raw := range obj {
		if k != "requests" {
			t.noteUnknown("%s: batch property %q is not supported", req.target(), k)
			return badRequest(req, codeODataBadRequest, "Invalid batch payload format: unexpected property '"+k+"'.")
		}
		var rawItems []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &rawItems); err != nil {
			return badRequest(req, codeODataBadRequest, "Invalid batch payload format.")
		}
		for _, ri := range rawItems {
			for ik := range ri {
				if !slices.Contains([]string{"id", "method", "url", "headers", "body", "dependsOn"}, ik) {
					t.noteUnknown("%s: batch request property %q is not supported", req.target(), ik)
					return badRequest(req, codeODataBadRequest, "Invalid batch payload format: unexpected property '"+ik+"'.")
				}
			}
			b, _ := json.Marshal(ri)
			var it batchItem
			if err := json.Unmarshal(b, &it); err != nil {
				return badRequest(req, codeODataBadRequest, "Invalid batch payload format: "+err.Error())
			}
			items = append(items, it)
		}
	}
	switch {
	case len(items) == 0:
		return badRequest(req, codeODataBadRequest, "Invalid batch payload format: no requests.")
	case len(items) > maxBatchRequests:
		return badRequest(req, codeODataBadRequest, fmt.Sprintf("The number of requests in a batch is limited to %d.", maxBatchRequests))
	}
	seen := map[string]bool{}
	for _, it := range items {
		if it.ID == "" || it.Method == "" || it.URL == "" {
			return badRequest(req, codeODataBadRequest, "Invalid batch payload format: every request needs id, method and url.")
		}
		if seen[it.ID] {
			return badRequest(req, codeODataBadRequest, "Invalid batch payload format: duplicate request id '"+it.ID+"'.")
		}
		for _, d := range it.DependsOn {
			if !seen[d] {
				return badRequest(req, codeODataBadRequest, "Invalid batch payload format: request '"+it.ID+"' depends on unknown or later request '"+d+"'.")
			}
		}
		seen[it.ID] = true
	}

	statuses := map[string]int{}
	responses := make([]map[string]any, 0, len(items))
	for _, it := range items {
		inner := t.batchRequest(req, it)
		var ans answer
		failedDep := slices.ContainsFunc(it.DependsOn, func(d string) bool { return statuses[d] >= 400 })
		switch {
		case failedDep:
			inner.op = OpBatchFailedDependency
			t.mu.Lock()
			t.stats.op(inner.op, func(o *OpStats) { o.Requests++ })
			t.mu.Unlock()
			ans = graphError(inner, http.StatusFailedDependency, "FailedDependency", "A request this request depends on failed.")
		default:
			ans = t.runBatched(inner, it)
		}
		statuses[it.ID] = ans.status
		t.finish(inner, ans)
		responses = append(responses, batchResponse(it.ID, ans))
	}
	return graphJSON(req, http.StatusOK, map[string]any{"responses": responses})
}

// batchRequest turns a batch item into a request.
func (t *Tenant) batchRequest(outer *request, it batchItem) *request {
	h := http.Header{}
	for k, v := range it.Headers {
		h.Set(k, v)
	}
	if h.Get("client-request-id") == "" {
		h.Set("client-request-id", clientRequestID(outer))
	}
	r := &request{
		ctx:       outer.ctx,
		service:   ServiceGraph,
		method:    strings.ToUpper(it.Method),
		host:      outer.host,
		header:    h,
		claims:    outer.claims,
		batched:   true,
		requestID: NewGUID(),
		query:     url.Values{},
	}
	if len(it.Body) > 0 && !isNull(it.Body) {
		r.body = it.Body
		r.rawBody = it.Body
	}
	u := strings.TrimPrefix(it.URL, GraphRoot)
	if strings.HasPrefix(strings.ToLower(u), "https://") {
		r.path = u // absolute URL elsewhere: routed as unknown
		return r
	}
	if !strings.HasPrefix(u, "/") {
		u = "/" + u
	}
	parsed, err := url.Parse(u)
	if err != nil {
		r.path = u
		return r
	}
	r.path = parsed.EscapedPath()
	r.segs = splitPath(r.path)
	if q, err := url.ParseQuery(parsed.RawQuery); err == nil {
		r.query = q
	}
	return r
}

// runBatched routes and executes one batched request.
func (t *Tenant) runBatched(inner *request, it batchItem) answer {
	rt, ok := t.routeFor(inner)
	if !ok {
		return t.unknownRoute(inner)
	}
	inner.op = rt.op
	t.mu.Lock()
	t.stats.op(rt.op, func(o *OpStats) { o.Requests++ })
	t.mu.Unlock()
	if len(inner.body) > 0 && inner.header.Get("Content-Type") == "" {
		return badRequest(inner, codeODataBadRequest, "Content-Type header must be specified for a batch request with a body.")
	}
	return t.execute(inner, rt)
}

// batchResponse is the entry of one answer in the batch response.
func batchResponse(id string, ans answer) map[string]any {
	headers := map[string]string{}
	for k := range ans.header {
		if k == "Content-Length" {
			continue
		}
		headers[k] = ans.header.Get(k)
	}
	out := map[string]any{"id": id, "status": ans.status, "headers": headers}
	if len(ans.body) > 0 {
		out["body"] = json.RawMessage(ans.body)
	}
	return out
}
