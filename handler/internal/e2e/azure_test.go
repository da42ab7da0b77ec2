package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

// noSuchIdentity is App Service's answer (400) to a token request for a user-assigned identity that is
// not attached to the app.
const noSuchIdentity = "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId."

// graphOrVaultRequests counts the requests that reached Graph and Key Vault since the last ResetStats.
func (a *app) graphOrVaultRequests() int {
	st := a.tenant.Stats()
	return st.Service(emulator.ServiceGraph).Requests + st.Service(emulator.ServiceKeyVault).Requests
}

// TestIdentityWrongClientID: AZURE_CLIENT_ID names a user-assigned identity the function app does not
// have. provision fails fast with 502 ManagedIdentityFailed, naming the managed identity and carrying the
// endpoint's own message, and nothing is written.
func TestIdentityWrongClientID(t *testing.T) {
	t.Parallel()
	wrong := emulator.NewGUID()
	a := start(t, setup{
		opts: emulator.Options{IdentityClientID: emulator.NewGUID()},
		env:  func(env map[string]string) { env["AZURE_CLIENT_ID"] = wrong },
	})
	a.tenant.ResetStats()
	var e apiError
	began := time.Now()
	status := a.call(http.MethodPost, "/api/provision", "", &e)
	took := time.Since(began)
	t.Logf("provision with a wrong AZURE_CLIENT_ID answered %d in %s: %s", status, took.Round(time.Millisecond), e.Error.Message)
	if status != http.StatusBadGateway || e.Error.Code != "ManagedIdentityFailed" {
		t.Fatalf("provision = %d %+v, want 502 ManagedIdentityFailed", status, e.Error)
	}
	for _, want := range []string{"managed identity", noSuchIdentity, "AZURE_CLIENT_ID"} {
		if !strings.Contains(e.Error.Message, want) {
			t.Errorf("message %q does not say %q", e.Error.Message, want)
		}
	}
	if n := a.writes(); n != 0 {
		t.Errorf("%d writes reached Graph and Key Vault, want 0", n)
	}
	if n := a.tenant.Stats().Service(emulator.ServiceGraph).Requests; n != 0 {
		t.Errorf("%d requests reached Graph without a token, want 0", n)
	}
	if a.tenant.Snapshot().Application("scepman") != nil {
		t.Error("an application was created")
	}
}

// TestIdentityEndpointDown: IDENTITY_ENDPOINT names a loopback port nobody listens on. The rotate timer
// fails after azidentity's own retries (seconds, not the engine's minutes), with a message naming the
// managed identity endpoint, and nothing is written.
func TestIdentityEndpointDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/msi/token"
	ln.Close()
	a := start(t, setup{env: func(env map[string]string) { env["IDENTITY_ENDPOINT"] = closed }})
	a.tenant.ResetStats()
	began := time.Now()
	status, r := a.invoke("rotate")
	took := time.Since(began)
	msg := ""
	if r.Error != nil {
		msg = r.Error.Code + ": " + r.Error.Message
	}
	t.Logf("rotate with the identity endpoint down answered %d in %s: %s", status, took.Round(time.Millisecond), msg)
	if status != http.StatusInternalServerError || r.Error == nil {
		t.Fatalf("rotate = %d %+v, want a failed run (500, as the contract says) with an error", status, r)
	}
	if r.Error.Code != "ManagedIdentityFailed" {
		t.Errorf("error code %q, want ManagedIdentityFailed", r.Error.Code)
	}
	for _, want := range []string{"managed identity endpoint", "could not be reached", "IDENTITY_ENDPOINT"} {
		if !strings.Contains(r.Error.Message, want) {
			t.Errorf("message %q does not say %q", r.Error.Message, want)
		}
	}
	if n := a.writes(); n != 0 {
		t.Errorf("%d writes reached Graph and Key Vault, want 0", n)
	}
	if n := a.tenant.Stats().Service(emulator.ServiceIdentity).Requests; n != 0 {
		t.Errorf("the tenant's own identity endpoint got %d requests, want 0", n)
	}
}

