package emulator

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestGraphBatch(t *testing.T) {
	h := start(t, Options{})
	tok := h.graphToken()
	h.tenant.AddFault(Fault{Operation: OpGetServicePrincipal, Status: 429, RetryAfter: 3})

	r := h.graph(http.MethodPost, "/$batch", tok, gzipped(t, fixture(t, "batch.json")), map[string]string{"Content-Encoding": "gzip"})
	if r.status != 200 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	statuses := map[string]int{}
	var retryAfter string
	for _, v := range r.json(t)["responses"].([]any) {
		item := v.(map[string]any)
		statuses[str(item, "id")] = int(item["status"].(float64))
		if headers, _ := item["headers"].(map[string]any); str(item, "id") == "2" {
			retryAfter = str(headers, "Retry-After")
		}
		if item["status"].(float64) >= 400 {
			body, _ := item["body"].(map[string]any)
			if e, _ := body["error"].(map[string]any); str(e, "code") == "" {
				t.Errorf("item %s: error body %v lacks a code", item["id"], item["body"])
			}
		}
	}
	want := map[string]int{"1": 201, "2": 429, "3": 404, "4": 424}
	for id, s := range want {
		if statuses[id] != s {
			t.Errorf("item %s: status %d, want %d", id, statuses[id], s)
		}
	}
	if retryAfter != "3" {
		t.Errorf("throttled item Retry-After %q, want 3", retryAfter)
	}
	if h.tenant.Snapshot().Application("batched") == nil {
		t.Error("the batched upsert did not create the application")
	}
	st := h.tenant.Stats()
	if st.Service(ServiceGraph).Requests != 1 || st.Op(OpBatch).Requests != 1 || st.Op(OpUpsertApplication).Applied != 1 {
		t.Errorf("stats: graph %+v, batch %+v, upsert %+v", st.Service(ServiceGraph), st.Op(OpBatch), st.Op(OpUpsertApplication))
	}
}

func TestGraphBatchLimits(t *testing.T) {
	h := start(t, Options{})
	h.unknownOK.Store(true)
	tok := h.graphToken()
	items := make([]string, 21)
	for i := range items {
		items[i] = fmt.Sprintf(`{"id":"%d","method":"GET","url":"/servicePrincipals(appId='%s')"}`, i, GraphAppID)
	}
	tests := []struct {
		name       string
		body       string
		wantStatus int
	}{
		{"21 requests", `{"requests":[` + strings.Join(items, ",") + `]}`, 400},
		{"20 requests", `{"requests":[` + strings.Join(items[:20], ",") + `]}`, 200},
		{"no requests", `{"requests":[]}`, 400},
		{"duplicate ids", `{"requests":[` + items[0] + `,` + items[0] + `]}`, 400},
		{"unknown dependency", `{"requests":[{"id":"1","method":"GET","url":"/me","dependsOn":["9"]}]}`, 400},
		{"body without Content-Type", `{"requests":[{"id":"1","method":"PATCH","url":"/applications(uniqueName='x')","body":{"displayName":"x"}}]}`, 200},
		{"unknown inner route", `{"requests":[{"id":"1","method":"GET","url":"/me"}]}`, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.graph(http.MethodPost, "/$batch", tok, []byte(tc.body), nil)
			if r.status != tc.wantStatus {
				t.Errorf("status %d, want %d: %s", r.status, tc.wantStatus, r.body)
			}
		})
	}
	if u := h.tenant.Unknown(); len(u) != 1 || !strings.Contains(u[0], "$batch:/me") {
		t.Errorf("Unknown() = %q, want the inner /me", u)
	}
}

func TestARMRefresh(t *testing.T) {
	const site = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Web/sites/scepman"
	h := start(t, Options{})
	h.tenant.SetSite(site, 200)
	h.tenant.SetSite(site+"/slots/staging", 500)
	tok := h.token(AudienceARM)
	tests := []struct {
		name       string
		path       string
		token      string
		wantStatus int
	}{
		{"site", site, tok, 200},
		{"site, other case", strings.ToLower(site), tok, 200},
		{"slot failing", site + "/slots/staging", tok, 500},
		{"unknown site", "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Web/sites/other", tok, 404},
		{"no token", site, "", 401},
		{"graph token", site, h.graphToken(), 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call(http.MethodPost, "https://"+ARMHost+tc.path+"/config/configreferences/appsettings/refresh?api-version=2022-03-01", tc.token, nil, nil)
			if r.status != tc.wantStatus {
				t.Errorf("status %d, want %d: %s", r.status, tc.wantStatus, r.body)
			}
			if r.status >= 400 && r.errorCode(t) == "" {
				t.Errorf("error without code: %s", r.body)
			}
		})
	}
	st := h.tenant.Stats()
	if st.SiteRefreshes[site] != 2 || st.SiteRefreshes[site+"/slots/staging"] != 1 || st.Op(OpRefreshConfigReferences).Requests != 6 {
		t.Errorf("SiteRefreshes %v, refresh op %+v", st.SiteRefreshes, st.Op(OpRefreshConfigReferences))
	}
}
