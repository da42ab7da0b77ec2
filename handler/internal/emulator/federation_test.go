package emulator

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// world is a home tenant with a customer tenant that consented to the federated application (grant
// roles), and one that did not.
type world struct {
	*harness
	home, customer, unconsented string
	appID                       string // the federated application
}

func newWorld(t *testing.T) world {
	t.Helper()
	h := start(t, Options{})
	w := world{harness: h, home: h.tenant.TenantID(), customer: NewGUID(), unconsented: NewGUID()}
	for _, tid := range []string{w.customer, w.unconsented} {
		if err := h.tenant.AddTenant(tid, false); err != nil {
			t.Fatalf("AddTenant: %v", err)
		}
	}
	w.appID = h.tenant.RegisterFederatedApp("appreg federation")
	if err := h.tenant.ConsentFederatedApp(w.customer, w.appID, DefaultGraphRoles()...); err != nil {
		t.Fatalf("ConsentFederatedApp: %v", err)
	}
	return w
}

// assertionForm is the form azidentity's ClientAssertionCredential sends.
func assertionForm(clientID, assertion, resource string) url.Values {
	return url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_assertion": {assertion},
		"client_assertion_type": {ClientAssertionTypeJWTBearer}, "scope": {resource + "/.default openid offline_access profile"},
	}
}

// federatedToken signs in to tenant as the federated application and returns the access token.
func (w world) federatedToken(tenant, resource string) string {
	w.t.Helper()
	r := w.postForm(tokenURL(tenant), assertionForm(w.appID, w.token(AudienceTokenExchange), resource))
	if r.status != http.StatusOK {
		w.t.Fatalf("federated sign-in to %s: %d %s", tenant, r.status, r.body)
	}
	return str(r.json(w.t), "access_token")
}

