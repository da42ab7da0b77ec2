package emulator

import (
	"crypto/subtle"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AudienceIntuneAPI is the identifier URI of the Microsoft Intune API (one of its servicePrincipalNames).
const AudienceIntuneAPI = "https://api.manage.microsoft.com/"

// loginState is what the token service knows beyond the directory. Guarded by Tenant.mu.
type loginState struct {
	acceptanceDelay time.Duration // SetSignInAcceptanceDelay
}

// SetSignInAcceptanceDelay makes the token service refuse a password credential (401 invalid_client,
// AADSTS7000215, as for a wrong secret) until d has passed (wall clock) since addPassword added it, as
// real Entra ID does for seconds to minutes. 0 (the default) accepts a credential at once. Credentials
// put in place with Mutate count as old unless their AddedAt says otherwise.
func (t *Tenant) SetSignInAcceptanceDelay(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.login.acceptanceDelay = max(d, 0)
}

// SetServicePrincipalEnabled sets accountEnabled of the service principal of the application with that
// client id: a disabled one cannot sign in (AADSTS7000112).
func (t *Tenant) SetServicePrincipalEnabled(appID string, enabled bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	sp := t.state.ServicePrincipalByAppID(appID)
	if sp == nil {
		return fmt.Errorf("emulator: setting accountEnabled: no service principal for appId %q", appID)
	}
	sp.AccountEnabled = enabled
	return nil
}

// loginRoute maps a request to the token service to its operation.
func (t *Tenant) loginRoute(req *request) (route, bool) {
	s := req.segs
	switch {
	case len(s) == 3 && s[1] == "discovery" && s[2] == "instance" && req.method == http.MethodGet:
		return route{op: OpLoginInstanceDiscovery, handle: t.instanceDiscovery}, true
	case len(s) == 4 && s[1] == "v2.0" && s[2] == ".well-known" && s[3] == "openid-configuration" && req.method == http.MethodGet:
		return route{op: OpLoginOpenIDConfiguration, handle: func(r *request) answer { return t.openIDConfiguration(r, s[0]) }}, true
	case len(s) == 4 && s[1] == "oauth2" && s[2] == "v2.0" && s[3] == "token" &&
		(req.method == http.MethodPost || req.method == http.MethodGet):
		return route{op: OpLoginToken, handle: func(r *request) answer { return t.loginToken(r, s[0]) }}, true
	}
	return route{}, false
}

// loginBase is https://login.microsoftonline.com.
const loginBase = "https://" + LoginHost

// publicCloudAliases are the host names of the public cloud's token service, as instance discovery
// answers them (and as MSAL knows them).
var publicCloudAliases = []string{LoginHost, "login.windows.net", "login.microsoft.com", "sts.windows.net"}

// instanceDiscovery answers GET /common/discovery/instance?api-version=1.1&authorization_endpoint=…, which
// MSAL asks before the OpenID configuration of an authority it does not trust by name. Runs under t.mu.
func (t *Tenant) instanceDiscovery(req *request) answer {
	v := req.query.Get("api-version")
	if v != "1.0" && v != "1.1" {
		t.noteUnknownLocked("%s: instance discovery api-version %q (the emulator serves 1.0 and 1.1)", req.target(), v)
		return loginError(req, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'api-version'.")
	}
	t.stats.APIVersions[ServiceLogin+" "+v]++
	endpoint := req.query.Get("authorization_endpoint")
	if endpoint == "" {
		return loginError(req, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'authorization_endpoint'.")
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || !slices.Contains(publicCloudAliases, strings.ToLower(u.Hostname())) {
		return loginError(req, http.StatusBadRequest, "invalid_instance", 50049, "Unknown or invalid instance.")
	}
	tenant, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if tenant == "" {
		tenant = "common"
	}
	return loginJSON(http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": loginBase + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []any{map[string]any{
			"preferred_network": LoginHost,
			"preferred_cache":   "login.windows.net",
			"aliases":           publicCloudAliases,
		}},
	}, req)
}

// openIDConfiguration answers GET /{tenant}/v2.0/.well-known/openid-configuration for the tenant's id.
// Runs under t.mu.
func (t *Tenant) openIDConfiguration(req *request, tenant string) answer {
	d := t.dir(tenant)
	if d == nil {
		return tenantNotFound(req, tenant)
	}
	base := loginBase + "/" + d.id
	return loginJSON(http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                base + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     "https://graph.microsoft.com/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"kerberos_endpoint":                     base + "/kerberos",
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          GraphHost,
		"rbac_url":                              "https://pas.windows.net",
	}, req)
}

