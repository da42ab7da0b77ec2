// Package graph is the Microsoft Graph adapter: it implements appreg.Directory with msgraph-sdk-go and
// is the only package of the project that imports msgraph-sdk-go or kiota (their build is expensive).
// Every failure is classified here, once, by HTTP status and OData error code, into a
// *appreg.ServiceError whose Kind is one of appreg's sentinels, and wrapped with what was being done.
//
// The kiota middleware chain is built explicitly, WITHOUT the compression handler: with it, a body
// retried after a 429 can go out with "Content-Encoding: gzip" over an uncompressed body
// (kiota-http-go #183), and the default chain's order is random (built from a map). The chain is, from
// the outside in: our status recorder, Graph telemetry (SdkVersion, client-request-id), the URL
// replacement of /users/me-token-to-replace, retry (429/503/504, honouring Retry-After), our error-body
// buffer, redirect, $-parameter name decoding, user agent, headers inspection; then the shared
// transport.
package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/google/uuid"
	abs "github.com/microsoft/kiota-abstractions-go"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	msgraphgocore "github.com/microsoftgraph/msgraph-sdk-go-core"
	msgraphauth "github.com/microsoftgraph/msgraph-sdk-go-core/authentication"
	"github.com/microsoftgraph/msgraph-sdk-go/applications"
	"github.com/microsoftgraph/msgraph-sdk-go/applicationswithuniquename"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"github.com/microsoftgraph/msgraph-sdk-go/serviceprincipals"
	"github.com/microsoftgraph/msgraph-sdk-go/serviceprincipalswithappid"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/azure"
)

// DefaultEndpoint is Microsoft Graph's root in the global cloud.
const DefaultEndpoint = "https://graph.microsoft.com"

// The Graph application permissions that a 403 names, per operation.
const (
	NeedApplicationOwnedBy  = "Application.ReadWrite.OwnedBy"
	NeedApplicationReadAll  = "Application.Read.All"
	NeedAppRoleAssignmentRW = "AppRoleAssignment.ReadWrite.All"
	NeedPolicyReadAll       = "Policy.Read.All"

	// roleApplicationReadWriteAll manages every application, owned or not.
	roleApplicationReadWriteAll = "Application.ReadWrite.All"
)

// maxPages bounds every paged read, in case a service keeps answering with a nextLink.
const maxPages = 1000

var (
	appSelect        = []string{"id", "appId", "displayName", "uniqueName", "signInAudience", "requiredResourceAccess", "passwordCredentials"}
	spSelect         = []string{"id", "appId", "displayName", "appRoles"}
	assignmentSelect = []string{"id", "principalId", "resourceId", "appRoleId"}
)

// Directory implements appreg.Directory on Microsoft Graph.
type Directory struct {
	client  *msgraphsdk.GraphServiceClient
	adapter *msgraphsdk.GraphRequestAdapter
	cred    azcore.TokenCredential
	scope   string

	mu       sync.Mutex
	tenantID string
	tokRoles []string // the roles claim of the token that gave tenantID
	tokRead  bool
}

var _ appreg.Directory = (*Directory)(nil)

// New returns the Graph adapter. endpoint is Graph's root (APPREG_GRAPH_ENDPOINT, "" for
// https://graph.microsoft.com); the adapter talks to endpoint+"/v1.0" with tokens for
// endpoint+"/.default", and sends a token to the endpoint's host only. Every request goes through
// hc's transport.
func New(cred azcore.TokenCredential, endpoint string, hc *http.Client) (*Directory, error) {
	if cred == nil {
		return nil, errors.New("graph: no credential")
	}
	root, host, err := normalizeEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	scope := root + "/.default"
	auth, err := msgraphauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, []string{scope}, []string{host})
	if err != nil {
		return nil, fmt.Errorf("graph: authentication provider: %w", err)
	}
	var parent http.RoundTripper = http.DefaultTransport
	if hc != nil && hc.Transport != nil {
		parent = hc.Transport
	}
	client := &http.Client{
		Transport: khttp.NewCustomTransportWithParentTransport(parent, middlewares()...),
		// The redirect middleware follows redirects; the client must hand them to it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if hc != nil {
		client.Jar = hc.Jar
	}
	adapter, err := msgraphsdk.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, client)
	if err != nil {
		return nil, fmt.Errorf("graph: request adapter: %w", err)
	}
	// Before NewGraphServiceClient, which copies the base URL into its path parameters.
	adapter.SetBaseUrl(root + "/v1.0")
	return &Directory{
		client:  msgraphsdk.NewGraphServiceClient(adapter),
		adapter: adapter,
		cred:    cred,
		scope:   scope,
	}, nil
}

