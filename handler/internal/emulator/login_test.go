package emulator

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// signInFixture is a tenant with applications that sign in (or fail to).
type signInFixture struct {
	appID, spID       string // SCEPman: enabled, consented to Directory.Read.All and scep_challenge_provider
	secret, expired   string // its current and its expired secret
	noSPAppID, noSP   string // an application without a service principal, and its secret
	otherAPI, otherID string // a resource with identifierUri api://other-api and no assignment; its SP id
}

// newSignInFixture puts the fixture into h's tenant.
func newSignInFixture(t *testing.T, h *harness) signInFixture {
	t.Helper()
	fx := signInFixture{
		appID: NewGUID(), spID: NewGUID(), secret: newSecretText(), expired: newSecretText(),
		noSPAppID: NewGUID(), noSP: newSecretText(), otherAPI: NewGUID(), otherID: NewGUID(),
	}
	now := time.Now()
	h.tenant.Mutate(func(s *State) {
		graph, intune := s.ServicePrincipalByAppID(GraphAppID), s.ServicePrincipalByAppID(IntuneAPIAppID)
		s.Applications = append(s.Applications,
			Application{AppID: fx.appID, DisplayName: "SCEPman", UniqueName: "scepman", PasswordCredentials: []PasswordCredential{
				{SecretText: fx.secret, StartDateTime: now.Add(-time.Hour), EndDateTime: now.Add(90 * 24 * time.Hour)},
				{SecretText: fx.expired, StartDateTime: now.Add(-48 * time.Hour), EndDateTime: now.Add(-time.Hour)},
			}},
			Application{AppID: fx.noSPAppID, DisplayName: "no SP", PasswordCredentials: []PasswordCredential{
				{SecretText: fx.noSP, EndDateTime: now.Add(24 * time.Hour)},
			}},
			Application{AppID: fx.otherAPI, DisplayName: "Other API", IdentifierURIs: []string{"api://other-api"}},
		)
		s.ServicePrincipals = append(s.ServicePrincipals,
			ServicePrincipal{ID: fx.spID, AppID: fx.appID, DisplayName: "SCEPman", ServicePrincipalType: "Application", AccountEnabled: true},
			ServicePrincipal{ID: fx.otherID, AppID: fx.otherAPI, DisplayName: "Other API", ServicePrincipalType: "Application", AccountEnabled: true,
				AppRoles: []AppRole{{ID: NewGUID(), Value: "Other.Read", AllowedMemberTypes: []string{"Application"}, IsEnabled: true}}},
		)
		s.AppRoleAssignments = append(s.AppRoleAssignments,
			AppRoleAssignment{AppRoleID: "7ab1d382-f21e-4acd-a863-ba3e13f7da61", PrincipalID: fx.spID, ResourceID: graph.ID},
			AppRoleAssignment{AppRoleID: "7ab1d382-f21e-4acd-a863-ba3e13f7da61", PrincipalID: fx.spID, ResourceID: graph.ID}, // a duplicate
			AppRoleAssignment{AppRoleID: IntuneSCEPChallengeRoleID, PrincipalID: fx.spID, ResourceID: intune.ID},
		)
	})
	return fx
}

// tokenURL is the token endpoint of a tenant.
func tokenURL(tenant string) string {
	return "https://" + LoginHost + "/" + tenant + "/oauth2/v2.0/token"
}