// tenantNotFound is Entra's answer for a tenant it does not know (AADSTS90002).
func tenantNotFound(req *request, tenant string) answer {
	return loginError(req, http.StatusBadRequest, "invalid_tenant", 90002, "Tenant '"+tenant+
		"' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. "+
		"Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.")
}

// msalScopes are the scopes MSAL adds to every request; the client-credentials grant ignores them.
var msalScopes = []string{"openid", "profile", "offline_access"}

// loginToken answers POST /{tenant}/oauth2/v2.0/token for any tenant of the world, from its directory
// (t.state, set by execute). Only the client-credentials grant is served, with a client secret or a
// client assertion (federation.go); the checks run in the order: request, scope, client application, its
// credential, resource. Runs under t.mu.
func (t *Tenant) loginToken(req *request, tenant string) answer {
	if req.method != http.MethodPost {
		return loginError(req, http.StatusBadRequest, "invalid_request", 900561,
			"The endpoint only accepts POST, OPTIONS requests. Received a "+req.method+" request.")
	}
	d := t.dir(tenant)
	if d == nil {
		return tenantNotFound(req, tenant)
	}
	form := url.Values{}
	if mt, _, err := mime.ParseMediaType(req.header.Get("Content-Type")); err == nil && mt == "application/x-www-form-urlencoded" {
		if form, err = url.ParseQuery(string(req.body)); err != nil {
			return loginError(req, http.StatusBadRequest, "invalid_request", 900144,
				"The request body must contain the following parameter: 'grant_type'.")
		}
	}
	missing := func(p string) answer {
		return loginError(req, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: '"+p+"'.")
	}
	switch g := form.Get("grant_type"); g {
	case "":
		return missing("grant_type")
	case "client_credentials":
	default:
		t.noteUnknownLocked("%s: grant_type %q (the emulated token service serves client_credentials only)", req.target(), g)
		return loginError(req, http.StatusBadRequest, "unsupported_grant_type", 70003,
			"The app requested an unsupported grant type '"+g+"'.")
	}
	for _, p := range []string{"client_id", "scope"} {
		if form.Get(p) == "" {
			return missing(p)
		}
	}
	resource, ans := scopeResource(req, form.Get("scope"))
	if ans != nil {
		return *ans
	}
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	assertion := form.Get("client_assertion") != "" || form.Get("client_assertion_type") != ""
	var client *ServicePrincipal
	acr := "1" // appidacr: the client authenticated with a secret
	switch {
	case assertion && secret != "":
		t.noteUnknownLocked("%s: both client_secret and client_assertion (the emulated token service serves one or the other)", req.target())
		return loginError(req, http.StatusBadRequest, "invalid_request", 0,
			"The emulated token service takes either client_secret or client_assertion, not both.")
	case assertion:
		client, ans = t.assertionClient(req, d, clientID, form.Get("client_assertion_type"), form.Get("client_assertion"))
		acr = "2" // a certificate or client assertion
	case secret == "":
		return loginError(req, http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	default:
		client, ans = t.signInClient(req, tenant, clientID, secret)
	}
	if ans != nil {
		return *ans
	}
	res := t.resourcePrincipal(resource)
	if res == nil {
		t.logf("emulator: token service refuses client %s: unknown resource (AADSTS500011)", clientID)
		return loginError(req, http.StatusBadRequest, "invalid_resource", 500011, "The resource principal named "+resource+
			" was not found in the tenant named "+tenant+". This can happen if the application has not been installed by the "+
			"administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.")
	}
	tok := t.appToken(client, res, resource, acr)
	t.issue(tok)
	secs := int(tokenLifetime/time.Second) - 1
	return loginJSON(http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok,
	}, req)
}

// scopeResource returns the resource of a client-credentials scope ({resource}/.default, besides the
// scopes MSAL adds), or Entra's refusal.
func scopeResource(req *request, scope string) (string, *answer) {
	var rest []string
	for _, s := range strings.Fields(scope) {
		if !slices.ContainsFunc(msalScopes, func(m string) bool { return strings.EqualFold(m, s) }) {
			rest = append(rest, s)
		}
	}
	switch {
	case len(rest) > 1:
		ans := loginError(req, http.StatusBadRequest, "invalid_scope", 70011,
			"The provided value for the input parameter 'scope' is not valid. The scope "+scope+" is not valid.")
		return "", &ans
	case len(rest) == 0 || !strings.HasSuffix(strings.ToLower(rest[0]), "/.default") || len(rest[0]) == len("/.default"):
		bad := scope
		if len(rest) == 1 {
			bad = rest[0]
		}
		ans := loginError(req, http.StatusBadRequest, "invalid_scope", 1002012, "The provided value for scope "+bad+
			" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
		return "", &ans
	}
	return rest[0][:len(rest[0])-len("/.default")], nil
}

// Entra's texts of the refusals of a client, for a secret (signInClient) and an assertion (assertionClient).
func appNotFoundText(clientID, tenant string) string {
	return "Application with identifier '" + clientID + "' was not found in the directory '" + tenant + "'. This can happen if " +
		"the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. " +
		"You may have sent your authentication request to the wrong tenant."
}

func noServicePrincipalText(appID, tenant string) string {
	return "The client application " + appID + " is missing service principal in the tenant " + tenant +
		". See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119"
}

func appDisabledText(app *Application) string {
	return "Application '" + app.AppID + "'(" + app.DisplayName + ") is disabled."
}

// signInClient checks the client application and its secret; it returns the client's service principal,
// or Entra's refusal. Runs under t.mu.
func (t *Tenant) signInClient(req *request, tenant, clientID, secret string) (*ServicePrincipal, *answer) {
	refuse := func(status int, code string, aadsts int, text string) (*ServicePrincipal, *answer) {
		t.logf("emulator: token service refuses client %s: AADSTS%d", clientID, aadsts)
		ans := loginError(req, status, code, aadsts, text)
		return nil, &ans
	}
	app := t.state.ApplicationByAppID(clientID)
	if app == nil || !visible(app.VisibleAt) {
		return refuse(http.StatusBadRequest, "unauthorized_client", 700016, appNotFoundText(clientID, tenant))
	}
	sp := t.state.ServicePrincipalByAppID(app.AppID)
	if sp == nil || !visible(sp.VisibleAt) {
		return refuse(http.StatusUnauthorized, "invalid_client", 7000229, noServicePrincipalText(app.AppID, t.dirID))
	}
	if !sp.AccountEnabled {
		return refuse(http.StatusBadRequest, "unauthorized_client", 7000112, appDisabledText(app))
	}
	var cred *PasswordCredential
	for i := range app.PasswordCredentials {
		c := &app.PasswordCredentials[i]
		if c.SecretText != "" && subtle.ConstantTimeCompare([]byte(c.SecretText), []byte(secret)) == 1 && visible(c.VisibleAt) {
			cred = c
			break
		}
	}
	if cred != nil && t.login.acceptanceDelay > 0 && !cred.AddedAt.IsZero() && time.Since(cred.AddedAt) < t.login.acceptanceDelay {
		cred = nil // not accepted yet: Entra answers as for a wrong secret
	}
	if cred == nil {
		return refuse(http.StatusUnauthorized, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret "+
			"being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+app.AppID+"'.")
	}
	if !cred.EndDateTime.IsZero() && !t.now().Before(cred.EndDateTime) {
		return refuse(http.StatusUnauthorized, "invalid_client", 7000222, "The provided client secret keys for app '"+app.AppID+
			"' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider "+
			"using certificate credentials for added security: https://aka.ms/certCreds.")
	}
	return sp, nil
}

// resourcePrincipal returns the enabled, replicated service principal a token request names: by appId,
// servicePrincipalName or its application's identifierUris (case-insensitive, a trailing slash ignored).
// Runs under t.mu.
func (t *Tenant) resourcePrincipal(resource string) *ServicePrincipal {
	norm := func(s string) string { return strings.TrimSuffix(strings.ToLower(s), "/") }
	want := norm(resource)
	for i := range t.state.ServicePrincipals {
		sp := &t.state.ServicePrincipals[i]
		if !sp.AccountEnabled || !visible(sp.VisibleAt) {
			continue
		}
		names := append([]string{sp.AppID}, sp.ServicePrincipalNames...)
		if app := t.state.ApplicationByAppID(sp.AppID); app != nil {
			names = append(names, app.IdentifierURIs...)
		}
		if slices.ContainsFunc(names, func(n string) bool { return norm(n) == want }) {
			return sp
		}
	}
	return nil
}

// appToken issues the access token of a client of the current directory for a resource: aud is the
// resource as requested, roles the values of the client's (replicated) app role assignments on the
// resource, appidacr acr ("1" secret, "2" assertion). Runs under t.mu.
func (t *Tenant) appToken(client, res *ServicePrincipal, resource, acr string) string {
	var roles []string
	for _, a := range t.state.AppRoleAssignments {
		if !strings.EqualFold(a.PrincipalID, client.ID) || !strings.EqualFold(a.ResourceID, res.ID) || !visible(a.VisibleAt) {
			continue
		}
		i := slices.IndexFunc(res.AppRoles, func(r AppRole) bool { return strings.EqualFold(r.ID, a.AppRoleID) })
		if i >= 0 && res.AppRoles[i].IsEnabled && res.AppRoles[i].Value != "" && !slices.Contains(roles, res.AppRoles[i].Value) {
			roles = append(roles, res.AppRoles[i].Value)
		}
	}
	now := time.Now()
	return signToken(claims{
		Aud: resource, Iss: issuer(t.dirID), Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(tokenLifetime).Unix(),
		AppID: client.AppID, AppIDAcr: acr, Idp: issuer(t.dirID), Idtyp: "app", Oid: client.ID, Roles: roles,
		Sub: client.ID, Tid: t.dirID, Uti: newAssignmentID()[:22], Ver: "1.0",
	})
}

// loginJSON is a JSON answer of the token service, with its cache and request id headers.
func loginJSON(status int, v any, req *request) answer {
	ans := jsonAnswer(status, v, "application/json; charset=utf-8")
	ans.header.Set("Cache-Control", "no-store, no-cache")
	ans.header.Set("Pragma", "no-cache")
	ans.header.Set("x-ms-request-id", req.requestID)
	return ans
}

// loginError is Entra's OAuth error answer: error, error_description ("AADSTS<n>: text" and the trace
// lines), error_codes, timestamp, trace_id, correlation_id, error_uri. aadsts 0 leaves the code out
// (injected faults, what the emulator does not serve).
func loginError(req *request, status int, code string, aadsts int, text string) answer {
	ts := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	corr := req.header.Get("client-request-id")
	if !isGUID(corr) {
		corr = NewGUID()
	}
	desc := text
	if aadsts != 0 {
		desc = "AADSTS" + strconv.Itoa(aadsts) + ": " + text
	}
	body := map[string]any{
		"error":             code,
		"error_description": desc + "\r\nTrace ID: " + req.requestID + "\r\nCorrelation ID: " + corr + "\r\nTimestamp: " + ts,
		"timestamp":         ts,
		"trace_id":          req.requestID,
		"correlation_id":    corr,
	}
	if aadsts != 0 {
		body["error_codes"] = []int{aadsts}
		body["error_uri"] = loginBase + "/error?code=" + strconv.Itoa(aadsts)
	}
	return loginJSON(status, body, req)
}

// noteUnknownLocked is noteUnknown for code that holds t.mu.
func (t *Tenant) noteUnknownLocked(format string, args ...any) {
	desc := fmt.Sprintf(format, args...)
	t.unknown = append(t.unknown, desc)
	t.logf("EMULATOR: UNKNOWN REQUEST (not served, answered with an error): %s", desc)
}
