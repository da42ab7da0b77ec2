// Package azure builds what every Azure SDK client of the function app shares: one *http.Client whose
// proxy and trust come from the (injected) environment, and the token credential (the Functions
// platform's managed identity, or DefaultAzureCredential on a developer machine). It also holds the
// small helpers that the Graph and Key Vault adapters share: reading the tenant id from an access token
// and classifying failures that happened before any service answered.
//
// About the managed identity and the environment: azidentity decides which managed identity protocol to
// speak, and MSAL builds every App Service token request, from the PROCESS environment: MSAL's
// managedidentity.GetSource reads IDENTITY_ENDPOINT, IDENTITY_HEADER, IDENTITY_SERVER_THUMBPRINT,
// MSI_ENDPOINT, MSI_SECRET and IMDS_ENDPOINT with os.Getenv when the credential is built, and
// createAppServiceAuthRequest reads IDENTITY_ENDPOINT and IDENTITY_HEADER with os.Getenv again for every
// token request (microsoft-authentication-library-for-go apps/managedidentity/managedidentity.go). There
// is no option to pass them in. So the getenv given to NewCredential only decides WHICH credential is
// built; the endpoint and header that are used are always the process's. NewCredential therefore refuses
// an injected IDENTITY_ENDPOINT or IDENTITY_HEADER that differs from the process environment, instead of
// letting MSAL silently fall back to IMDS (169.254.169.254) and time out. Tests set both with t.Setenv.
// MSAL's managed identity token cache is process-wide too (keyed by the identity's client id and the
// resource): every credential in one process shares it.
package azure

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"golang.org/x/net/http/httpproxy"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
)

// Environment variables read through the injected getenv.
const (
	EnvHTTPSProxy       = "HTTPS_PROXY"
	EnvHTTPProxy        = "HTTP_PROXY"
	EnvNoProxy          = "NO_PROXY"
	EnvSSLCertFile      = "SSL_CERT_FILE"
	EnvIdentityEndpoint = "IDENTITY_ENDPOINT"
	EnvIdentityHeader   = "IDENTITY_HEADER"
	EnvClientID         = "AZURE_CLIENT_ID"
)

// Transport timeouts. There is deliberately no overall client timeout: the caller's context bounds
// every call, including the SDKs' retries.
const (
	DialTimeout           = 30 * time.Second
	TLSHandshakeTimeout   = 15 * time.Second
	ResponseHeaderTimeout = 60 * time.Second
	IdleConnTimeout       = 90 * time.Second
)

// NewHTTPClient returns the one HTTP client that every SDK client uses. Its transport is a clone of
// http.DefaultTransport whose proxy follows HTTPS_PROXY, HTTP_PROXY and NO_PROXY (or their lower-case
// forms; loopback addresses are never proxied) and whose trusted roots are the system pool plus the PEM
// certificates of the file SSL_CERT_FILE names, all read through getenv.
func NewHTTPClient(getenv func(string) string) (*http.Client, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	roots, err := rootCAs(getenv)
	if err != nil {
		return nil, err
	}
	proxyCfg := &httpproxy.Config{
		HTTPProxy:  firstEnv(getenv, EnvHTTPProxy, "http_proxy"),
		HTTPSProxy: firstEnv(getenv, EnvHTTPSProxy, "https_proxy"),
		NoProxy:    firstEnv(getenv, EnvNoProxy, "no_proxy"),
	}
	for name, v := range map[string]string{EnvHTTPProxy: proxyCfg.HTTPProxy, EnvHTTPSProxy: proxyCfg.HTTPSProxy} {
		if v == "" {
			continue
		}
		if _, err := parseProxy(v); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	proxyFunc := proxyCfg.ProxyFunc()

	base, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("http.DefaultTransport is not an *http.Transport")
	}
	t := base.Clone()
	t.Proxy = func(r *http.Request) (*url.URL, error) { return proxyFunc(r.URL) }
	t.DialContext = (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	t.TLSHandshakeTimeout = TLSHandshakeTimeout
	t.ResponseHeaderTimeout = ResponseHeaderTimeout
	t.IdleConnTimeout = IdleConnTimeout
	t.ExpectContinueTimeout = time.Second
	t.ForceAttemptHTTP2 = true
	return &http.Client{Transport: t}, nil
}

// parseProxy checks a proxy setting: a URL with a scheme and a host, or a bare host:port (which
// httpproxy reads as http://host:port).
func parseProxy(v string) (*url.URL, error) {
	raw := v
	if !strings.Contains(v, "://") {
		raw = "http://" + v
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid proxy URL %q: %v", v, err)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("invalid proxy URL %q: no host", v)
	}
	return u, nil
}

func firstEnv(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v
		}
	}
	return ""
}

func rootCAs(getenv func(string) string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	file := getenv(EnvSSLCertFile)
	if file == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the CA certificates: %w", EnvSSLCertFile, err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", EnvSSLCertFile, file)
	}
	return pool, nil
}