// postForm posts a form-encoded body.
func (h *harness) postForm(rawURL string, form url.Values) reply {
	h.t.Helper()
	return h.call(http.MethodPost, rawURL, "", []byte(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
}

// clientCredentials is the form azidentity sends for a client secret (MSAL adds its three scopes).
func clientCredentials(clientID, secret, resource string) url.Values {
	return url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
		"scope": {resource + "/.default openid offline_access profile"}, "claims": {`{"access_token":{"xms_cc":{"values":["CP1"]}}}`},
	}
}

// checkEntraError checks an answer of the token service against Entra's error body.
func checkEntraError(t *testing.T, r reply, status int, code string, aadsts int, text string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d: %s", r.status, status, r.body)
	}
	body := r.json(t)
	if got := str(body, "error"); got != code {
		t.Errorf("error = %q, want %q", got, code)
	}
	codes, _ := body["error_codes"].([]any)
	if len(codes) != 1 || codes[0] != float64(aadsts) {
		t.Errorf("error_codes = %v, want [%d]", body["error_codes"], aadsts)
	}
	desc := str(body, "error_description")
	if want := fmt.Sprintf("AADSTS%d: %s", aadsts, text); !strings.HasPrefix(desc, want) {
		t.Errorf("error_description = %q, want it to start with %q", desc, want)
	}
	for _, k := range []string{"timestamp", "trace_id", "correlation_id", "error_uri"} {
		if str(body, k) == "" {
			t.Errorf("answer lacks %s: %s", k, r.body)
		}
	}
	if !strings.Contains(desc, "\r\nTrace ID: "+str(body, "trace_id")) {
		t.Errorf("error_description lacks the trace line: %q", desc)
	}
}