func TestAddTenant(t *testing.T) {
	h := start(t, Options{})
	a, b := NewGUID(), strings.ToUpper(NewGUID())
	tests := []struct {
		name     string
		tenant   string
		noIntune bool
		wantErr  bool
	}{
		{name: "a customer", tenant: a},
		{name: "upper case, no Intune", tenant: b, noIntune: true},
		{name: "again", tenant: a, wantErr: true},
		{name: "again, other case", tenant: strings.ToUpper(a), wantErr: true},
		{name: "the home tenant", tenant: h.tenant.TenantID(), wantErr: true},
		{name: "not a GUID", tenant: "contoso.onmicrosoft.com", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.tenant.AddTenant(tt.tenant, tt.noIntune)
			if (err != nil) != tt.wantErr {
				t.Fatalf("AddTenant(%q) = %v, want error %v", tt.tenant, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			s := h.tenant.SnapshotOf(tt.tenant)
			if s.ServicePrincipalByAppID(GraphAppID) == nil || (s.ServicePrincipalByAppID(IntuneAPIAppID) == nil) != tt.noIntune {
				t.Errorf("service principals %+v, want Graph and Intune unless noIntune", s.ServicePrincipals)
			}
			if s.ServicePrincipalByAppID(h.tenant.IdentityClientID()) != nil || len(s.Applications) != 0 || len(s.Secrets) != 0 {
				t.Errorf("a new tenant holds the managed identity, applications or secrets: %+v", s)
			}
		})
	}
	want := []string{h.tenant.TenantID()}
	want = append(want, slices.Sorted(slices.Values([]string{a, strings.ToLower(b)}))...)
	if got := h.tenant.Tenants(); !slices.Equal(got, want) {
		t.Errorf("Tenants() = %v, want %v", got, want)
	}
	if s := h.tenant.SnapshotOf(NewGUID()); len(s.ServicePrincipals) != 0 {
		t.Errorf("SnapshotOf an unknown tenant = %+v, want the zero State", s)
	}
}

func TestTokenExchangeAssertion(t *testing.T) {
	h := start(t, Options{})
	for _, resource := range []string{"api://AzureADTokenExchange", "api://AzureADTokenExchange/.default", "api://azureadtokenexchange"} {
		t.Run(resource, func(t *testing.T) {
			c := jwtClaims(t, h.token(resource))
			want := map[string]string{
				"aud": AudienceTokenExchange, "iss": "https://login.microsoftonline.com/" + h.tenant.TenantID() + "/v2.0",
				"sub": h.tenant.IdentityObjectID(), "oid": h.tenant.IdentityObjectID(), "tid": h.tenant.TenantID(), "ver": "2.0",
			}
			for k, v := range want {
				if got := str(c, k); got != v {
					t.Errorf("claim %s = %q, want %q", k, got, v)
				}
			}
			if c["roles"] != nil {
				t.Errorf("roles = %v, want none", c["roles"])
			}
		})
	}
}

func TestRegisterAndConsentFederatedApp(t *testing.T) {
	w := newWorld(t)
	home := w.tenant.Snapshot()
	app := home.ApplicationByAppID(w.appID)
	if app == nil || app.SignInAudience != "AzureADMultipleOrgs" {
		t.Fatalf("application %+v, want a multi-tenant application in the home tenant", app)
	}
	wantFIC := FederatedIdentityCredential{Issuer: FederatedIssuer(w.home), Subject: w.tenant.IdentityObjectID(), Audiences: []string{AudienceTokenExchange}}
	if len(app.FederatedIdentityCredentials) != 1 || app.FederatedIdentityCredentials[0].Issuer != wantFIC.Issuer ||
		app.FederatedIdentityCredentials[0].Subject != wantFIC.Subject || !slices.Equal(app.FederatedIdentityCredentials[0].Audiences, wantFIC.Audiences) {
		t.Errorf("federated identity credentials %+v, want one like %+v", app.FederatedIdentityCredentials, wantFIC)
	}
	if sp := home.ServicePrincipalByAppID(w.appID); sp == nil || len(home.AssignmentsOf(sp.ID)) != 0 {
		t.Errorf("home service principal %+v, want one without assignments", sp)
	}
	cust := w.tenant.SnapshotOf(w.customer)
	sp := cust.ServicePrincipalByAppID(w.appID)
	if sp == nil || sp.AppOwnerOrganizationID != w.home || !sp.AccountEnabled {
		t.Fatalf("customer service principal %+v, want one owned by the home tenant", sp)
	}
	var roles []string
	for _, a := range cust.AssignmentsOf(sp.ID) {
		for _, r := range cust.ServicePrincipalByAppID(GraphAppID).AppRoles {
			if r.ID == a.AppRoleID {
				roles = append(roles, r.Value)
			}
		}
	}
	if slices.Sort(roles); !slices.Equal(roles, slices.Sorted(slices.Values(DefaultGraphRoles()))) {
		t.Errorf("assigned roles %v, want %v", roles, DefaultGraphRoles())
	}
	if cust.ApplicationByAppID(w.appID) != nil || w.tenant.SnapshotOf(w.unconsented).ServicePrincipalByAppID(w.appID) != nil {
		t.Errorf("the application leaked into the customer's directory or into the unconsented tenant")
	}
	t.Run("again adds nothing", func(t *testing.T) {
		if err := w.tenant.ConsentFederatedApp(w.customer, w.appID, RoleApplicationReadAll); err != nil {
			t.Fatal(err)
		}
		if got := len(w.tenant.SnapshotOf(w.customer).AppRoleAssignments); got != 3 {
			t.Errorf("%d assignments, want 3", got)
		}
	})
	for _, tc := range []struct{ name, tenant, app, role string }{
		{"unknown tenant", NewGUID(), w.appID, RoleApplicationReadAll},
		{"unknown application", w.unconsented, NewGUID(), RoleApplicationReadAll},
		{"unknown role", w.unconsented, w.appID, "Nothing.Read.All"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.objects()
			if err := w.tenant.ConsentFederatedApp(tc.tenant, tc.app, tc.role); err == nil {
				t.Errorf("ConsentFederatedApp: no error")
			}
			if after := w.objects(); after != before {
				t.Errorf("a failed consent changed the world: service principals and assignments %v, were %v", after, before)
			}
		})
	}
}