// NewCredential returns the token credential of the function app. When IDENTITY_ENDPOINT is set (the
// Functions platform's managed identity) it is a ManagedIdentityCredential: user-assigned with the client
// id AZURE_CLIENT_ID when that is set, system-assigned otherwise. Elsewhere it is a
// DefaultAzureCredential, so that `az login` works on a developer machine. Both send their token
// requests through hc.
func NewCredential(getenv func(string) string, hc *http.Client) (azcore.TokenCredential, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	opts := azcore.ClientOptions{}
	if hc != nil {
		opts.Transport = hc
	}
	if endpoint := getenv(EnvIdentityEndpoint); endpoint != "" {
		// azidentity/MSAL read these two from the process environment only (see the package comment).
		if os.Getenv(EnvIdentityEndpoint) != endpoint {
			return nil, fmt.Errorf("%s differs from the process environment, which the managed identity library reads; set it in the process environment", EnvIdentityEndpoint)
		}
		if os.Getenv(EnvIdentityHeader) != getenv(EnvIdentityHeader) {
			return nil, fmt.Errorf("%s differs from the process environment, which the managed identity library reads; set it in the process environment", EnvIdentityHeader)
		}
		mio := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if id := getenv(EnvClientID); id != "" {
			mio.ID = azidentity.ClientID(id)
		}
		cred, err := azidentity.NewManagedIdentityCredential(mio)
		if err != nil {
			return nil, fmt.Errorf("creating the managed identity credential: %w", err)
		}
		return cred, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: opts})
	if err != nil {
		return nil, fmt.Errorf("creating the default Azure credential: %w", err)
	}
	return cred, nil
}

// TokenClaims are the claims of an access token this app reads: its tenant and the application
// permissions it grants.
type TokenClaims struct {
	TID   string   `json:"tid"`
	Roles []string `json:"roles"`
}

// ClaimsOf reads the claims of a JWT access token. It does not verify the token: the token came from our
// own credential (or the token service) over TLS and is only read, for the tenant it is of and the
// permissions it grants; it is not kept.
func ClaimsOf(token string) (TokenClaims, error) {
	var c TokenClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, errors.New("access token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return c, errors.New("access token payload is not base64url")
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, errors.New("access token payload is not JSON")
	}
	return c, nil
}

// TenantIDFromToken reads the tid claim of a JWT access token (see ClaimsOf).
func TenantIDFromToken(token string) (string, error) {
	c, err := ClaimsOf(token)
	if err != nil {
		return "", err
	}
	if c.TID == "" {
		return "", errors.New("access token has no tid claim")
	}
	return c.TID, nil
}

// ClassifyFailure classifies an error that a client returned without a service's answer to the request
// itself: a failure to get a token, a transport failure or a certificate failure. It returns false when
// the error is the end of the caller's own context: the caller then returns it unclassified.
//
// A failure of the managed identity credential is the identity's, not the service's: its ServiceError
// has Service appreg.ServiceIdentity, the identity endpoint's HTTP status (0 when it did not answer) and
// the endpoint's own message (App Service's {"statusCode", "message", "correlationId"}, read from the
// answer, never a token or the X-IDENTITY-HEADER value), and its Kind is
//   - ErrThrottled for a 429 and ErrUnavailable for a 5xx: worth the engine's retries;
//   - ErrIdentity for any other answer (no identity enabled, a wrong AZURE_CLIENT_ID, a refused identity
//     header) and for an endpoint that could not be reached at all, with an Advice saying what to do.
//     ErrIdentity is not transient: the engine fails at once instead of retrying for minutes.
//
// Other credentials (DefaultAzureCredential on a developer machine) keep the caller's service: 429 is
// ErrThrottled, 5xx ErrUnavailable, anything else ErrRejected. The remaining kinds are appreg's sentinels:
// ErrUnavailable for connection failures and transport timeouts that are not the caller's context,
// ErrRejected for everything else (an untrusted certificate, an unknown failure).
func ClassifyFailure(ctx context.Context, service string, err error) (*appreg.ServiceError, bool) {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil, false
	}
	fail := func(kind error, status int, msg string) (*appreg.ServiceError, bool) {
		return &appreg.ServiceError{Service: service, Kind: kind, Status: status, Message: msg}, true
	}
	var classified *appreg.ServiceError
	if errors.As(err, &classified) {
		return classified, true // a credential of ours classified it already (Federation)
	}
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) {
		if isManagedIdentity(afe) {
			if afe.RawResponse == nil && ctx.Err() != nil {
				// MSAL flattens the transport error into text: when our own context ended meanwhile, that
				// was the cause, not the endpoint.
				return nil, false
			}
			return identityFailure(afe), true
		}
		if afe.RawResponse == nil {
			// No answer from the token endpoint at all: MSAL flattens the transport error into text.
			return fail(appreg.ErrUnavailable, 0, "getting an access token: the token endpoint could not be reached")
		}
		status := afe.RawResponse.StatusCode
		msg := fmt.Sprintf("getting an access token: the token endpoint answered %d", status)
		switch {
		case status == http.StatusTooManyRequests:
			return fail(appreg.ErrThrottled, status, msg)
		case status >= 500:
			return fail(appreg.ErrUnavailable, status, msg)
		default:
			return fail(appreg.ErrRejected, status, msg)
		}
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) {
		return fail(appreg.ErrRejected, 0, err.Error())
	}
	var urlErr *url.Error
	var netErr net.Error
	if errors.As(err, &urlErr) || errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, context.DeadlineExceeded) {
		// A dropped connection, a refused dial, or a timeout of the transport or of one SDK try (our own
		// context is still alive here).
		return fail(appreg.ErrUnavailable, 0, err.Error())
	}
	return fail(appreg.ErrRejected, 0, err.Error())
}