func TestLoginTokenRefusals(t *testing.T) {
	h := start(t, Options{})
	fx := newSignInFixture(t, h)
	tid := h.tenant.TenantID()
	deletedApp := NewGUID()
	h.tenant.Mutate(func(s *State) {
		s.Applications = append(s.Applications, Application{AppID: deletedApp, UniqueName: "gone", DisplayName: "gone",
			PasswordCredentials: []PasswordCredential{{SecretText: newSecretText()}}})
		s.ServicePrincipals = append(s.ServicePrincipals, ServicePrincipal{AppID: deletedApp, AccountEnabled: true})
	})
	h.tenant.SoftDeleteApplication("gone")
	with := func(f url.Values, k, v string) url.Values {
		c := url.Values{}
		for key, vals := range f {
			c[key] = slices.Clone(vals)
		}
		if v == "" {
			c.Del(k)
		} else {
			c.Set(k, v)
		}
		return c
	}
	good := clientCredentials(fx.appID, fx.secret, GraphAppID)
	tests := []struct {
		name    string
		tenant  string
		form    url.Values
		disable bool // the SCEPman service principal disabled for this case
		unknown bool // the request is recorded in Unknown
		status  int
		code    string
		aadsts  int
		text    string
	}{
		{name: "wrong secret", form: with(good, "client_secret", newSecretText()), status: 401, code: "invalid_client", aadsts: 7000215,
			text: "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" + fx.appID + "'."},
		{name: "the key id as secret", form: with(good, "client_secret", NewGUID()), status: 401, code: "invalid_client", aadsts: 7000215, text: "Invalid client secret provided."},
		{name: "expired secret", form: with(good, "client_secret", fx.expired), status: 401, code: "invalid_client", aadsts: 7000222,
			text: "The provided client secret keys for app '" + fx.appID + "' are expired. Visit the Azure portal to create new keys for your app"},
		{name: "unknown application", form: with(good, "client_id", NewGUID()), status: 400, code: "unauthorized_client", aadsts: 700016, text: "Application with identifier '"},
		{name: "deleted application", form: with(good, "client_id", deletedApp), status: 400, code: "unauthorized_client", aadsts: 700016,
			text: "Application with identifier '" + deletedApp + "' was not found in the directory '" + tid + "'. This can happen if the application has not been installed"},
		{name: "disabled application", form: good, disable: true, status: 400, code: "unauthorized_client", aadsts: 7000112,
			text: "Application '" + fx.appID + "'(SCEPman) is disabled."},
		{name: "no service principal", form: clientCredentials(fx.noSPAppID, fx.noSP, GraphAppID), status: 401, code: "invalid_client", aadsts: 7000229,
			text: "The client application " + fx.noSPAppID + " is missing service principal in the tenant " + tid + "."},
		{name: "unknown resource", form: clientCredentials(fx.appID, fx.secret, "api://nobody"), status: 400, code: "invalid_resource", aadsts: 500011,
			text: "The resource principal named api://nobody was not found in the tenant named " + tid + "."},
		{name: "scope without .default", form: with(good, "scope", "https://graph.microsoft.com/User.Read.All"), status: 400, code: "invalid_scope", aadsts: 1002012,
			text: "The provided value for scope https://graph.microsoft.com/User.Read.All is not valid. Client credential flows must have a scope value with /.default suffixed"},
		{name: "only MSAL's scopes", form: with(good, "scope", "openid profile offline_access"), status: 400, code: "invalid_scope", aadsts: 1002012, text: "The provided value for scope"},
		{name: "two resources", form: with(good, "scope", GraphAppID+"/.default "+IntuneAPIAppID+"/.default"), status: 400, code: "invalid_scope", aadsts: 70011,
			text: "The provided value for the input parameter 'scope' is not valid."},
		{name: "no grant_type", form: with(good, "grant_type", ""), status: 400, code: "invalid_request", aadsts: 900144,
			text: "The request body must contain the following parameter: 'grant_type'."},
		{name: "other grant", form: with(good, "grant_type", "password"), unknown: true, status: 400, code: "unsupported_grant_type", aadsts: 70003,
			text: "The app requested an unsupported grant type 'password'."},
		{name: "no client_id", form: with(good, "client_id", ""), status: 400, code: "invalid_request", aadsts: 900144,
			text: "The request body must contain the following parameter: 'client_id'."},
		{name: "no scope", form: with(good, "scope", ""), status: 400, code: "invalid_request", aadsts: 900144,
			text: "The request body must contain the following parameter: 'scope'."},
		{name: "no secret", form: with(good, "client_secret", ""), status: 401, code: "invalid_client", aadsts: 7000218,
			text: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."},
		{name: "unknown tenant", tenant: NewGUID(), form: good, status: 400, code: "invalid_tenant", aadsts: 90002, text: "Tenant '"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.disable {
				if err := h.tenant.SetServicePrincipalEnabled(fx.appID, false); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { h.tenant.SetServicePrincipalEnabled(fx.appID, true) })
			}
			before := len(h.tenant.Unknown())
			r := h.postForm(tokenURL(cmpOr(tt.tenant, tid)), tt.form)
			checkEntraError(t, r, tt.status, tt.code, tt.aadsts, tt.text)
			for _, s := range []string{fx.secret, fx.expired, fx.noSP, tt.form.Get("client_secret")} {
				if s != "" && strings.Contains(string(r.body), s) {
					t.Errorf("answer carries a client secret")
				}
			}
			if got := len(h.tenant.Unknown()) - before; (got > 0) != tt.unknown {
				t.Errorf("recorded %d unknown requests, want any: %v", got, tt.unknown)
			}
			if tt.unknown {
				h.unknownOK.Store(true)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		r := h.call(http.MethodGet, tokenURL(tid), "", nil, nil)
		checkEntraError(t, r, 400, "invalid_request", 900561, "The endpoint only accepts POST, OPTIONS requests. Received a GET request.")
	})
	t.Run("malformed client_assertion", func(t *testing.T) {
		f := with(with(good, "client_secret", ""), "client_assertion", "eyJ.x.y")
		f.Set("client_assertion_type", ClientAssertionTypeJWTBearer)
		r := h.postForm(tokenURL(tid), f)
		checkEntraError(t, r, 400, "invalid_request", 50027, "JWT token is invalid or malformed.")
	})
	if n := h.tenant.Stats().Op(OpLoginToken).Requests; n != len(tests)+2 {
		t.Errorf("OpLoginToken requests = %d, want %d", n, len(tests)+2)
	}
}

func TestLoginTokenClaims(t *testing.T) {
	h := start(t, Options{})
	fx := newSignInFixture(t, h)
	tid := h.tenant.TenantID()
	tests := []struct {
		name      string
		resource  string
		wantAud   string
		wantRoles []string
	}{
		{"graph by appId", GraphAppID, GraphAppID, []string{"Directory.Read.All"}},
		{"graph by URI", AudienceGraph, AudienceGraph, []string{"Directory.Read.All"}},
		{"graph by URI with slash", AudienceGraph + "/", AudienceGraph + "/", []string{"Directory.Read.All"}},
		{"intune by appId", IntuneAPIAppID, IntuneAPIAppID, []string{"scep_challenge_provider"}},
		{"intune by URI", AudienceIntuneAPI, AudienceIntuneAPI, []string{"scep_challenge_provider"}},
		{"intune by URI without slash", "https://api.manage.microsoft.com", "https://api.manage.microsoft.com", []string{"scep_challenge_provider"}},
		{"no assignment: no roles", "api://other-api", "api://other-api", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.postForm(tokenURL(tid), clientCredentials(fx.appID, fx.secret, tt.resource))
			if r.status != http.StatusOK {
				t.Fatalf("status = %d, want 200: %s", r.status, r.body)
			}
			body := r.json(t)
			if str(body, "token_type") != "Bearer" || body["expires_in"] != float64(3599) || body["ext_expires_in"] != float64(3599) {
				t.Errorf("answer = %s, want token_type Bearer, expires_in and ext_expires_in 3599", r.body)
			}
			if got := r.header.Get("Cache-Control"); got != "no-store, no-cache" {
				t.Errorf("Cache-Control = %q", got)
			}
			tok := str(body, "access_token")
			c := jwtClaims(t, tok)
			want := map[string]string{
				"aud": tt.wantAud, "iss": "https://sts.windows.net/" + tid + "/", "tid": tid, "appid": fx.appID,
				"oid": fx.spID, "sub": fx.spID, "idtyp": "app", "ver": "1.0", "appidacr": "1",
			}
			for k, v := range want {
				if got := str(c, k); got != v {
					t.Errorf("claim %s = %q, want %q", k, got, v)
				}
			}
			var roles []string
			raw, has := c["roles"].([]any)
			for _, r := range raw {
				roles = append(roles, r.(string))
			}
			if !slices.Equal(roles, tt.wantRoles) || has != (tt.wantRoles != nil) {
				t.Errorf("roles = %v (present %v), want %v", c["roles"], has, tt.wantRoles)
			}
			if !slices.Contains(h.tenant.IssuedSecrets(), tok) {
				t.Errorf("the access token is not in IssuedSecrets")
			}
		})
	}
	t.Run("the emulated Graph accepts a Graph token", func(t *testing.T) {
		r := h.postForm(tokenURL(tid), clientCredentials(fx.appID, fx.secret, AudienceGraph))
		c, err := verifyToken(str(r.json(t), "access_token"), tid, AudienceGraph, time.Now())
		if err != nil {
			t.Fatalf("verifyToken: %v", err)
		}
		if c.Oid != fx.spID || !c.hasRole("Directory.Read.All") {
			t.Errorf("claims = %+v, want oid %s with Directory.Read.All", c, fx.spID)
		}
	})
}