// objects counts the service principals and app role assignments of every tenant of the world.
func (w *world) objects() [2]int {
	var n [2]int
	for _, tid := range w.tenant.Tenants() {
		s := w.tenant.SnapshotOf(tid)
		n[0] += len(s.ServicePrincipals)
		n[1] += len(s.AppRoleAssignments)
	}
	return n
}

func TestFederatedSignIn(t *testing.T) {
	w := newWorld(t)
	tok := w.federatedToken(w.customer, AudienceGraph)
	c := jwtClaims(t, tok)
	sp := w.tenant.SnapshotOf(w.customer).ServicePrincipalByAppID(w.appID)
	want := map[string]string{"tid": w.customer, "iss": issuer(w.customer), "oid": sp.ID, "sub": sp.ID, "appid": w.appID, "appidacr": "2", "aud": AudienceGraph}
	for k, v := range want {
		if got := str(c, k); got != v {
			t.Errorf("claim %s = %q, want %q", k, got, v)
		}
	}
	var roles []string
	for _, r := range c["roles"].([]any) {
		roles = append(roles, r.(string))
	}
	if slices.Sort(roles); !slices.Equal(roles, slices.Sorted(slices.Values(DefaultGraphRoles()))) {
		t.Errorf("roles = %v, want %v", roles, DefaultGraphRoles())
	}
	if !slices.Contains(w.tenant.IssuedSecrets(), tok) {
		t.Errorf("the token is not in IssuedSecrets")
	}
	t.Run("in the home tenant, no roles", func(t *testing.T) {
		if c := jwtClaims(t, w.federatedToken(w.home, AudienceGraph)); c["roles"] != nil || str(c, "tid") != w.home {
			t.Errorf("claims %v, want the home tenant without roles", c)
		}
	})
}