// credNameManagedIdentity is how azidentity's ManagedIdentityCredential names itself at the start of
// every AuthenticationFailedError it returns (its credType is not exported).
const credNameManagedIdentity = "ManagedIdentityCredential"

// Advice of an ErrIdentity failure.
const (
	adviceIdentityRefused = "enable the function app's system-assigned managed identity and leave AZURE_CLIENT_ID " +
		"unset, or set AZURE_CLIENT_ID to the client id of a user-assigned managed identity attached to the function app"
	adviceIdentityUnreachable = "the managed identity endpoint that IDENTITY_ENDPOINT names did not answer; the " +
		"Functions platform sets IDENTITY_ENDPOINT and IDENTITY_HEADER when the function app has a managed " +
		"identity: enable one (system-assigned, or a user-assigned one with AZURE_CLIENT_ID set to its client " +
		"id) and restart the function app"
)

// isManagedIdentity tells whether afe came from the managed identity credential.
func isManagedIdentity(afe *azidentity.AuthenticationFailedError) bool {
	return strings.HasPrefix(afe.Error(), credNameManagedIdentity)
}

// identityFailure classifies a failure of the managed identity credential (see ClassifyFailure).
func identityFailure(afe *azidentity.AuthenticationFailedError) *appreg.ServiceError {
	se := &appreg.ServiceError{Service: appreg.ServiceIdentity, Kind: appreg.ErrIdentity}
	if afe.RawResponse == nil {
		// No answer at all (connection refused, no such host, a timeout of every try): azidentity's
		// pipeline already retried the request (azcore's default retry policy: three retries with
		// exponential back-off, a few seconds in all), and the engine's retries would only repeat that
		// for minutes, so this is ErrIdentity too: the run fails within seconds.
		se.Message = "getting an access token: the managed identity endpoint (IDENTITY_ENDPOINT) could not be reached: " +
			unreachableCause(afe.Error())
		se.Advice = adviceIdentityUnreachable
		return se
	}
	se.Status = afe.RawResponse.StatusCode
	se.Message = "getting an access token"
	if m := endpointMessage(afe.RawResponse); m != "" {
		se.Message += ": " + m
	}
	switch {
	case se.Status == http.StatusTooManyRequests:
		se.Kind = appreg.ErrThrottled
	case se.Status >= 500:
		se.Kind = appreg.ErrUnavailable
	default:
		se.Advice = adviceIdentityRefused
	}
	return se
}

// maxEndpointMessage bounds the endpoint's message in an error.
const maxEndpointMessage = 300

// endpointMessage is the message of a managed identity endpoint's error answer: App Service's
// {"statusCode", "message", "correlationId"}, IMDS's {"error", "error_description"}, or an
// {"error": {"code", "message"}} envelope; "" when the body holds none. Only that message is kept (never
// the raw body), on one line, clipped, with the process's IDENTITY_HEADER value redacted should an
// endpoint ever echo it.
func endpointMessage(resp *http.Response) string {
	body, err := runtime.Payload(resp)
	if err != nil || len(body) == 0 {
		return ""
	}
	var answer struct {
		Message          string          `json:"message"`
		ErrorDescription string          `json:"error_description"`
		Error            json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &answer) != nil {
		return ""
	}
	msg := answer.Message
	if msg == "" {
		msg = answer.ErrorDescription
	}
	if msg == "" && len(answer.Error) > 0 {
		var inner struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(answer.Error, &inner) == nil {
			msg = inner.Message
		}
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if h := os.Getenv(EnvIdentityHeader); h != "" {
		msg = strings.ReplaceAll(msg, h, "[IDENTITY_HEADER]")
	}
	if r := []rune(msg); len(r) > maxEndpointMessage {
		msg = string(r[:maxEndpointMessage]) + "…"
	}
	return msg
}

// unreachableCause names why the identity endpoint could not be reached, from the text that MSAL made
// of the transport error (it names the request URL too, which is not repeated).
func unreachableCause(text string) string {
	text = strings.ToLower(text)
	for _, c := range []string{
		"connection refused", "no such host", "i/o timeout", "connection reset", "network is unreachable",
		"no route to host", "context deadline exceeded", "tls handshake timeout", "eof",
	} {
		if strings.Contains(text, c) {
			return c
		}
	}
	return "no usable answer"
}