func TestLoginDiscovery(t *testing.T) {
	h := start(t, Options{})
	tid := h.tenant.TenantID()
	authz := url.QueryEscape("https://" + LoginHost + "/" + tid + "/oauth2/v2.0/authorize")
	t.Run("instance discovery", func(t *testing.T) {
		r := h.call(http.MethodGet, "https://"+LoginHost+"/common/discovery/instance?api-version=1.1&authorization_endpoint="+authz, "", nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("status = %d: %s", r.status, r.body)
		}
		body := r.json(t)
		if got, want := str(body, "tenant_discovery_endpoint"), "https://login.microsoftonline.com/"+tid+"/v2.0/.well-known/openid-configuration"; got != want {
			t.Errorf("tenant_discovery_endpoint = %q, want %q", got, want)
		}
		md, _ := body["metadata"].([]any)
		if len(md) == 0 || !strings.Contains(string(mustJSON(t, md[0])), `"sts.windows.net"`) {
			t.Errorf("metadata = %v, want the public cloud's aliases", body["metadata"])
		}
	})
	t.Run("instance discovery of another cloud", func(t *testing.T) {
		r := h.call(http.MethodGet, "https://"+LoginHost+"/common/discovery/instance?api-version=1.1&authorization_endpoint="+
			url.QueryEscape("https://login.example.org/x/oauth2/v2.0/authorize"), "", nil, nil)
		checkEntraError(t, r, 400, "invalid_instance", 50049, "Unknown or invalid instance.")
	})
	t.Run("openid configuration", func(t *testing.T) {
		r := h.call(http.MethodGet, "https://"+LoginHost+"/"+tid+"/v2.0/.well-known/openid-configuration", "", nil, nil)
		if r.status != http.StatusOK {
			t.Fatalf("status = %d: %s", r.status, r.body)
		}
		body := r.json(t)
		base := "https://login.microsoftonline.com/" + tid
		for k, v := range map[string]string{
			"token_endpoint": base + "/oauth2/v2.0/token", "authorization_endpoint": base + "/oauth2/v2.0/authorize", "issuer": base + "/v2.0",
		} {
			if got := str(body, k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
	})
	t.Run("openid configuration of an unknown tenant", func(t *testing.T) {
		other := NewGUID()
		r := h.call(http.MethodGet, "https://"+LoginHost+"/"+other+"/v2.0/.well-known/openid-configuration", "", nil, nil)
		checkEntraError(t, r, 400, "invalid_tenant", 90002, "Tenant '"+other+"' not found. Check to make sure you have the correct tenant ID")
	})
	s := h.tenant.Stats()
	if s.Op(OpLoginInstanceDiscovery).Requests != 2 || s.Op(OpLoginOpenIDConfiguration).Requests != 2 || s.APIVersions["login 1.1"] != 2 {
		t.Errorf("stats = %+v", s)
	}
	if got := s.Service(ServiceLogin).Requests; got != 4 {
		t.Errorf("login requests = %d, want 4", got)
	}
}

// TestSignInAcceptanceDelay: a credential that addPassword just added is refused as a wrong secret until
// the delay has passed; one older than the delay is accepted at once.
func TestSignInAcceptanceDelay(t *testing.T) {
	h := start(t, Options{})
	tok := h.graphToken()
	r := h.upsertApp(tok, "delayed")
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		t.Fatalf("upsert: %d %s", r.status, r.body)
	}
	app := r.json(t)
	appID := str(app, "appId")
	h.tenant.Mutate(func(s *State) {
		s.ServicePrincipals = append(s.ServicePrincipals, ServicePrincipal{AppID: appID, DisplayName: "delayed", AccountEnabled: true})
	})
	const delay = 700 * time.Millisecond
	h.tenant.SetSignInAcceptanceDelay(delay)
	added := time.Now()
	r = h.graph(http.MethodPost, "/applications/"+str(app, "id")+"/addPassword", tok, []byte(`{"passwordCredential":{"displayName":"t"}}`), nil)
	if r.status != http.StatusOK {
		t.Fatalf("addPassword: %d %s", r.status, r.body)
	}
	secret := str(r.json(t), "secretText")
	if at := h.tenant.Snapshot().ApplicationByAppID(appID).PasswordCredentials[0].AddedAt; at.Before(added.Add(-time.Second)) || at.After(time.Now()) {
		t.Errorf("AddedAt = %v, want about %v", at, added)
	}
	r = h.postForm(tokenURL(h.tenant.TenantID()), clientCredentials(appID, secret, GraphAppID))
	checkEntraError(t, r, 401, "invalid_client", 7000215, "Invalid client secret provided.")
	time.Sleep(time.Until(added.Add(delay + 50*time.Millisecond)))
	if r = h.postForm(tokenURL(h.tenant.TenantID()), clientCredentials(appID, secret, GraphAppID)); r.status != http.StatusOK {
		t.Errorf("after the delay: %d %s, want 200", r.status, r.body)
	}
	h.tenant.SetSignInAcceptanceDelay(time.Hour)
	h.tenant.Mutate(func(s *State) {
		s.ApplicationByAppID(appID).PasswordCredentials[0].AddedAt = time.Now().Add(-2 * time.Hour)
	})
	if r = h.postForm(tokenURL(h.tenant.TenantID()), clientCredentials(appID, secret, GraphAppID)); r.status != http.StatusOK {
		t.Errorf("a credential older than the delay: %d %s, want 200", r.status, r.body)
	}
}

func TestSetServicePrincipalEnabled(t *testing.T) {
	h := start(t, Options{})
	if err := h.tenant.SetServicePrincipalEnabled(NewGUID(), false); err == nil {
		t.Errorf("SetServicePrincipalEnabled of an unknown appId: no error")
	}
	for _, enabled := range []bool{false, true} {
		if err := h.tenant.SetServicePrincipalEnabled(IntuneAPIAppID, enabled); err != nil {
			t.Fatalf("SetServicePrincipalEnabled: %v", err)
		}
		if got := h.tenant.Snapshot().ServicePrincipalByAppID(IntuneAPIAppID).AccountEnabled; got != enabled {
			t.Errorf("accountEnabled = %v, want %v", got, enabled)
		}
	}
}

func TestLoginFaults(t *testing.T) {
	h := start(t, Options{})
	fx := newSignInFixture(t, h)
	h.tenant.AddFault(Fault{Service: ServiceLogin, Operation: OpLoginToken, Status: http.StatusServiceUnavailable, RetryAfter: 1})
	form := clientCredentials(fx.appID, fx.secret, GraphAppID)
	r := h.postForm(tokenURL(h.tenant.TenantID()), form)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" || str(r.json(t), "error") == "" {
		t.Errorf("faulted: %d Retry-After %q %s, want 503 with Retry-After 1 and an OAuth error", r.status, r.header.Get("Retry-After"), r.body)
	}
	if r = h.postForm(tokenURL(h.tenant.TenantID()), form); r.status != http.StatusOK {
		t.Errorf("after the fault: %d %s", r.status, r.body)
	}
	s := h.tenant.Stats()
	if o := s.Op(OpLoginToken); o.Requests != 2 || o.Statuses[503] != 1 || o.Statuses[200] != 1 || s.FaultsFired != 1 {
		t.Errorf("stats: %+v, faults fired %d", o, s.FaultsFired)
	}
}