func normalizeEndpoint(endpoint string) (root, host string, err error) {
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	u, perr := url.Parse(strings.TrimSpace(endpoint))
	switch {
	case perr != nil:
		return "", "", fmt.Errorf("graph endpoint %q is not a URL: %v", endpoint, perr)
	case u.Scheme != "https":
		return "", "", fmt.Errorf("graph endpoint %q must start with https:// (e.g. %s)", endpoint, DefaultEndpoint)
	case u.Hostname() == "":
		return "", "", fmt.Errorf("graph endpoint %q has no host (e.g. %s)", endpoint, DefaultEndpoint)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return "", "", fmt.Errorf("graph endpoint %q must be Graph's root URL only (e.g. %s)", endpoint, DefaultEndpoint)
	}
	h := strings.ToLower(u.Host)
	return "https://" + h, strings.ToLower(u.Hostname()), nil
}

// middlewares is kiota's default chain (msgraphgocore.GetDefaultMiddlewaresWithOptions) in a fixed
// order, without the compression handler, with our status recorder outermost.
func middlewares() []khttp.Middleware {
	opts := msgraphsdk.GetDefaultClientOptions()
	return []khttp.Middleware{
		statusRecorder{},
		msgraphgocore.NewGraphTelemetryHandler(&opts),
		khttp.NewUrlReplaceHandler(true, msgraphgocore.ReplacementPairs),
		khttp.NewRetryHandler(),
		errorBodyBuffer{},
		khttp.NewRedirectHandler(),
		khttp.NewParametersNameDecodingHandler(),
		khttp.NewUserAgentHandler(),
		khttp.NewHeadersInspectionHandler(),
	}
}

// answer is what the status recorder saw of the final response of one call (after retries).
type answer struct {
	mu          sync.Mutex
	status      int
	contentType string
}

func (a *answer) get() (int, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status, a.contentType
}

type answerKey struct{}

// statusRecorder records the final status of a call in the *answer its context carries. kiota tells a
// 201 with a body from a 204 only by whether Send returns an object, and loses the status entirely
// when an error body cannot be parsed (e.g. an HTML page from a gateway): the recorder keeps it.
type statusRecorder struct{}

func (statusRecorder) Intercept(p khttp.Pipeline, i int, req *http.Request) (*http.Response, error) {
	resp, err := p.Next(req, i)
	if a, ok := req.Context().Value(answerKey{}).(*answer); ok && resp != nil {
		a.mu.Lock()
		a.status, a.contentType = resp.StatusCode, resp.Header.Get("Content-Type")
		a.mu.Unlock()
	}
	return resp, err
}

// maxErrorBody bounds the error bodies errorBodyBuffer keeps.
const maxErrorBody = 1 << 20

// errorBodyBuffer reads an error answer's body into memory and closes the connection's body at once.
// kiota's retry handler drops the answer of a try it retries without closing its body, which would keep
// the connection (or HTTP/2 stream) busy; with the body buffered, nothing is held.
type errorBodyBuffer struct{}