func TestFederatedSignInRefusals(t *testing.T) {
	w := newWorld(t)
	assertion := w.token(AudienceTokenExchange)
	singleTenant := NewGUID()
	otherSubject := w.tenant.RegisterFederatedApp("trusts someone else")
	w.tenant.Mutate(func(s *State) {
		s.ApplicationByAppID(otherSubject).FederatedIdentityCredentials[0].Subject = NewGUID()
		s.Applications = append(s.Applications, Application{AppID: singleTenant, DisplayName: "single", SignInAudience: "AzureADMyOrg",
			FederatedIdentityCredentials: slices.Clone(s.ApplicationByAppID(w.appID).FederatedIdentityCredentials)})
		s.ServicePrincipals = append(s.ServicePrincipals, ServicePrincipal{AppID: singleTenant, AccountEnabled: true})
	})
	if err := w.tenant.ConsentFederatedApp(w.customer, otherSubject, RoleApplicationReadAll); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	expired := signToken(claims{Aud: AudienceTokenExchange, Iss: FederatedIssuer(w.home), Tid: w.home, Oid: w.tenant.IdentityObjectID(),
		Sub: w.tenant.IdentityObjectID(), Iat: now.Add(-2 * time.Hour).Unix(), Nbf: now.Add(-2 * time.Hour).Unix(), Exp: now.Add(-time.Hour).Unix(), Ver: "2.0"})
	parts := strings.Split(assertion, ".")
	forged := parts[0] + "." + parts[1] + "x." + parts[2]
	msg700016 := func(tenant string) string {
		return "Application with identifier '" + w.appID + "' was not found in the directory '" + tenant + "'. This can happen if the application " +
			"has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
	}
	with := func(k, v string) url.Values {
		f := assertionForm(w.appID, assertion, AudienceGraph)
		f.Set(k, v)
		if v == "" {
			f.Del(k)
		}
		return f
	}
	tests := []struct {
		name    string
		tenant  string
		form    url.Values
		disable bool // the application's service principal in the customer's tenant disabled
		unknown bool
		status  int
		code    string
		aadsts  int
		text    string
	}{
		{name: "not consented", tenant: w.unconsented, form: with("", ""), status: 400, code: "unauthorized_client", aadsts: 700016, text: msg700016(w.unconsented)},
		{name: "unknown application", tenant: w.customer, form: with("client_id", NewGUID()), status: 400, code: "unauthorized_client", aadsts: 700016, text: "Application with identifier '"},
		{name: "single-tenant application elsewhere", tenant: w.customer, form: with("client_id", singleTenant), status: 400, code: "unauthorized_client", aadsts: 700016,
			text: "Application with identifier '" + singleTenant + "' was not found in the directory '" + w.customer + "'."},
		{name: "disabled", tenant: w.customer, form: with("", ""), disable: true, status: 400, code: "unauthorized_client", aadsts: 7000112, text: "Application '" + w.appID + "'(appreg federation) is disabled."},
		{name: "malformed assertion", tenant: w.customer, form: with("client_assertion", "not-a-jwt"), status: 400, code: "invalid_request", aadsts: 50027, text: "JWT token is invalid or malformed."},
		{name: "forged assertion", tenant: w.customer, form: with("client_assertion", forged), status: 400, code: "invalid_request", aadsts: 50027, text: "JWT token is invalid or malformed."},
		{name: "expired assertion", tenant: w.customer, form: with("client_assertion", expired), status: 401, code: "invalid_client", aadsts: 700024,
			text: "Client assertion is not within its valid time range. Current time: "},
		{name: "a Graph token as assertion", tenant: w.customer, form: with("client_assertion", w.graphToken()), status: 400, code: "invalid_request", aadsts: 70021,
			text: "No matching federated identity record found for presented assertion. Assertion Issuer: '" + issuer(w.home) + "'. Assertion Subject: '" +
				w.tenant.IdentityObjectID() + "'. Assertion Audience: '" + AudienceGraph + "'."},
		{name: "a credential for another subject", tenant: w.customer, form: with("client_id", otherSubject), status: 400, code: "invalid_request", aadsts: 70021,
			text: "No matching federated identity record found for presented assertion. Assertion Issuer: '" + FederatedIssuer(w.home) + "'."},
		{name: "no assertion type", tenant: w.customer, form: with("client_assertion_type", ""), status: 400, code: "invalid_request", aadsts: 900144,
			text: "The request body must contain the following parameter: 'client_assertion_type'."},
		{name: "unknown tenant", tenant: NewGUID(), form: with("", ""), status: 400, code: "invalid_tenant", aadsts: 90002, text: "Tenant '"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.disable {
				w.tenant.MutateTenant(w.customer, func(s *State) { s.ServicePrincipalByAppID(w.appID).AccountEnabled = false })
				t.Cleanup(func() {
					w.tenant.MutateTenant(w.customer, func(s *State) { s.ServicePrincipalByAppID(w.appID).AccountEnabled = true })
				})
			}
			r := w.postForm(tokenURL(tt.tenant), tt.form)
			checkEntraError(t, r, tt.status, tt.code, tt.aadsts, tt.text)
			if strings.Contains(string(r.body), assertion) {
				t.Errorf("the answer carries the assertion")
			}
		})
	}
	for _, tc := range []struct{ name, key, value string }{
		{"another assertion type", "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"},
		{"secret and assertion", "client_secret", newSecretText()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.unknownOK.Store(true)
			before := len(w.tenant.Unknown())
			r := w.postForm(tokenURL(w.customer), with(tc.key, tc.value))
			if r.status != http.StatusBadRequest || str(r.json(t), "error") != "invalid_request" || len(w.tenant.Unknown()) != before+1 {
				t.Errorf("got %d %s (unknown %d -> %d), want 400 invalid_request recorded in Unknown", r.status, r.body, before, len(w.tenant.Unknown()))
			}
		})
	}
}