// loginCounts are the requests of each token service operation.
type loginCounts struct{ instance, openID, token int }

func (h *harness) loginCounts() loginCounts {
	s := h.tenant.Stats()
	return loginCounts{s.Op(OpLoginInstanceDiscovery).Requests, s.Op(OpLoginOpenIDConfiguration).Requests, s.Op(OpLoginToken).Requests}
}

// TestClientSecretCredentialSignsIn drives the real azidentity ClientSecretCredential, with and without
// instance discovery, and records what each GetToken costs.
func TestClientSecretCredentialSignsIn(t *testing.T) {
	graphScope, intuneScope := AudienceGraph+"/.default", IntuneAPIAppID+"/.default"
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableInstanceDiscovery=%v", disable), func(t *testing.T) {
			h := start(t, Options{})
			fx := newSignInFixture(t, h)
			newCred := func(secret string) *azidentity.ClientSecretCredential {
				t.Helper()
				c, err := azidentity.NewClientSecretCredential(h.tenant.TenantID(), fx.appID, secret, &azidentity.ClientSecretCredentialOptions{
					ClientOptions: azcore.ClientOptions{
						Transport: h.tenant.HTTPClient(),
						Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: "https://login.microsoftonline.com/"},
					},
					DisableInstanceDiscovery: disable,
				})
				if err != nil {
					t.Fatalf("NewClientSecretCredential: %v", err)
				}
				return c
			}
			// MSAL reads instance discovery metadata for its token cache (not for the endpoints: it trusts
			// login.microsoftonline.com by name) once per credential, unless DisableInstanceDiscovery.
			disc := 1
			if disable {
				disc = 0
			}
			first := newCred(fx.secret)
			steps := []struct {
				name  string
				cred  func() *azidentity.ClientSecretCredential
				scope string
				roles string
				want  loginCounts
			}{
				{"new credential, Graph", func() *azidentity.ClientSecretCredential { return first }, graphScope, "Directory.Read.All", loginCounts{disc, 1, 1}},
				{"same credential, Graph again", func() *azidentity.ClientSecretCredential { return first }, graphScope, "Directory.Read.All", loginCounts{0, 0, 0}},
				{"same credential, Intune", func() *azidentity.ClientSecretCredential { return first }, intuneScope, "scep_challenge_provider", loginCounts{0, 0, 1}},
				{"new credential, Graph", func() *azidentity.ClientSecretCredential { return newCred(fx.secret) }, graphScope, "Directory.Read.All", loginCounts{disc, 1, 1}},
				{"new credential, Intune", func() *azidentity.ClientSecretCredential { return newCred(fx.secret) }, intuneScope, "scep_challenge_provider", loginCounts{disc, 1, 1}},
			}
			for _, st := range steps {
				h.tenant.ResetStats()
				tok, err := st.cred().GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{st.scope}})
				if err != nil {
					t.Fatalf("%s: GetToken: %v", st.name, err)
				}
				got := h.loginCounts()
				t.Logf("%s (%s): instance discovery %d, openid-configuration %d, token %d", st.name, st.scope, got.instance, got.openID, got.token)
				if got != st.want {
					t.Errorf("%s: requests %+v, want %+v", st.name, got, st.want)
				}
				if roles, _ := jwtClaims(t, tok.Token)["roles"].([]any); len(roles) != 1 || roles[0] != st.roles {
					t.Errorf("%s: roles = %v, want [%s]", st.name, roles, st.roles)
				}
			}
			t.Run("wrong secret", func(t *testing.T) {
				h.tenant.ResetStats()
				_, err := newCred(newSecretText()).GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{graphScope}})
				if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") {
					t.Fatalf("GetToken with a wrong secret: %v, want AADSTS7000215", err)
				}
				got := h.loginCounts()
				t.Logf("refused sign-in: instance discovery %d, openid-configuration %d, token %d", got.instance, got.openID, got.token)
				if want := (loginCounts{disc, 1, 1}); got != want {
					t.Errorf("requests %+v, want %+v (no retry of a 401)", got, want)
				}
			})
			t.Run("polling a pending secret on one credential", func(t *testing.T) {
				const delay = 500 * time.Millisecond
				pending, added := newSecretText(), time.Now()
				h.tenant.Mutate(func(s *State) {
					app := s.ApplicationByAppID(fx.appID)
					app.PasswordCredentials = append(app.PasswordCredentials, PasswordCredential{
						SecretText: pending, EndDateTime: added.Add(24 * time.Hour), AddedAt: added,
					})
				})
				h.tenant.SetSignInAcceptanceDelay(delay)
				t.Cleanup(func() { h.tenant.SetSignInAcceptanceDelay(0) })
				cred := newCred(pending)
				for i, want := range []loginCounts{{disc, 1, 1}, {0, 0, 1}} {
					h.tenant.ResetStats()
					_, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{graphScope}})
					if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") {
						t.Fatalf("poll %d before the delay: %v, want AADSTS7000215", i+1, err)
					}
					got := h.loginCounts()
					t.Logf("pending poll %d: instance discovery %d, openid-configuration %d, token %d", i+1, got.instance, got.openID, got.token)
					if got != want {
						t.Errorf("poll %d: requests %+v, want %+v", i+1, got, want)
					}
				}
				time.Sleep(time.Until(added.Add(delay + 50*time.Millisecond)))
				h.tenant.ResetStats()
				if _, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{graphScope}}); err != nil {
					t.Fatalf("poll after the delay: %v", err)
				}
				got := h.loginCounts()
				t.Logf("accepted poll: instance discovery %d, openid-configuration %d, token %d", got.instance, got.openID, got.token)
				if want := (loginCounts{0, 0, 1}); got != want {
					t.Errorf("accepted poll: requests %+v, want %+v", got, want)
				}
			})
		})
	}
}
