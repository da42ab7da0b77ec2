package emulator

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// ClientAssertionTypeJWTBearer is the client_assertion_type of a JWT client assertion.
const ClientAssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// RegisterFederatedApp creates, in the home tenant, a multi-tenant application (signInAudience
// AzureADMultipleOrgs) that trusts the managed identity: a federated identity credential with issuer
// FederatedIssuer(home), subject the identity's object id and audience api://AzureADTokenExchange. It
// also creates the application's service principal in the home tenant, and returns its client id
// (APPREG_FEDERATED_APP_ID). ConsentFederatedApp installs it in a tenant.
func (t *Tenant) RegisterFederatedApp(displayName string) (appID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	home := t.homeDir().state
	app := Application{
		ID: NewGUID(), AppID: NewGUID(), DisplayName: displayName, SignInAudience: "AzureADMultipleOrgs",
		FederatedIdentityCredentials: []FederatedIdentityCredential{{
			ID: NewGUID(), Name: "appreg-managed-identity", Issuer: FederatedIssuer(t.tenantID), Subject: t.identityObjectID,
			Audiences: []string{AudienceTokenExchange}, Description: "the function's managed identity",
		}},
		CreatedDateTime: t.now(),
	}
	home.Applications = append(home.Applications, app)
	home.ServicePrincipals = append(home.ServicePrincipals, ServicePrincipal{
		ID: NewGUID(), AppID: app.AppID, DisplayName: displayName, ServicePrincipalType: "Application",
		AppOwnerOrganizationID: t.tenantID, AccountEnabled: true,
	})
	return app.AppID
}

// ConsentFederatedApp is an administrator of tenantID consenting to the application appID of the home
// tenant (RegisterFederatedApp): the application's service principal in that directory (created unless it
// is there; appOwnerOrganizationId the home tenant) with the Microsoft Graph application permissions
// roles (values, e.g. Application.ReadWrite.OwnedBy) assigned to it. It may be called again to add roles;
// an unknown tenant, application or role is an error and changes nothing.
func (t *Tenant) ConsentFederatedApp(tenantID, appID string, roles ...string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.dir(tenantID)
	if d == nil {
		return fmt.Errorf("emulator: consenting to %s: the emulated world has no tenant %q", appID, tenantID)
	}
	app := t.homeDir().state.ApplicationByAppID(appID)
	if app == nil {
		return fmt.Errorf("emulator: consenting in %s: the home tenant has no application %q", tenantID, appID)
	}
	graph := d.state.ServicePrincipalByAppID(GraphAppID)
	if graph == nil {
		return fmt.Errorf("emulator: consenting in %s: the tenant has no Microsoft Graph service principal", tenantID)
	}
	graphID := graph.ID
	roleIDs := make([]string, 0, len(roles))
	for _, r := range roles {
		i := slices.IndexFunc(graph.AppRoles, func(ar AppRole) bool { return strings.EqualFold(ar.Value, r) })
		if i < 0 {
			return fmt.Errorf("emulator: consenting in %s: Microsoft Graph has no application permission %q", tenantID, r)
		}
		roleIDs = append(roleIDs, graph.AppRoles[i].ID)
	}
	sp := d.state.ServicePrincipalByAppID(appID)
	if sp == nil {
		d.state.ServicePrincipals = append(d.state.ServicePrincipals, ServicePrincipal{
			ID: NewGUID(), AppID: app.AppID, DisplayName: app.DisplayName, ServicePrincipalType: "Application",
			AppOwnerOrganizationID: t.tenantID, AccountEnabled: true,
		})
		sp = &d.state.ServicePrincipals[len(d.state.ServicePrincipals)-1]
	}
	spID, spName := sp.ID, sp.DisplayName
	for _, roleID := range roleIDs {
		if slices.ContainsFunc(d.state.AppRoleAssignments, func(a AppRoleAssignment) bool {
			return strings.EqualFold(a.PrincipalID, spID) && strings.EqualFold(a.ResourceID, graphID) && strings.EqualFold(a.AppRoleID, roleID)
		}) {
			continue
		}
		d.state.AppRoleAssignments = append(d.state.AppRoleAssignments, AppRoleAssignment{
			ID: newAssignmentID(), AppRoleID: roleID, PrincipalID: spID, PrincipalDisplayName: spName,
			PrincipalType: "ServicePrincipal", ResourceID: graphID, ResourceDisplayName: "Microsoft Graph", CreatedDateTime: t.now(),
		})
	}
	return nil
}