func (errorBodyBuffer) Intercept(p khttp.Pipeline, i int, req *http.Request) (*http.Response, error) {
	resp, err := p.Next(req, i)
	if err != nil || resp == nil || resp.StatusCode < 400 || resp.Body == nil {
		return resp, err
	}
	b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	if rerr != nil {
		return nil, rerr
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	return resp, nil
}

// op describes one operation for error classification.
type op struct {
	what     string // "adding password to application 123"
	need     string // the permission a 403 means is missing
	write    bool   // our own write: a missing referenced object means replication delay
	owned    bool   // a write to our application, which Application.ReadWrite.OwnedBy allows only to its owner
	spCreate bool   // creating a service principal
	assign   bool   // granting an app role
}

func (d *Directory) start(ctx context.Context) (context.Context, *answer) {
	a := &answer{}
	return context.WithValue(ctx, answerKey{}, a), a
}

// TenantID is the tid claim of a Graph access token of our credential, read once.
func (d *Directory) TenantID(ctx context.Context) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tenantID != "" {
		return d.tenantID, nil
	}
	tok, err := d.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{d.scope}})
	if err != nil {
		return "", fmt.Errorf("getting an access token for Microsoft Graph: %w", d.classify(ctx, op{what: "getting a token"}, nil, err))
	}
	tid, err := azure.TenantIDFromToken(tok.Token)
	if err != nil {
		return "", fmt.Errorf("reading the tenant id: %w", err)
	}
	d.tenantID = tid
	d.tokRoles, d.tokRead = rolesOf(tok.Token), true
	return tid, nil
}

// roles is the roles claim of the credential's Graph token: the application permissions the identity
// holds (as of that token; a managed identity's token is cached for up to 24 h). ok is false when no
// token could be read. The token comes from the credential's cache, so this costs no request once
// TenantID ran.
func (d *Directory) roles(ctx context.Context) ([]string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tokRead {
		return d.tokRoles, true
	}
	tok, err := d.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{d.scope}})
	if err != nil {
		return nil, false
	}
	d.tokRoles, d.tokRead = rolesOf(tok.Token), true
	return d.tokRoles, true
}

// rolesOf is the roles claim of a token, nil when it has none or is not a JWT.
func rolesOf(token string) []string {
	c, err := azure.ClaimsOf(token)
	if err != nil {
		return nil
	}
	return c.Roles
}

// quoteKey escapes a string for an OData key literal ('…').
func quoteKey(s string) string { return strings.ReplaceAll(s, "'", "''") }

// Application reads the application by uniqueName.
func (d *Directory) Application(ctx context.Context, uniqueName string) (appreg.Application, error) {
	o := op{what: fmt.Sprintf("reading application %s", uniqueName), need: NeedApplicationOwnedBy}
	ctx, a := d.start(ctx)
	key := quoteKey(uniqueName)
	res, err := d.client.ApplicationsWithUniqueName(&key).Get(ctx, &applicationswithuniquename.ApplicationsWithUniqueNameRequestBuilderGetRequestConfiguration{
		QueryParameters: &applicationswithuniquename.ApplicationsWithUniqueNameRequestBuilderGetQueryParameters{Select: appSelect},
	})
	if err != nil {
		return appreg.Application{}, fmt.Errorf("%s: %w", o.what, d.classify(ctx, o, a, err))
	}
	if res == nil {
		return appreg.Application{}, fmt.Errorf("%s: %w", o.what, noObject(a))
	}
	return fromApplication(res), nil
}

// UpsertApplication creates (created=true, Graph answered 201 with the object) or updates (204) the
// application with that uniqueName, with PATCH and "Prefer: create-if-missing".
func (d *Directory) UpsertApplication(ctx context.Context, uniqueName string, spec appreg.AppSpec) (bool, error) {
	o := op{what: fmt.Sprintf("creating or updating application %s", uniqueName), need: NeedApplicationOwnedBy, write: true, owned: true}
	body := models.NewApplication()
	displayName, audience := spec.DisplayName, spec.SignInAudience
	body.SetDisplayName(&displayName)
	if audience != "" {
		body.SetSignInAudience(&audience)
	}
	rra, err := toRequiredResourceAccess(spec.RequiredResourceAccess)
	if err != nil {
		return false, fmt.Errorf("%s: %w", o.what, err)
	}
	body.SetRequiredResourceAccess(rra)
	headers := abs.NewRequestHeaders()
	headers.Add("Prefer", "create-if-missing")
	ctx, a := d.start(ctx)
	key := quoteKey(uniqueName)
	res, err := d.client.ApplicationsWithUniqueName(&key).Patch(ctx, body, &applicationswithuniquename.ApplicationsWithUniqueNameRequestBuilderPatchRequestConfiguration{Headers: headers})
	if err != nil {
		return false, fmt.Errorf("%s: %w", o.what, d.classify(ctx, o, a, err))
	}
	status, _ := a.get()
	switch status {
	case http.StatusCreated:
		return true, nil
	case http.StatusNoContent, http.StatusOK:
		return false, nil
	default:
		// No recorded status (cannot happen with our chain): fall back on kiota's view, where a 204
		// returns no object and a 201 returns the created one.
		return res != nil, nil
	}
}

