package emulator

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// freshClient is a client whose every request uses a new connection, so that Go's transport does not
// silently retry a dropped idempotent request on a reused one.
func freshClient(h *harness) *http.Client {
	tr := h.tenant.transport.Clone()
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr}
}

func TestStatusFaults(t *testing.T) {
	tests := []struct {
		name           string
		fault          Fault
		wantStatus     int
		wantCode       string
		wantRetryAfter string
	}{
		{"429 with Retry-After", Fault{Service: ServiceGraph, Operation: OpGetServicePrincipal, Status: 429, RetryAfter: 2}, 429, "TooManyRequests", "2"},
		{"503 any graph operation", Fault{Service: ServiceGraph, Status: 503}, 503, "ServiceUnavailable", "0"},
		{"500 with a code", Fault{Operation: OpGetServicePrincipal, Status: 500, Code: "generalException"}, 500, "generalException", ""},
		{"default status", Fault{Operation: OpGetServicePrincipal}, 503, "ServiceUnavailable", "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{})
			tok := h.graphToken()
			h.tenant.AddFault(tc.fault)
			path := "/servicePrincipals(appId='" + GraphAppID + "')"
			r := h.graph(http.MethodGet, path, tok, nil, nil)
			if r.status != tc.wantStatus || r.errorCode(t) != tc.wantCode || r.header.Get("Retry-After") != tc.wantRetryAfter {
				t.Errorf("status %d code %q Retry-After %q, want %d %q %q", r.status, r.errorCode(t), r.header.Get("Retry-After"),
					tc.wantStatus, tc.wantCode, tc.wantRetryAfter)
			}
			assertODataError(t, r)
			if r := h.graph(http.MethodGet, path, tok, nil, nil); r.status != 200 {
				t.Errorf("after the fault fired once: %d, want 200", r.status)
			}
			if st := h.tenant.Stats(); st.FaultsFired != 1 || len(h.tenant.PendingFaults()) != 0 {
				t.Errorf("FaultsFired %d, pending %v, want 1 and none", st.FaultsFired, h.tenant.PendingFaults())
			}
		})
	}
}

func TestKeyVaultThrottling(t *testing.T) {
	h := start(t, Options{})
	tok := h.token(AudienceVault)
	h.tenant.AddFault(Fault{Service: ServiceKeyVault, Operation: OpSetSecret, Status: 429, RetryAfter: 1, Times: 2})
	for i, want := range []int{429, 429, 200} {
		r := h.vault(http.MethodPut, "/secrets/s", tok, []byte(`{"value":"v"}`))
		if r.status != want {
			t.Fatalf("attempt %d: %d, want %d: %s", i+1, r.status, want, r.body)
		}
		if want == 429 && (r.errorCode(t) != "Throttled" || r.header.Get("Retry-After") != "1") {
			t.Errorf("attempt %d: code %q Retry-After %q, want Throttled 1", i+1, r.errorCode(t), r.header.Get("Retry-After"))
		}
	}
	st := h.tenant.Stats().Op(OpSetSecret)
	if st.Requests != 3 || st.Writes != 1 || st.Applied != 1 || st.Statuses[429] != 2 {
		t.Errorf("setSecret stats %+v, want 3 requests, 1 write, 1 applied, two 429", st)
	}
}

func TestFaultAfterApply(t *testing.T) {
	h := start(t, Options{})
	tok := h.graphToken()
	h.tenant.AddFault(Fault{Operation: OpUpsertApplication, Status: 503, After: true})
	if r := h.upsertApp(tok, "scepman"); r.status != 503 {
		t.Fatalf("upsert: %d, want 503", r.status)
	}
	if h.tenant.Snapshot().Application("scepman") == nil {
		t.Fatal("the write was not applied before its answer was replaced")
	}
	if r := h.upsertApp(tok, "scepman"); r.status != 204 {
		t.Errorf("retry: %d, want 204 (the application exists)", r.status)
	}
}

func TestDropAndHangFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault Fault
	}{
		{"drop before", Fault{Operation: OpAddPassword, Kind: FaultDrop}},
		{"drop after", Fault{Operation: OpAddPassword, Kind: FaultDrop, After: true}},
		{"hang before", Fault{Operation: OpAddPassword, Kind: FaultHang}},
		{"hang after", Fault{Operation: OpAddPassword, Kind: FaultHang, After: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{})
			tok := h.graphToken()
			id := str(h.upsertApp(tok, "scepman").json(t), "id")
			h.tenant.AddFault(tc.fault)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, GraphRoot+"/applications/"+id+"/addPassword", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := freshClient(h).Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Fatalf("got an answer %d %s, want none", resp.StatusCode, b)
			}
			if tc.fault.Kind == FaultHang && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v, want the client's deadline", err)
			}
			applied := len(h.tenant.Snapshot().Application("scepman").PasswordCredentials) == 1
			if applied != tc.fault.After {
				t.Errorf("credential applied = %v, want %v", applied, tc.fault.After)
			}
			if got := h.tenant.Stats().Op(OpAddPassword).Statuses[499]; got != 1 {
				t.Errorf("addPassword answers recorded as dropped: %d, want 1", got)
			}
		})
	}
}

func TestFaultTimesAndProbability(t *testing.T) {
	h := start(t, Options{Seed: 42})
	tok := h.graphToken()
	path := "/servicePrincipals(appId='" + GraphAppID + "')"
	count := func(n int) int {
		failed := 0
		for range n {
			if h.graph(http.MethodGet, path, tok, nil, nil).status != 200 {
				failed++
			}
		}
		return failed
	}
	h.tenant.AddFault(Fault{Operation: OpGetServicePrincipal, Times: 3})
	if got := count(5); got != 3 {
		t.Errorf("Times 3: %d failures in 5, want 3", got)
	}
	h.tenant.AddFault(Fault{Operation: OpGetServicePrincipal, Times: Always})
	if got := count(5); got != 5 {
		t.Errorf("Always: %d failures in 5, want 5", got)
	}
	h.tenant.ClearFaults()
	if got := count(2); got != 0 {
		t.Errorf("after ClearFaults: %d failures, want 0", got)
	}
	h.tenant.AddFault(Fault{Operation: OpGetServicePrincipal, Status: 429, Probability: 0.5})
	if got := count(40); got == 0 || got == 40 {
		t.Errorf("probability 0.5: %d failures in 40, want some but not all", got)
	}
	if len(h.tenant.PendingFaults()) != 1 {
		t.Errorf("a probabilistic fault without Times should stay pending")
	}
}

func TestFaultsOnTheIdentityEndpoint(t *testing.T) {
	h := start(t, Options{})
	h.tenant.AddFault(Fault{Service: ServiceIdentity, Status: 500})
	r := h.call(http.MethodGet, h.tenant.IdentityEndpoint()+"?api-version=2019-08-01&resource=https://vault.azure.net", "", nil,
		map[string]string{"X-IDENTITY-HEADER": h.tenant.IdentityHeader()})
	if r.status != 500 {
		t.Errorf("token with a fault: %d, want 500", r.status)
	}
	h.token(AudienceVault) // then it works
	if st := h.tenant.Stats().Service(ServiceIdentity); st.Requests != 2 || st.Errors != 1 {
		t.Errorf("identity stats %+v, want 2 requests, 1 error", st)
	}
}

func TestLatency(t *testing.T) {
	h := start(t, Options{})
	tok := h.graphToken()
	h.tenant.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, GraphRoot+"/servicePrincipals(appId='"+GraphAppID+"')", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := h.client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d despite an hour of latency", resp.StatusCode)
	}
	h.tenant.SetLatency(0)
	if r := h.graph(http.MethodGet, "/servicePrincipals(appId='"+GraphAppID+"')", tok, nil, nil); r.status != 200 {
		t.Errorf("without latency: %d", r.status)
	}
}

func TestFaultSkip(t *testing.T) {
	h := start(t, Options{})
	tok := h.graphToken()
	h.tenant.AddFault(Fault{Service: ServiceGraph, Operation: OpGetServicePrincipal, Status: 503, Skip: 2})
	path := "/servicePrincipals(appId='" + GraphAppID + "')"
	for i, want := range []int{200, 200, 503, 200} {
		if r := h.graph(http.MethodGet, path, tok, nil, nil); r.status != want {
			t.Errorf("request %d: %d, want %d", i+1, r.status, want)
		}
	}
	if st := h.tenant.Stats(); st.FaultsFired != 1 {
		t.Errorf("FaultsFired %d, want 1", st.FaultsFired)
	}
}
