package emulator

import (
	"crypto/tls"
	"crypto/x509"
	"maps"
	"net/http"
	"testing"
)

// TestIdentityEndpointAnswersAsAppService: a client id the app lacks is always App Service's 400 with its
// message, and SetIdentityFailure answers its status in App Service's JSON shape until it is turned off.
func TestIdentityEndpointAnswersAsAppService(t *testing.T) {
	h := start(t, Options{})
	ten := h.tenant
	const graph = "api-version=2019-08-01&resource=https://graph.microsoft.com"
	get := func(query string) reply {
		t.Helper()
		return h.call(http.MethodGet, ten.IdentityEndpoint()+"?"+query, "", nil, map[string]string{"X-IDENTITY-HEADER": ten.IdentityHeader()})
	}
	tests := []struct {
		name       string
		status     int    // SetIdentityFailure's status; 0 off
		message    string // SetIdentityFailure's message
		query      string
		wantStatus int
		wantMsg    string // "" for a token
	}{
		{name: "off: a token", query: graph, wantStatus: http.StatusOK},
		{name: "off: other client id", query: graph + "&client_id=" + NewGUID(), wantStatus: http.StatusBadRequest, wantMsg: msgNoSuchIdentity},
		{name: "off: other object id", query: graph + "&object_id=" + NewGUID(), wantStatus: http.StatusBadRequest, wantMsg: msgNoSuchIdentity},
		{name: "no identity", status: http.StatusBadRequest, message: msgNoSuchIdentity, query: graph, wantStatus: http.StatusBadRequest, wantMsg: msgNoSuchIdentity},
		{name: "own client id, no identity", status: http.StatusBadRequest, message: msgNoSuchIdentity, query: graph + "&client_id=" + ten.IdentityClientID(), wantStatus: http.StatusBadRequest, wantMsg: msgNoSuchIdentity},
		{name: "other client id while failing with 500", status: http.StatusInternalServerError, message: "boom", query: graph + "&client_id=" + NewGUID(), wantStatus: http.StatusBadRequest, wantMsg: msgNoSuchIdentity},
		{name: "500 with its message", status: http.StatusInternalServerError, message: "An unexpected error occured while fetching the AAD Token.", query: graph, wantStatus: http.StatusInternalServerError, wantMsg: "An unexpected error occured while fetching the AAD Token."},
		{name: "default message", status: http.StatusBadRequest, query: graph, wantStatus: http.StatusBadRequest, wantMsg: "Emulated managed identity failure."},
		{name: "off again", query: graph, wantStatus: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ten.SetIdentityFailure(tt.status, tt.message)
			r := get(tt.query)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			body := r.json(t)
			if tt.wantMsg == "" {
				if str(body, "access_token") == "" {
					t.Errorf("answer %s has no access_token", r.body)
				}
				return
			}
			if got := str(body, "message"); got != tt.wantMsg {
				t.Errorf("message = %q, want %q", got, tt.wantMsg)
			}
			if code, _ := body["statusCode"].(float64); int(code) != tt.wantStatus {
				t.Errorf("statusCode = %v, want %d", body["statusCode"], tt.wantStatus)
			}
			if str(body, "correlationId") == "" {
				t.Errorf("answer %s lacks App Service's correlationId", r.body)
			}
			if _, ok := body["access_token"]; ok {
				t.Errorf("a failed answer holds an access_token: %s", r.body)
			}
		})
	}
	t.Run("identity header still checked", func(t *testing.T) {
		ten.SetIdentityFailure(http.StatusBadRequest, msgNoSuchIdentity)
		t.Cleanup(func() { ten.SetIdentityFailure(0, "") })
		r := h.call(http.MethodGet, ten.IdentityEndpoint()+"?"+graph, "", nil, map[string]string{"X-IDENTITY-HEADER": "wrong"})
		if r.status != http.StatusUnauthorized {
			t.Errorf("status = %d, want 401: %s", r.status, r.body)
		}
	})
}

// TestARMAtTheUSGovernmentHost: ARM answers at management.usgovcloudapi.net with tokens for that
// audience, and refuses a token for the public cloud's ARM there (and the other way round).
func TestARMAtTheUSGovernmentHost(t *testing.T) {
	h := start(t, Options{})
	const site = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/scepman/providers/Microsoft.Web/sites/scepman"
	h.tenant.SetSite(site, http.StatusOK)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(h.tenant.CAPEM())
	conn := connect(t, h.tenant.ProxyURL(), ARMHostUSGov+":443")
	tc := tls.Client(conn.Conn, &tls.Config{ServerName: ARMHostUSGov, RootCAs: pool})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake with SNI %s: %v", ARMHostUSGov, err)
	}
	tc.Close()

	gov, public := h.token(AudienceARMUSGov), h.token(AudienceARM)
	if aud := jwtClaims(t, gov)["aud"]; aud != AudienceARMUSGov {
		t.Errorf("aud of the US Government token = %v, want %s", aud, AudienceARMUSGov)
	}
	refresh := site + "/config/configreferences/appsettings/refresh?api-version=2022-03-01"
	tests := []struct {
		name, host, token string
		want              int
	}{
		{"US Government host, its token", ARMHostUSGov, gov, http.StatusOK},
		{"US Government host, public token", ARMHostUSGov, public, http.StatusUnauthorized},
		{"public host, US Government token", ARMHost, gov, http.StatusUnauthorized},
		{"public host, its token", ARMHost, public, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.tenant.ResetStats()
			r := h.call(http.MethodPost, "https://"+tt.host+refresh, tt.token, nil, nil)
			if r.status != tt.want {
				t.Fatalf("POST https://%s…/refresh: %d, want %d: %s", tt.host, r.status, tt.want, r.body)
			}
			ops := h.tenant.Stats().Op(OpRefreshConfigReferences)
			if ops.Requests != 1 {
				t.Errorf("%s requests = %d, want 1", OpRefreshConfigReferences, ops.Requests)
			}
		})
	}
	if got, want := h.tenant.ARMRequestsByHost(), map[string]int{ARMHost: 2, ARMHostUSGov: 2}; !maps.Equal(got, want) {
		t.Errorf("ARMRequestsByHost = %v, want %v", got, want)
	}
}