// AddPassword adds a client secret and returns it with its value, which Graph shows only once.
func (d *Directory) AddPassword(ctx context.Context, objectID, displayName string, end time.Time) (appreg.PasswordCredential, string, error) {
	o := op{what: fmt.Sprintf("adding password to application %s", objectID), need: NeedApplicationOwnedBy, write: true, owned: true}
	pc := models.NewPasswordCredential()
	pc.SetDisplayName(&displayName)
	if !end.IsZero() {
		e := end.UTC()
		pc.SetEndDateTime(&e)
	}
	body := applications.NewItemAddPasswordPostRequestBody()
	body.SetPasswordCredential(pc)
	ctx, a := d.start(ctx)
	res, err := d.client.Applications().ByApplicationId(objectID).AddPassword().Post(ctx, body, nil)
	if err != nil {
		return appreg.PasswordCredential{}, "", fmt.Errorf("%s: %w", o.what, d.classify(ctx, o, a, err))
	}
	if res == nil || res.GetSecretText() == nil || res.GetKeyId() == nil {
		return appreg.PasswordCredential{}, "", fmt.Errorf("%s: %w", o.what, noObject(a))
	}
	secret := *res.GetSecretText()
	return fromPassword(res), secret, nil
}

// RemovePassword removes a client secret.
func (d *Directory) RemovePassword(ctx context.Context, objectID, keyID string) error {
	o := op{what: fmt.Sprintf("removing password %s from application %s", keyID, objectID), need: NeedApplicationOwnedBy, owned: true}
	id, err := uuid.Parse(keyID)
	if err != nil {
		return fmt.Errorf("%s: %w", o.what, rejected(fmt.Sprintf("keyId %q is not a GUID", keyID)))
	}
	body := applications.NewItemRemovePasswordPostRequestBody()
	body.SetKeyId(&id)
	ctx, a := d.start(ctx)
	if err := d.client.Applications().ByApplicationId(objectID).RemovePassword().Post(ctx, body, nil); err != nil {
		return fmt.Errorf("%s: %w", o.what, d.classify(ctx, o, a, err))
	}
	return nil
}

// ServicePrincipal reads the service principal of an appId, with its app roles.
func (d *Directory) ServicePrincipal(ctx context.Context, appID string) (appreg.ServicePrincipal, error) {
	o := op{what: fmt.Sprintf("reading the service principal of %s", appID), need: NeedApplicationReadAll}
	ctx, a := d.start(ctx)
	key := quoteKey(appID)
	res, err := d.client.ServicePrincipalsWithAppId(&key).Get(ctx, &serviceprincipalswithappid.ServicePrincipalsWithAppIdRequestBuilderGetRequestConfiguration{
		QueryParameters: &serviceprincipalswithappid.ServicePrincipalsWithAppIdRequestBuilderGetQueryParameters{Select: spSelect},
	})
	if err != nil {
		return appreg.ServicePrincipal{}, fmt.Errorf("%s: %w", o.what, d.classify(ctx, o, a, err))
	}
	if res == nil {
		return appreg.ServicePrincipal{}, fmt.Errorf("%s: %w", o.what, noObject(a))
	}
	return fromServicePrincipal(res), nil
}

// CreateServicePrincipal creates the service principal of an appId.
func (d *Directory) CreateServicePrincipal(ctx context.Context, appID string) (appreg.ServicePrincipal, error) {
	o := op{what: fmt.Sprintf("creating the service principal of %s", appID), need: NeedApplicationOwnedBy, write: true, owned: true, spCreate: true}
	body := models.NewServicePrincipal()
	id := appID
	body.SetAppId(&id)
	ctx, a := d.start(ctx)
	res, err := d.client.ServicePrincipals().Post(ctx, body, nil)
	if err != nil {
		return appreg.ServicePrincipal{}, fmt.Errorf("%s: %w", o.what, d.classify(ctx, o, a, err))
	}
	if res == nil {
		return appreg.ServicePrincipal{}, fmt.Errorf("%s: %w", o.what, noObject(a))
	}
	return fromServicePrincipal(res), nil
}

