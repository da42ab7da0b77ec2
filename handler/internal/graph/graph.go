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
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	msgraphgocore "github.com/microsoftgraph/msgraph-sdk-go-core"
	msgraphauth "github.com/microsoftgraph/msgraph-sdk-go-core/authentication"

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
	tok, err := d.cred.GetToken(ctx, d.tokenOptions())
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

// tokenOptions ask for the token the SDK's authentication provider asks for (kiota enables continuous
// access evaluation), so that the credential's cache answers both: azidentity keeps CAE and other tokens
// apart, and a client-assertion credential would otherwise exchange twice per tenant.
func (d *Directory) tokenOptions() policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: []string{d.scope}, EnableCAE: true}
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
	tok, err := d.cred.GetToken(ctx, d.tokenOptions())
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