// federatedApplication finds the application of a client id for a sign-in to directory d: in d itself,
// else a multi-tenant application of another tenant of the world. It returns the application and the
// directory that holds it (nil, nil when there is none). Runs under t.mu.
func (t *Tenant) federatedApplication(clientID string, d *directory) (*Application, *directory) {
	if app := d.state.ApplicationByAppID(clientID); app != nil {
		return app, d
	}
	for _, other := range append([]*directory{t.homeDir()}, t.otherDirs()...) {
		if other == d {
			continue
		}
		if app := other.state.ApplicationByAppID(clientID); app != nil && app.SignInAudience != "" && app.SignInAudience != "AzureADMyOrg" {
			return app, other
		}
	}
	return nil, nil
}

// assertionClient checks a client-assertion sign-in to directory d (t.state): the assertion type, the
// application (in d, or a multi-tenant one installed in d), its service principal in d, the assertion
// (an emulator-signed JWT within its lifetime) and a federated identity credential of the application
// that matches the assertion's iss, sub and aud. It returns the client's service principal in d, or
// Entra's refusal. Runs under t.mu.
func (t *Tenant) assertionClient(req *request, d *directory, clientID, assertionType, assertion string) (*ServicePrincipal, *answer) {
	refuse := func(status int, code string, aadsts int, text string) (*ServicePrincipal, *answer) {
		t.logf("emulator: token service refuses the client assertion of %s in tenant %s: AADSTS%d", clientID, d.id, aadsts)
		ans := loginError(req, status, code, aadsts, text)
		return nil, &ans
	}
	switch {
	case assertionType == "":
		return refuse(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_assertion_type'.")
	case assertion == "":
		return refuse(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_assertion'.")
	case assertionType != ClientAssertionTypeJWTBearer:
		t.noteUnknownLocked("%s: client_assertion_type %q (the emulated token service serves %s)", req.target(), assertionType, ClientAssertionTypeJWTBearer)
		ans := loginError(req, http.StatusBadRequest, "invalid_request", 0, "The emulated token service does not serve client_assertion_type '"+assertionType+"'.")
		return nil, &ans
	}
	notFound := func() (*ServicePrincipal, *answer) {
		return refuse(http.StatusBadRequest, "unauthorized_client", 700016, appNotFoundText(clientID, d.id))
	}
	app, owner := t.federatedApplication(clientID, d)
	if app == nil || !visible(app.VisibleAt) {
		return notFound()
	}
	sp := d.state.ServicePrincipalByAppID(app.AppID)
	switch {
	case (sp == nil || !visible(sp.VisibleAt)) && owner != d:
		return notFound() // not installed (consented) in this tenant
	case sp == nil || !visible(sp.VisibleAt):
		return refuse(http.StatusUnauthorized, "invalid_client", 7000229, noServicePrincipalText(app.AppID, d.id))
	case !sp.AccountEnabled:
		return refuse(http.StatusBadRequest, "unauthorized_client", 7000112, appDisabledText(app))
	}
	c, err := parseToken(assertion)
	if err != nil {
		return refuse(http.StatusBadRequest, "invalid_request", 50027, "JWT token is invalid or malformed.")
	}
	now := time.Now()
	if now.Unix() >= c.Exp || now.Unix() < c.Nbf-300 {
		const layout = "2006-01-02T15:04:05.0000000Z"
		return refuse(http.StatusUnauthorized, "invalid_client", 700024, "Client assertion is not within its valid time range. Current time: "+
			now.UTC().Format(layout)+", assertion valid from "+time.Unix(c.Nbf, 0).UTC().Format(layout)+", expiry time of assertion "+
			time.Unix(c.Exp, 0).UTC().Format(layout)+". Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
	}
	if !slices.ContainsFunc(app.FederatedIdentityCredentials, func(f FederatedIdentityCredential) bool {
		return f.Issuer == c.Iss && f.Subject == c.Sub && slices.Contains(f.Audiences, c.Aud)
	}) {
		return refuse(http.StatusBadRequest, "invalid_request", 70021, "No matching federated identity record found for presented assertion. "+
			"Assertion Issuer: '"+c.Iss+"'. Assertion Subject: '"+c.Sub+"'. Assertion Audience: '"+c.Aud+"'. "+
			"https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation")
	}
	return sp, nil
}