// TestDirectoriesAreIsolated: each tenant's Graph serves its own directory, by the token's tid; Key Vault
// stays the home tenant's; SnapshotOf and MutateTenant see one tenant only.
func TestDirectoriesAreIsolated(t *testing.T) {
	w := newWorld(t)
	custTok, homeTok := w.federatedToken(w.customer, AudienceGraph), w.graphToken()
	for _, step := range []struct {
		name  string
		token string
	}{{"customer", custTok}, {"home", homeTok}} {
		if r := w.upsertApp(step.token, "scepman"); r.status != http.StatusCreated {
			t.Fatalf("%s: upsert = %d %s, want 201 (each directory its own)", step.name, r.status, r.body)
		}
	}
	cust, home := w.tenant.SnapshotOf(w.customer).Application("scepman"), w.tenant.Snapshot().Application("scepman")
	if cust == nil || home == nil || cust.AppID == home.AppID {
		t.Fatalf("customer app %+v, home app %+v: want two different applications", cust, home)
	}
	if got := w.tenant.SnapshotOf(w.home).Application("scepman"); got == nil || got.AppID != home.AppID {
		t.Errorf("SnapshotOf(home) is not Snapshot")
	}
	r := w.graph(http.MethodPost, "/servicePrincipals", custTok, mustJSON(t, map[string]any{"appId": cust.AppID}), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("creating the service principal in the customer's tenant: %d %s", r.status, r.body)
	}
	if got := str(r.json(t), "appOwnerOrganizationId"); got != w.customer {
		t.Errorf("appOwnerOrganizationId = %q, want the customer's tenant %s", got, w.customer)
	}
	if w.tenant.Snapshot().ServicePrincipalByAppID(cust.AppID) != nil {
		t.Errorf("the customer's service principal is in the home tenant")
	}
	if r := w.graph(http.MethodGet, "/applications/"+cust.ID, homeTok, nil, nil); r.status != http.StatusNotFound {
		t.Errorf("the home tenant reads the customer's application: %d", r.status)
	}
	if r := w.graph(http.MethodGet, "/applications/"+cust.ID, custTok, nil, nil); r.status != http.StatusOK {
		t.Errorf("the customer reads its application: %d %s", r.status, r.body)
	}
	if r := w.vault(http.MethodPut, "/secrets/s1", custTok, []byte(`{"value":"v"}`)); r.status != http.StatusUnauthorized {
		t.Errorf("Key Vault with the customer's Graph token: %d, want 401", r.status)
	}
	w.tenant.MutateTenant(w.customer, func(s *State) { s.Application("scepman").Notes = "customer" })
	if w.tenant.Snapshot().Application("scepman").Notes != "" || w.tenant.SnapshotOf(w.customer).Application("scepman").Notes != "customer" {
		t.Errorf("MutateTenant changed the wrong directory")
	}
	w.tenant.Mutate(func(s *State) { s.Application("scepman").Notes = "home" })
	if w.tenant.SnapshotOf(w.customer).Application("scepman").Notes != "customer" {
		t.Errorf("Mutate changed the customer's directory")
	}
	w.tenant.MutateTenant(NewGUID(), func(*State) { t.Errorf("MutateTenant ran fn for an unknown tenant") })
	if got := w.tenant.Stats().ByTenant; got[w.customer] == 0 || got[w.home] == 0 || got[w.unconsented] != 0 {
		t.Errorf("ByTenant = %v, want requests of the customer and the home tenant only", got)
	}
}

func TestClientSecretPerTenant(t *testing.T) {
	w := newWorld(t)
	appID, secret := NewGUID(), newSecretText()
	w.tenant.MutateTenant(w.customer, func(s *State) {
		graph := s.ServicePrincipalByAppID(GraphAppID)
		s.Applications = append(s.Applications, Application{AppID: appID, DisplayName: "SCEPman", UniqueName: "scepman",
			PasswordCredentials: []PasswordCredential{{SecretText: secret, EndDateTime: time.Now().Add(time.Hour)}}})
		s.ServicePrincipals = append(s.ServicePrincipals, ServicePrincipal{ID: "6c1f0b8e-1d2e-4c3b-9a8f-7e6d5c4b3a29", AppID: appID, AccountEnabled: true})
		s.AppRoleAssignments = append(s.AppRoleAssignments, AppRoleAssignment{AppRoleID: "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
			PrincipalID: "6c1f0b8e-1d2e-4c3b-9a8f-7e6d5c4b3a29", ResourceID: graph.ID})
	})
	r := w.postForm(tokenURL(w.customer), clientCredentials(appID, secret, GraphAppID))
	if r.status != http.StatusOK {
		t.Fatalf("sign-in in the customer's tenant: %d %s", r.status, r.body)
	}
	c := jwtClaims(t, str(r.json(t), "access_token"))
	if str(c, "tid") != w.customer || str(c, "appidacr") != "1" || str(c, "iss") != issuer(w.customer) {
		t.Errorf("claims %v, want the customer's tenant and appidacr 1", c)
	}
	if roles, _ := c["roles"].([]any); len(roles) != 1 || roles[0] != "Directory.Read.All" {
		t.Errorf("roles %v, want [Directory.Read.All]", c["roles"])
	}
	r = w.postForm(tokenURL(w.home), clientCredentials(appID, secret, GraphAppID))
	checkEntraError(t, r, 400, "unauthorized_client", 700016, "Application with identifier '"+appID+"' was not found in the directory '"+w.home+"'.")
	r = w.call(http.MethodGet, "https://"+LoginHost+"/"+w.customer+"/v2.0/.well-known/openid-configuration", "", nil, nil)
	if r.status != http.StatusOK || str(r.json(t), "issuer") != FederatedIssuer(w.customer) {
		t.Errorf("OpenID configuration of the customer: %d %s", r.status, r.body)
	}
}

