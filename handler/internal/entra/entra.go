// Package entra is the adapter of Entra ID's token service for the sign-in check: it signs an application
// in with a client secret, the way SCEPman does (azidentity's client-secret credential: the
// client-credentials grant at {authority}/{tenant}/oauth2/v2.0/token), reads the roles claim of the token
// and drops the token at once. It implements appreg.SignIn and classifies every failure, once, into
// appreg's sentinels: a refusal is ErrSignInRefused with the AADSTS code.
//
// A new credential is built for every sign-in, so that nothing is served from a token cache: each check
// asks the token service. What azidentity reads before the token request (the tenant's OpenID
// configuration) does not change, so the transport keeps it for a day: a sign-in then costs one request.
package entra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/azure"
)

// Client signs applications in at one authority host.
type Client struct {
	authority string
	transport *http.Client
}

var _ appreg.SignIn = (*Client)(nil)

// New returns the sign-in adapter for authorityHost (AZURE_AUTHORITY_HOST, e.g.
// https://login.microsoftonline.com). Every request goes through hc's transport.
func New(authorityHost string, hc *http.Client) *Client {
	var base http.RoundTripper = http.DefaultTransport
	if hc != nil && hc.Transport != nil {
		base = hc.Transport
	}
	return &Client{
		authority: strings.TrimRight(authorityHost, "/") + "/",
		transport: &http.Client{Transport: &metadataCache{next: base, ttl: metadataTTL, entries: map[string]cached{}, fetching: map[string]*sync.Mutex{}}},
	}
}

// SignIn signs clientID in to tenantID with secret for resource and returns the token's roles claim.
func (c *Client) SignIn(ctx context.Context, tenantID, clientID string, secret appreg.SecretValue, resource string) ([]string, error) {
	what := fmt.Sprintf("signing in as application %s for %s", clientID, resource)
	cred, err := azidentity.NewClientSecretCredential(tenantID, clientID, secret.Reveal(), &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: c.transport,
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: c.authority},
		},
		// The authority is known (AZURE_AUTHORITY_HOST): no instance discovery request.
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, &appreg.ServiceError{Service: appreg.ServiceSignIn, Kind: appreg.ErrRejected, Message: err.Error()})
	}
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{resource + "/.default"}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, classify(ctx, err))
	}
	return rolesOf(tok.Token), nil
}

// rolesOf is the roles claim of a token, nil when it has none or is not a JWT.
func rolesOf(token string) []string {
	c, err := azure.ClaimsOf(token)
	if err != nil {
		return nil
	}
	return c.Roles
}

// tokenError is the token service's error JSON.
type tokenError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Codes       []int  `json:"error_codes"`
}

// classify turns a failed sign-in into a *appreg.ServiceError: a refusal of the application or its
// secret (400/401 with an AADSTS code) is ErrSignInRefused; 429 ErrThrottled; 5xx or no answer
// ErrUnavailable. The end of the caller's context is returned as it is.
func classify(ctx context.Context, err error) error {
	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) || afe.RawResponse == nil {
		se, ok := azure.ClassifyFailure(ctx, appreg.ServiceSignIn, err)
		if !ok {
			return err
		}
		if se.Kind != appreg.ErrUnavailable && se.Kind != appreg.ErrThrottled {
			// MSAL flattens a transport failure into text: no answer from the token service.
			se.Kind = appreg.ErrUnavailable
		}
		se.Service = appreg.ServiceSignIn
		return se
	}
	status := afe.RawResponse.StatusCode
	se := &appreg.ServiceError{Service: appreg.ServiceSignIn, Status: status}
	if body, perr := runtime.Payload(afe.RawResponse); perr == nil {
		var te tokenError
		if json.Unmarshal(body, &te) == nil {
			se.Message = firstLine(te.Description)
			if len(te.Codes) > 0 {
				se.Code = fmt.Sprintf("AADSTS%d", te.Codes[0])
			} else {
				se.Code = te.Error
			}
			se.Message = strings.TrimSpace(strings.TrimPrefix(se.Message, se.Code+":"))
		}
	}
	switch {
	case status == http.StatusTooManyRequests:
		se.Kind = appreg.ErrThrottled
	case status >= 500:
		se.Kind = appreg.ErrUnavailable
	case status == http.StatusBadRequest || status == http.StatusUnauthorized:
		se.Kind = appreg.ErrSignInRefused
	default:
		se.Kind = appreg.ErrRejected
	}
	return se
}

// firstLine is the first line of the token service's description, without its trace and correlation ids.
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, " Trace ID:"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// metadataTTL is how long the token service's metadata is kept.
const metadataTTL = 24 * time.Hour

// metadataCache is a transport that keeps the successful answers of the token service's metadata GETs
// (the tenant's OpenID configuration and instance discovery), which azidentity reads before every first
// token request of a new credential, so that only the token request itself goes out each time.
type metadataCache struct {
	next    http.RoundTripper
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]cached
	// fetching lets one GET of each key out at a time: sign-ins that start together (one per resource)
	// wait for the first one's answer instead of fetching it again. Other tenants and cached answers do
	// not wait.
	fetching map[string]*sync.Mutex
}

type cached struct {
	status int
	header http.Header
	body   []byte
	at     time.Time
}

func isMetadata(r *http.Request) bool {
	return r.Method == http.MethodGet &&
		(strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") || strings.HasSuffix(r.URL.Path, "/discovery/instance"))
}

// cached answers r from the cache when it holds a fresh answer for key.
func (m *metadataCache) cached(key string, r *http.Request) (*http.Response, bool) {
	m.mu.Lock()
	e, ok := m.entries[key]
	m.mu.Unlock()
	if !ok || time.Since(e.at) >= m.ttl {
		return nil, false
	}
	return &http.Response{StatusCode: e.status, Status: http.StatusText(e.status), Header: e.header.Clone(),
		Body: io.NopCloser(bytes.NewReader(e.body)), ContentLength: int64(len(e.body)), Request: r,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, true
}

// RoundTrip serves a metadata GET from the cache when it can.
func (m *metadataCache) RoundTrip(r *http.Request) (*http.Response, error) {
	if !isMetadata(r) {
		return m.next.RoundTrip(r)
	}
	key := r.URL.String()
	if resp, ok := m.cached(key, r); ok {
		return resp, nil
	}
	m.mu.Lock()
	fetch, ok := m.fetching[key]
	if !ok {
		fetch = &sync.Mutex{}
		m.fetching[key] = fetch
	}
	m.mu.Unlock()
	fetch.Lock()
	defer fetch.Unlock()
	if resp, ok := m.cached(key, r); ok { // fetched while this one waited
		return resp, nil
	}
	resp, err := m.next.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.entries[key] = cached{status: resp.StatusCode, header: resp.Header.Clone(), body: body, at: time.Now()}
	m.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}