// AppRoleAssignments lists the app role assignments granted to a service principal, following
// @odata.nextLink through every page.
func (d *Directory) AppRoleAssignments(ctx context.Context, principalID string) ([]appreg.AppRoleAssignment, error) {
	o := op{what: fmt.Sprintf("listing the app role assignments of service principal %s", principalID), need: NeedApplicationReadAll}
	builder := d.client.ServicePrincipals().ByServicePrincipalId(principalID).AppRoleAssignments()
	cfg := &serviceprincipals.ItemAppRoleAssignmentsRequestBuilderGetRequestConfiguration{
		QueryParameters: &serviceprincipals.ItemAppRoleAssignmentsRequestBuilderGetQueryParameters{Select: assignmentSelect},
	}
	return d.assignmentPages(ctx, o, builder, cfg, 0)
}

// assignmentPages reads the pages of an assignment list from builder on; page counts the pages read
// before (maxPages bounds them all).
func (d *Directory) assignmentPages(ctx context.Context, o op, builder *serviceprincipals.ItemAppRoleAssignmentsRequestBuilder,
	cfg *serviceprincipals.ItemAppRoleAssignmentsRequestBuilderGetRequestConfiguration, page int) ([]appreg.AppRoleAssignment, error) {
	var out []appreg.AppRoleAssignment
	for ; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("%s: %w", o.what, rejected(fmt.Sprintf("more than %d pages", maxPages)))
		}
		pctx, a := d.start(ctx)
		res, err := builder.Get(pctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.what, d.classify(pctx, o, a, err))
		}
		if res == nil {
			return nil, fmt.Errorf("%s: %w", o.what, noObject(a))
		}
		for _, v := range res.GetValue() {
			if v != nil {
				out = append(out, fromAssignment(v))
			}
		}
		next := res.GetOdataNextLink()
		if next == nil || *next == "" {
			return out, nil
		}
		// The next link carries the query of the first request; no configuration is added to it.
		builder = builder.WithUrl(*next)
		cfg = nil
	}
}

// AssignAppRole grants an app role to principalID on the resource service principal resourceID.
func (d *Directory) AssignAppRole(ctx context.Context, principalID, resourceID, appRoleID string) (appreg.AppRoleAssignment, error) {
	o := op{what: fmt.Sprintf("assigning app role %s of %s to %s", appRoleID, resourceID, principalID), need: NeedAppRoleAssignmentRW, write: true, assign: true}
	ids := make([]uuid.UUID, 3)
	for i, s := range []string{principalID, resourceID, appRoleID} {
		id, err := uuid.Parse(s)
		if err != nil {
			return appreg.AppRoleAssignment{}, fmt.Errorf("%s: %w", o.what, rejected(fmt.Sprintf("%q is not a GUID", s)))
		}
		ids[i] = id
	}
	body := models.NewAppRoleAssignment()
	body.SetPrincipalId(&ids[0])
	body.SetResourceId(&ids[1])
	body.SetAppRoleId(&ids[2])
	ctx, a := d.start(ctx)
	res, err := d.client.ServicePrincipals().ByServicePrincipalId(resourceID).AppRoleAssignedTo().Post(ctx, body, nil)
	if err != nil {
		return appreg.AppRoleAssignment{}, fmt.Errorf("%s: %w", o.what, d.classify(ctx, o, a, err))
	}
	if res == nil {
		return appreg.AppRoleAssignment{}, fmt.Errorf("%s: %w", o.what, noObject(a))
	}
	return fromAssignment(res), nil
}

// RemoveAppRoleAssignment revokes an app role assignment granted to principalID.
func (d *Directory) RemoveAppRoleAssignment(ctx context.Context, principalID, assignmentID string) error {
	o := op{what: fmt.Sprintf("removing app role assignment %s of service principal %s", assignmentID, principalID), need: NeedAppRoleAssignmentRW}
	ctx, a := d.start(ctx)
	err := d.client.ServicePrincipals().ByServicePrincipalId(principalID).AppRoleAssignments().ByAppRoleAssignmentId(assignmentID).Delete(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", o.what, d.classify(ctx, o, a, err))
	}
	return nil
}