// TestTenantFaults: SetTenantDown and Fault.TenantID hit one tenant and leave the other alone.
func TestTenantFaults(t *testing.T) {
	w := newWorld(t)
	custTok, homeTok, vaultTok := w.federatedToken(w.customer, AudienceGraph), w.graphToken(), w.token(AudienceVault)
	assertion := w.token(AudienceTokenExchange)
	custGraph := func() reply {
		return w.graph(http.MethodGet, "/servicePrincipals(appId='"+GraphAppID+"')", custTok, nil, nil)
	}
	homeGraph := func() reply {
		return w.graph(http.MethodGet, "/servicePrincipals(appId='"+GraphAppID+"')", homeTok, nil, nil)
	}
	custLogin := func() reply {
		return w.postForm(tokenURL(w.customer), assertionForm(w.appID, assertion, AudienceGraph))
	}
	custConfig := func() reply {
		return w.call(http.MethodGet, "https://"+LoginHost+"/"+w.customer+"/v2.0/.well-known/openid-configuration", "", nil, nil)
	}
	homeVault := func() reply { return w.vault(http.MethodPut, "/secrets/s1", vaultTok, []byte(`{"value":"v"}`)) }
	type call struct {
		name   string
		do     func() reply
		status int
	}
	tests := []struct {
		name  string
		setup func()
		calls []call
	}{
		{"customer down", func() { w.tenant.SetTenantDown(w.customer, true) }, []call{
			{"customer Graph", custGraph, 503}, {"customer sign-in", custLogin, 503}, {"customer OpenID configuration", custConfig, 503},
			{"home Graph", homeGraph, 200}, {"home vault", homeVault, 200},
		}},
		{"customer up again", func() { w.tenant.SetTenantDown(w.customer, false) }, []call{
			{"customer Graph", custGraph, 200}, {"customer sign-in", custLogin, 200},
		}},
		{"home down: the vault still answers", func() { w.tenant.SetTenantDown(w.home, true) }, []call{
			{"home Graph", homeGraph, 503}, {"home vault", homeVault, 200}, {"customer Graph", custGraph, 200},
		}},
		{"customer throttled", func() {
			w.tenant.SetTenantDown(w.home, false)
			w.tenant.AddFault(Fault{TenantID: strings.ToUpper(w.customer), Service: ServiceGraph, Status: 429, RetryAfter: 2, Times: Always})
		}, []call{{"customer Graph", custGraph, 429}, {"home Graph", homeGraph, 200}, {"customer sign-in", custLogin, 200}}},
		{"home tenant fault reaches its vault", func() {
			w.tenant.ClearFaults()
			w.tenant.AddFault(Fault{TenantID: w.home, Service: ServiceKeyVault, Status: 500})
		}, []call{{"customer Graph", custGraph, 200}, {"home vault", homeVault, 500}, {"home vault again", homeVault, 200}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup()
			for _, c := range tt.calls {
				r := c.do()
				if r.status != c.status {
					t.Errorf("%s: %d %s, want %d", c.name, r.status, r.body, c.status)
				}
				if r.status == 503 && r.header.Get("Retry-After") != "0" {
					t.Errorf("%s: Retry-After %q, want 0", c.name, r.header.Get("Retry-After"))
				}
				if r.status == 429 && r.header.Get("Retry-After") != "2" {
					t.Errorf("%s: Retry-After %q, want 2", c.name, r.header.Get("Retry-After"))
				}
			}
		})
	}
	t.Run("the Graph error body", func(t *testing.T) {
		w.tenant.SetTenantDown(w.customer, true)
		t.Cleanup(func() { w.tenant.SetTenantDown(w.customer, false) })
		if r := custGraph(); r.errorCode(t) != "ServiceUnavailable" {
			t.Errorf("error %s, want ServiceUnavailable", r.body)
		}
		if r := custLogin(); str(r.json(t), "error") == "" {
			t.Errorf("sign-in answer %s, want an OAuth error body", r.body)
		}
	})
}

