package emulator

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestProxyTunnelsToEmulatedHosts(t *testing.T) {
	h := start(t, Options{})
	proxy, err := url.Parse(h.tenant.ProxyURL())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(h.tenant.CAPEM()) {
		t.Fatal("CAPEM holds no certificate")
	}
	// A client configured as a child process would be: proxy + trust, real URLs.
	client := &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(proxy),
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}}
	t.Cleanup(client.CloseIdleConnections)

	tok := h.graphToken()
	r := doCall(t, client, http.MethodGet, GraphRoot+"/servicePrincipals(appId='"+GraphAppID+"')?$select=id,appRoles", tok, nil, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET through the proxy: status %d, want 200: %s", r.status, r.body)
	}
	if got := r.json(t); got["id"] == nil || got["appRoles"] == nil || got["displayName"] != nil {
		t.Errorf("$select=id,appRoles answered %v", got)
	}

	vtok := h.token(AudienceVault)
	if r := doCall(t, client, http.MethodGet, h.tenant.VaultURL()+"secrets?api-version=7.4", vtok, nil, nil); r.status != http.StatusOK {
		t.Errorf("vault through the proxy: status %d, want 200: %s", r.status, r.body)
	}
}

func TestProxyTLSPresentsTheEmulatedNames(t *testing.T) {
	h := start(t, Options{})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(h.tenant.CAPEM())
	for _, host := range []string{GraphHost, "appreg-emulated.vault.azure.net", ARMHost, LoginHost} {
		t.Run(host, func(t *testing.T) {
			conn := connect(t, h.tenant.ProxyURL(), host+":443")
			if !strings.HasPrefix(conn.status, "HTTP/1.1 200") {
				t.Fatalf("CONNECT %s: %q, want 200", host, conn.status)
			}
			tc := tls.Client(conn.Conn, &tls.Config{ServerName: host, RootCAs: pool})
			defer tc.Close()
			if err := tc.Handshake(); err != nil {
				t.Fatalf("TLS handshake with SNI %s: %v", host, err)
			}
		})
	}
}

func TestProxyRefusesOtherHosts(t *testing.T) {
	h := start(t, Options{})
	h.unknownOK.Store(true)
	for _, target := range []string{"example.com:443", "graph.microsoft.com:80", "evil.vault.azure.net.example:443"} {
		t.Run(target, func(t *testing.T) {
			conn := connect(t, h.tenant.ProxyURL(), target)
			conn.Close()
			if !strings.HasPrefix(conn.status, "HTTP/1.1 502") {
				t.Errorf("CONNECT %s: %q, want 502", target, conn.status)
			}
		})
	}
	if got := len(h.tenant.Unknown()); got != 3 {
		t.Errorf("Unknown() has %d entries, want 3: %q", got, h.tenant.Unknown())
	}
}

type connectedConn struct {
	net.Conn
	status string
}

// connect sends CONNECT target to the proxy and reads the status line.
func connect(t *testing.T, proxyURL, target string) connectedConn {
	t.Helper()
	u, _ := url.Parse(proxyURL)
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("dialing the proxy: %v", err)
	}
	if _, err := c.Write([]byte("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n")); err != nil {
		t.Fatalf("writing CONNECT: %v", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("reading the CONNECT answer: %v", err)
	}
	if resp.StatusCode == http.StatusOK && br.Buffered() > 0 {
		t.Fatalf("proxy sent %d bytes after its answer", br.Buffered())
	}
	return connectedConn{Conn: c, status: resp.Proto + " " + resp.Status}
}