// MaxPasswordLifetime reads the tenant's default app management policy: the shortest maxLifetime of its
// enabled passwordLifetime restrictions on applications, 0 when the policy is disabled or sets none.
// restrictForAppsCreatedAfterDateTime is ignored: applying a restriction that might not apply to our
// application only makes secrets shorter-lived, which is safe.
//
// The body is read raw and parsed here, because kiota's ISO-8601 duration parser does not anchor its
// pattern and requires a fraction on seconds ("PT30S" does not parse).
func (d *Directory) MaxPasswordLifetime(ctx context.Context) (time.Duration, error) {
	o := op{what: "reading the default app management policy", need: NeedPolicyReadAll}
	ri, err := d.client.Policies().DefaultAppManagementPolicy().ToGetRequestInformation(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", o.what, err)
	}
	ctx, a := d.start(ctx)
	raw, err := d.adapter.SendPrimitive(ctx, ri, "[]byte", abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", o.what, d.classify(ctx, o, a, err))
	}
	body, _ := raw.([]byte)
	if len(body) == 0 {
		return 0, fmt.Errorf("%s: %w", o.what, noObject(a))
	}
	max, err := parsePolicy(body)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", o.what, &appreg.ServiceError{Service: appreg.ServiceGraph, Kind: appreg.ErrRejected, Message: err.Error()})
	}
	return max, nil
}

type policyDoc struct {
	IsEnabled               *bool `json:"isEnabled"`
	ApplicationRestrictions *struct {
		PasswordCredentials []struct {
			RestrictionType string  `json:"restrictionType"`
			MaxLifetime     *string `json:"maxLifetime"`
			State           string  `json:"state"`
		} `json:"passwordCredentials"`
	} `json:"applicationRestrictions"`
}

func parsePolicy(body []byte) (time.Duration, error) {
	var doc policyDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return 0, fmt.Errorf("the policy is not JSON: %v", err)
	}
	if doc.IsEnabled != nil && !*doc.IsEnabled || doc.ApplicationRestrictions == nil {
		return 0, nil
	}
	var max time.Duration
	for _, r := range doc.ApplicationRestrictions.PasswordCredentials {
		if !strings.EqualFold(r.RestrictionType, "passwordLifetime") || strings.EqualFold(r.State, "disabled") ||
			r.MaxLifetime == nil || *r.MaxLifetime == "" {
			continue
		}
		d, err := ParseISODuration(*r.MaxLifetime)
		if err != nil {
			return 0, fmt.Errorf("maxLifetime %q: %v", *r.MaxLifetime, err)
		}
		if d > 0 && (max == 0 || d < max) {
			max = d
		}
	}
	return max, nil
}

// ParseISODuration parses an ISO-8601 duration such as P90D, P1Y, P6M, P2W, PT12H or P1DT0.5S. A year
// counts 365 days and a month 30 days (the policy's lifetimes are in days in practice), so the result
// never exceeds the policy's intent by more than a day per month.
func ParseISODuration(s string) (time.Duration, error) {
	orig := s
	if !strings.HasPrefix(s, "P") || len(s) < 3 {
		return 0, fmt.Errorf("not an ISO-8601 duration: %q", orig)
	}
	s = s[1:]
	const day = 24 * time.Hour
	units := map[byte]time.Duration{'Y': 365 * day, 'M': 30 * day, 'W': 7 * day, 'D': day}
	timeUnits := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second}
	var total time.Duration
	inTime := false
	seen := false
	for len(s) > 0 {
		if s[0] == 'T' {
			if inTime || len(s) == 1 {
				return 0, fmt.Errorf("not an ISO-8601 duration: %q", orig)
			}
			inTime = true
			s = s[1:]
			continue
		}
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.' || s[i] == ',') {
			i++
		}
		if i == 0 || i == len(s) {
			return 0, fmt.Errorf("not an ISO-8601 duration: %q", orig)
		}
		num := strings.ReplaceAll(s[:i], ",", ".")
		var f float64
		if _, err := fmt.Sscanf(num, "%g", &f); err != nil {
			return 0, fmt.Errorf("not an ISO-8601 duration: %q", orig)
		}
		table := units
		if inTime {
			table = timeUnits
		}
		unit, ok := table[s[i]]
		if !ok {
			return 0, fmt.Errorf("not an ISO-8601 duration: %q", orig)
		}
		total += time.Duration(f * float64(unit))
		seen = true
		s = s[i+1:]
	}
	if !seen {
		return 0, fmt.Errorf("not an ISO-8601 duration: %q", orig)
	}
	return total, nil
}

