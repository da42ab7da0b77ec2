package emulator

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// identityAPIVersion is the App Service managed identity protocol the endpoint serves.
const identityAPIVersion = "2019-08-01"

// serveFront is the handler of the front listener: CONNECT proxy and managed identity endpoint.
func (t *Tenant) serveFront(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		t.serveConnect(w, r)
		return
	}
	t.serve(w, r, ServiceIdentity)
}

// serveConnect tunnels a CONNECT to one of the emulated hosts to the TLS listener.
func (t *Tenant) serveConnect(w http.ResponseWriter, r *http.Request) {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil || port != "443" || !tunnelable(host) {
		t.noteUnknown("CONNECT %s: the proxy tunnels only to the emulated Azure hosts on port 443", r.Host)
		http.Error(w, "emulator proxy: CONNECT to "+r.Host+" refused: not an emulated Azure host", http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "emulator proxy: cannot hijack the connection", http.StatusInternalServerError)
		return
	}
	upstream, err := net.DialTimeout("tcp", t.tlsLn.Addr().String(), 10*time.Second)
	if err != nil {
		http.Error(w, "emulator proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	client, brw, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	if !t.track(client, upstream) {
		return
	}
	defer t.untrack(client, upstream)
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(upstream, brw.Reader) // what the client sent after CONNECT may already be buffered
		done <- struct{}{}
	}()
	go func() {
		io.Copy(client, upstream)
		done <- struct{}{}
	}()
	<-done
	client.Close()
	upstream.Close()
	<-done
}

// track registers tunnel connections so that Close ends them; false (and both closed) when closing.
func (t *Tenant) track(conns ...net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		t.tunnels[c] = struct{}{}
	}
	return true
}

func (t *Tenant) untrack(conns ...net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range conns {
		c.Close()
		delete(t.tunnels, c)
	}
}

// identityRoute maps a request of the front listener to the token operation.
func (t *Tenant) identityRoute(req *request) (route, bool) {
	if req.method != http.MethodGet || len(req.segs) != 2 || req.segs[0] != "msi" || req.segs[1] != "token" {
		return route{}, false
	}
	return route{op: OpIdentityToken, handle: t.issueIdentityToken}, true
}

// identityAuth checks the protocol version and X-IDENTITY-HEADER as App Service does.
func (t *Tenant) identityAuth(req *request) *answer {
	if v := req.query.Get("api-version"); v != identityAPIVersion {
		t.noteUnknown("%s: managed identity api-version %q (the emulator serves %s)", req.target(), v, identityAPIVersion)
		ans := t.errorAnswer(req, http.StatusBadRequest, "", "The api-version '"+v+"' is not supported; use "+identityAPIVersion+".")
		return &ans
	}
	t.mu.Lock()
	t.stats.APIVersions[ServiceIdentity+" "+identityAPIVersion]++
	t.mu.Unlock()
	switch h := req.header.Get("X-IDENTITY-HEADER"); {
	case h == "":
		ans := t.errorAnswer(req, http.StatusBadRequest, "", "The X-IDENTITY-HEADER header is missing.")
		return &ans
	case h != t.identityHeader:
		ans := t.errorAnswer(req, http.StatusUnauthorized, "", "The X-IDENTITY-HEADER header is invalid.")
		return &ans
	}
	return nil
}

// msgNoSuchIdentity is App Service's answer (400) to a token request for a user-assigned identity that
// is not attached to the app: a client_id (or object id, principal id, resource id) it does not know.
const msgNoSuchIdentity = "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId."

// cloudState is what the tenant knows about the managed identity endpoint and ARM beyond the defaults.
type cloudState struct {
	identityFailure identityFailure // SetIdentityFailure
	armHosts        map[string]int  // ARM requests by host name (ARMRequestsByHost)
}

// identityFailure is what SetIdentityFailure set: status 0 is off.
type identityFailure struct {
	status  int
	message string
}

// SetIdentityFailure makes the managed identity endpoint answer every token request with status and App
// Service's JSON error shape {"statusCode": status, "message": message, "correlationId": "<guid>"}, as
// App Service does when the app has no managed identity enabled (e.g. 400 and "No User Assigned or
// Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId."). A request without
// the right X-IDENTITY-HEADER is still refused for that, and one that names a user-assigned identity the
// app lacks still gets App Service's 400 for it. An empty message is "Emulated managed identity
// failure.". Status 0 turns it off (the default).
func (t *Tenant) SetIdentityFailure(status int, message string) {
	if message == "" {
		message = "Emulated managed identity failure."
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cloud.identityFailure = identityFailure{status: status, message: message}
}

// issueIdentityToken answers a token request. Runs under t.mu.
func (t *Tenant) issueIdentityToken(req *request) answer {
	q := req.query
	// A user-assigned identity the app does not have: App Service answers 400 with this message, whichever
	// of the four parameters named it, also while SetIdentityFailure is on.
	for _, p := range []struct{ name, want string }{
		{"client_id", t.identityClientID},
		{"object_id", t.identityObjectID},
		{"principal_id", t.identityObjectID},
		{"mi_res_id", "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/emulated/providers/Microsoft.ManagedIdentity/userAssignedIdentities/appreg-function"},
	} {
		if v := q.Get(p.name); v != "" && !strings.EqualFold(v, p.want) {
			return t.errorAnswer(req, http.StatusBadRequest, "", msgNoSuchIdentity)
		}
	}
	if f := t.cloud.identityFailure; f.status != 0 {
		return t.errorAnswer(req, f.status, "", f.message)
	}
	resource := q.Get("resource")
	aud, ok := canonicalResource(resource)
	if !ok {
		return t.errorAnswer(req, http.StatusBadRequest, "", "AADSTS500011: The resource principal named "+resource+
			" was not found in the tenant named "+t.tenantID+".")
	}
	now := time.Now()
	exp := now.Add(tokenLifetime)
	c := claims{
		Aud: aud, Iss: issuer(t.tenantID), Tid: t.tenantID, Oid: t.identityObjectID, Sub: t.identityObjectID,
		AppID: t.identityClientID, Idtyp: "app", Iat: now.Unix(), Nbf: now.Unix(), Exp: exp.Unix(), Ver: "1.0",
	}
	switch aud {
	case AudienceGraph:
		c.Roles = append([]string(nil), t.graphRoles...)
	case AudienceTokenExchange:
		// The assertion of a federated identity credential: a v2.0 token of the identity's own tenant.
		c.Iss, c.Ver = FederatedIssuer(t.tenantID), "2.0"
	}
	tok := signToken(c)
	t.issue(tok)
	return jsonAnswer(http.StatusOK, map[string]any{
		"access_token": tok,
		"expires_on":   strconv.FormatInt(exp.Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    t.identityClientID,
	}, "application/json; charset=utf-8")
}