func TestIdentityEndpoint(t *testing.T) {
	h := start(t, Options{})
	h.unknownOK.Store(true) // the wrong api-version is recorded
	ten := h.tenant
	tests := []struct {
		name       string
		query      string
		header     string
		wantStatus int
	}{
		{"graph", "api-version=2019-08-01&resource=https://graph.microsoft.com", ten.IdentityHeader(), 200},
		{"graph with slash", "api-version=2019-08-01&resource=https://graph.microsoft.com/", ten.IdentityHeader(), 200},
		{"vault", "api-version=2019-08-01&resource=https://vault.azure.net", ten.IdentityHeader(), 200},
		{"arm", "api-version=2019-08-01&resource=https://management.azure.com/", ten.IdentityHeader(), 200},
		{"own client id", "api-version=2019-08-01&resource=https://graph.microsoft.com&client_id=" + ten.IdentityClientID(), ten.IdentityHeader(), 200},
		{"missing header", "api-version=2019-08-01&resource=https://graph.microsoft.com", "", 400},
		{"wrong header", "api-version=2019-08-01&resource=https://graph.microsoft.com", "nope", 401},
		{"unknown resource", "api-version=2019-08-01&resource=https://storage.azure.com", ten.IdentityHeader(), 400},
		{"no resource", "api-version=2019-08-01", ten.IdentityHeader(), 400},
		{"other client id", "api-version=2019-08-01&resource=https://graph.microsoft.com&client_id=" + NewGUID(), ten.IdentityHeader(), 400},
		{"old protocol", "api-version=2017-09-01&resource=https://graph.microsoft.com", ten.IdentityHeader(), 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.header != "" {
				hdr["X-IDENTITY-HEADER"] = tc.header
			}
			r := h.call(http.MethodGet, ten.IdentityEndpoint()+"?"+tc.query, "", nil, hdr)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tc.wantStatus, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if r.status != 200 {
				return
			}
			body := r.json(t)
			exp, err := strconv.ParseInt(str(body, "expires_on"), 10, 64)
			if err != nil || time.Until(time.Unix(exp, 0)) < 50*time.Minute {
				t.Errorf("expires_on %v: want unix seconds about an hour ahead (%v)", body["expires_on"], err)
			}
			if str(body, "token_type") != "Bearer" || str(body, "client_id") != ten.IdentityClientID() || str(body, "resource") == "" {
				t.Errorf("answer %v lacks token_type/client_id/resource", body)
			}
			tok := str(body, "access_token")
			if !slices.Contains(ten.IssuedSecrets(), tok) {
				t.Error("the token is not in IssuedSecrets")
			}
			c := jwtClaims(t, tok)
			if c["tid"] != ten.TenantID() || c["oid"] != ten.IdentityObjectID() || c["appid"] != ten.IdentityClientID() {
				t.Errorf("claims %v: want tid, oid, appid of the identity", c)
			}
			roles, _ := c["roles"].([]any)
			if strings.Contains(tc.query, "graph") && len(roles) != 3 {
				t.Errorf("graph token roles %v, want the three default roles", roles)
			}
			if !strings.Contains(tc.query, "graph") && len(roles) != 0 {
				t.Errorf("non-graph token roles %v, want none", roles)
			}
		})
	}
	if len(ten.Unknown()) != 1 {
		t.Errorf("Unknown() = %q, want only the old protocol", ten.Unknown())
	}
}

func TestIssuedSecretsHoldTheIdentityHeader(t *testing.T) {
	h := start(t, Options{})
	if !slices.Contains(h.tenant.IssuedSecrets(), h.tenant.IdentityHeader()) {
		t.Error("IssuedSecrets lacks the identity header")
	}
	env := h.tenant.Env("/tmp/ca.pem")
	want := map[string]string{
		"HTTPS_PROXY": h.tenant.ProxyURL(), "SSL_CERT_FILE": "/tmp/ca.pem", "IDENTITY_ENDPOINT": h.tenant.IdentityEndpoint(),
		"IDENTITY_HEADER": h.tenant.IdentityHeader(), "APPREG_KEY_VAULT_URL": "https://appreg-emulated.vault.azure.net/",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("Env()[%s] = %q, want %q", k, env[k], v)
		}
	}
}

func TestUnknownRoutesAreRecorded(t *testing.T) {
	h := start(t, Options{})
	h.unknownOK.Store(true)
	gtok, vtok := h.graphToken(), h.token(AudienceVault)
	tests := []struct {
		name       string
		method     string
		url        string
		token      string
		wantStatus int
	}{
		{"graph me", http.MethodGet, GraphRoot + "/me", gtok, 400},
		{"graph beta", http.MethodGet, "https://graph.microsoft.com/beta/applications", gtok, 400},
		{"graph delete app", http.MethodDelete, GraphRoot + "/applications/" + NewGUID(), gtok, 400},
		{"graph filter", http.MethodGet, GraphRoot + "/servicePrincipals(appId='" + GraphAppID + "')?$expand=owners", gtok, 400},
		{"vault purge", http.MethodDelete, h.tenant.VaultURL() + "deletedsecrets/x?api-version=7.4", vtok, 404},
		{"vault keys", http.MethodGet, h.tenant.VaultURL() + "keys?api-version=7.4", vtok, 404},
		{"other vault", http.MethodGet, "https://someone-else.vault.azure.net/secrets?api-version=7.4", vtok, 404},
		{"login path", http.MethodGet, "https://" + LoginHost + "/nope", "", 404},
		{"front path", http.MethodGet, h.tenant.ProxyURL() + "/metadata/identity/oauth2/token", "", 404},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call(tc.method, tc.url, tc.token, nil, nil)
			if r.status != tc.wantStatus {
				t.Errorf("status %d, want %d: %s", r.status, tc.wantStatus, r.body)
			}
			if r.errorCode(t) == "" && str(r.json(t), "message") == "" {
				t.Errorf("answer has no error code or message: %s", r.body)
			}
			if got := len(h.tenant.Unknown()); got != i+1 {
				t.Errorf("Unknown() has %d entries, want %d", got, i+1)
			}
		})
	}
}