// TestARMEndpointNationalCloud: with APPREG_ARM_ENDPOINT set to Azure Government's ARM, the refresh after
// a renewal reaches ARM under that host (and not the public cloud's).
func TestARMEndpointNationalCloud(t *testing.T) {
	t.Parallel()
	const site = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/scepman/providers/Microsoft.Web/sites/scepman"
	a, p := provisioned(t, setup{
		settings: map[string]string{
			"APPREG_ARM_ENDPOINT":     "https://" + emulator.ARMHostUSGov,
			"APPREG_REFRESH_SITE_IDS": site,
		},
		before: func(tn *emulator.Tenant) { tn.SetSite(site, http.StatusOK) },
	})
	a.tenant.Mutate(func(s *emulator.State) { setExpiry(s, p.AppID, time.Now().Add(20*24*time.Hour)) })
	a.tenant.ResetStats()
	status, r := a.invoke("rotate")
	var renewed rotateResult
	if err := json.Unmarshal(r.ReturnValue, &renewed); err != nil || status != http.StatusOK || !renewed.Renewed {
		t.Fatalf("rotate inside the renewal window: %d %s, want 200 and a renewal", status, r.ReturnValue)
	}
	if len(renewed.Refresh) != 1 || renewed.Refresh[0].Status != http.StatusOK || renewed.Refresh[0].Error != "" {
		t.Errorf("refresh reported %+v, want the site's 200", renewed.Refresh)
	}
	if n := a.tenant.Stats().Op(emulator.OpRefreshConfigReferences).Requests; n != 1 {
		t.Errorf("%s requests = %d, want 1", emulator.OpRefreshConfigReferences, n)
	}
	if hosts := a.tenant.ARMRequestsByHost(); hosts[emulator.ARMHostUSGov] != 1 || hosts[emulator.ARMHost] != 0 {
		t.Errorf("ARM requests by host = %v, want one to %s and none to %s", hosts, emulator.ARMHostUSGov, emulator.ARMHost)
	}
	checkConverged(t, a.tenant)
}

// TestTimerPayloadShapes: every JSON object runs the timer function, whatever it holds or lacks (the
// contract's "Timer payloads"), and what it lacked is logged as a warning; a body that is not a JSON
// object is 400. The requests go to the handler directly, as only the host can.
func TestTimerPayloadShapes(t *testing.T) {
	t.Parallel()
	a, _ := provisioned(t, setup{})
	const sys = `"Metadata":{"sys":{"MethodName":"rotate","UtcNow":"2024-10-05T03:30:00","RandGuid":"0d00378b-6426-4af1-9fc0-0793f4ce3745"}}`
	tests := []struct {
		name   string
		body   string
		status int
		warns  string // a phrase of the logged payload warnings; "" for none
	}{
		{"the host's payload", timerBody, http.StatusOK, ""},
		{"binding as a JSON string", `{"Data":{"timer":"{\"Schedule\":{\"AdjustForDST\":true},\"ScheduleStatus\":null,\"IsPastDue\":false}"},` + sys + `}`, http.StatusOK, ""},
		{"binding absent", `{"Data":{},` + sys + `}`, http.StatusOK, "Data.timer: missing"},
		{"ScheduleStatus null, IsPastDue true, no Metadata", `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":true}}}`, http.StatusOK, ""},
		{"Metadata without sys", `{"Data":{"timer":{"Schedule":{},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{}}`, http.StatusOK, ""},
		{"members of unexpected types", `{"Data":{"timer":{"Schedule":"daily","ScheduleStatus":{"Last":"yesterday","Next":1,"LastUpdated":null},"IsPastDue":"no"}},"Metadata":{"sys":7}}`, http.StatusOK, "Data.timer.IsPastDue"},
		{"an empty object", `{}`, http.StatusOK, "Data: missing"},
		{"an array", `[{}]`, http.StatusBadRequest, ""},
		{"a string", `"{}"`, http.StatusBadRequest, ""},
		{"malformed", `{"Data":`, http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		a.tenant.ResetStats()
		status, b, err := send(http.MethodPost, a.host.HandlerURL()+"/rotate", "application/json", []byte(tt.body), false)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if status != tt.status {
			t.Errorf("%s: status %d, want %d: %s", tt.name, status, tt.status, b)
			continue
		}
		if status == http.StatusBadRequest {
			var e apiError
			if json.Unmarshal(b, &e) != nil || e.Error.Code != "InvalidInvocation" || !strings.Contains(e.Error.Message, "JSON") {
				t.Errorf("%s: answer %s, want 400 InvalidInvocation about the JSON", tt.name, b)
			}
			if n := a.graphOrVaultRequests(); n != 0 {
				t.Errorf("%s: %d requests reached Graph and Key Vault, want 0", tt.name, n)
			}
			continue
		}
		var r invocationResponse
		var res struct {
			Renewed *bool `json:"renewed"`
		}
		if json.Unmarshal(b, &r) != nil || json.Unmarshal(r.ReturnValue, &res) != nil || res.Renewed == nil || *res.Renewed {
			t.Errorf("%s: answer %s, want the rotate result of a run that kept the secret", tt.name, b)
		}
		if n := a.writes(); n != 0 {
			t.Errorf("%s: %d writes, want 0 (the secret is fresh)", tt.name, n)
		}
		if tt.warns != "" && a.waitLog(func(l map[string]any) bool {
			ws, _ := l["warnings"].([]any)
			for _, w := range ws {
				if s, _ := w.(string); strings.Contains(s, tt.warns) {
					return l["level"] == "WARN"
				}
			}
			return false
		}) == nil {
			t.Errorf("%s: no WARN log line with a payload warning saying %q", tt.name, tt.warns)
		}
	}
}