// ---- conversions ----

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func uuidStr(p *uuid.UUID) string {
	if p == nil {
		return ""
	}
	return p.String()
}

func tm(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return p.UTC()
}

func fromApplication(m models.Applicationable) appreg.Application {
	app := appreg.Application{
		ObjectID:       str(m.GetId()),
		AppID:          str(m.GetAppId()),
		DisplayName:    str(m.GetDisplayName()),
		UniqueName:     str(m.GetUniqueName()),
		SignInAudience: str(m.GetSignInAudience()),
	}
	for _, r := range m.GetRequiredResourceAccess() {
		if r == nil {
			continue
		}
		ra := appreg.ResourceAccess{ResourceAppID: str(r.GetResourceAppId())}
		for _, acc := range r.GetResourceAccess() {
			if acc == nil {
				continue
			}
			ra.Access = append(ra.Access, appreg.Access{ID: uuidStr(acc.GetId()), Type: str(acc.GetTypeEscaped())})
		}
		app.RequiredResourceAccess = append(app.RequiredResourceAccess, ra)
	}
	for _, p := range m.GetPasswordCredentials() {
		if p != nil {
			app.Passwords = append(app.Passwords, fromPassword(p))
		}
	}
	return app
}

func fromPassword(p models.PasswordCredentialable) appreg.PasswordCredential {
	return appreg.PasswordCredential{
		KeyID:       uuidStr(p.GetKeyId()),
		DisplayName: str(p.GetDisplayName()),
		Hint:        str(p.GetHint()),
		Start:       tm(p.GetStartDateTime()),
		End:         tm(p.GetEndDateTime()),
	}
}

func toRequiredResourceAccess(in []appreg.ResourceAccess) ([]models.RequiredResourceAccessable, error) {
	out := make([]models.RequiredResourceAccessable, 0, len(in))
	for _, r := range in {
		m := models.NewRequiredResourceAccess()
		appID := r.ResourceAppID
		m.SetResourceAppId(&appID)
		accs := make([]models.ResourceAccessable, 0, len(r.Access))
		for _, a := range r.Access {
			id, err := uuid.Parse(a.ID)
			if err != nil {
				return nil, rejected(fmt.Sprintf("permission id %q is not a GUID", a.ID))
			}
			acc := models.NewResourceAccess()
			typ := a.Type
			acc.SetId(&id)
			acc.SetTypeEscaped(&typ)
			accs = append(accs, acc)
		}
		m.SetResourceAccess(accs)
		out = append(out, m)
	}
	return out, nil
}

func fromServicePrincipal(m models.ServicePrincipalable) appreg.ServicePrincipal {
	sp := appreg.ServicePrincipal{
		ID:          str(m.GetId()),
		AppID:       str(m.GetAppId()),
		DisplayName: str(m.GetDisplayName()),
	}
	for _, r := range m.GetAppRoles() {
		if r == nil {
			continue
		}
		sp.AppRoles = append(sp.AppRoles, appreg.AppRole{
			ID:                 uuidStr(r.GetId()),
			Value:              str(r.GetValue()),
			Enabled:            r.GetIsEnabled() != nil && *r.GetIsEnabled(),
			AllowedMemberTypes: append([]string(nil), r.GetAllowedMemberTypes()...),
		})
	}
	return sp
}

func fromAssignment(m models.AppRoleAssignmentable) appreg.AppRoleAssignment {
	return appreg.AppRoleAssignment{
		ID:          str(m.GetId()),
		PrincipalID: uuidStr(m.GetPrincipalId()),
		ResourceID:  uuidStr(m.GetResourceId()),
		AppRoleID:   uuidStr(m.GetAppRoleId()),
	}
}