// TestSingleTenantStatsUnchanged: without other tenants, ByTenant counts the home tenant's Graph and
// token service requests, nothing else.
func TestSingleTenantStatsUnchanged(t *testing.T) {
	h := start(t, Options{})
	fx := newSignInFixture(t, h)
	tok := h.graphToken()
	h.graph(http.MethodGet, "/servicePrincipals(appId='"+GraphAppID+"')", tok, nil, nil)
	h.postForm(tokenURL(h.tenant.TenantID()), clientCredentials(fx.appID, fx.secret, GraphAppID))
	h.postForm(tokenURL(NewGUID()), clientCredentials(fx.appID, fx.secret, GraphAppID))
	h.vault(http.MethodGet, "/secrets/nothing", h.token(AudienceVault), nil)
	got := h.tenant.Stats().ByTenant
	if want := map[string]int{h.tenant.TenantID(): 2}; len(got) != 1 || got[h.tenant.TenantID()] != 2 {
		t.Errorf("ByTenant = %v, want %v", got, want)
	}
	if got := h.tenant.Tenants(); len(got) != 1 || got[0] != h.tenant.TenantID() {
		t.Errorf("Tenants() = %v, want the home tenant only", got)
	}
}

// TestExpireAndTamperAcrossTenants: the admin stand-ins of `make run` find the credential of an
// instance in a customer's tenant, whose secret lives in the home vault.
func TestExpireAndTamperAcrossTenants(t *testing.T) {
	w := newWorld(t)
	keyID, name := NewGUID(), "contoso-key"
	w.tenant.MutateTenant(w.customer, func(s *State) {
		s.Applications = append(s.Applications, Application{UniqueName: "scepman", PasswordCredentials: []PasswordCredential{
			{KeyID: keyID, SecretText: newSecretText(), StartDateTime: time.Now(), EndDateTime: time.Now().Add(365 * 24 * time.Hour)}}})
	})
	w.tenant.Mutate(func(s *State) {
		s.Secrets = append(s.Secrets, Secret{Name: name, Versions: []SecretVersion{{Value: "v", Enabled: true, Tags: map[string]string{"keyId": keyID}}}})
	})
	got, err := w.tenant.ExpireSecret(name, 20*24*time.Hour)
	if err != nil || got != keyID {
		t.Fatalf("ExpireSecret = %q, %v; want %s", got, err, keyID)
	}
	end := w.tenant.SnapshotOf(w.customer).Application("scepman").PasswordCredentials[0].EndDateTime
	if d := time.Until(end); d < 19*24*time.Hour || d > 21*24*time.Hour {
		t.Errorf("the customer's credential ends in %v, want about 20 days", d)
	}
	if _, err := w.tenant.TamperSecret(name); err != nil {
		t.Fatalf("TamperSecret: %v", err)
	}
	if start := w.tenant.SnapshotOf(w.customer).Application("scepman").PasswordCredentials[0].StartDateTime; time.Since(start) < 59*time.Minute {
		t.Errorf("TamperSecret did not age the customer's credential: start %v", start)
	}
}
