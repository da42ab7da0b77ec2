package appreg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/logctx"
)

// SecretValue is a client secret's value. It prints, logs and marshals as "[redacted]": only Reveal gives
// the value, to the calls that must send it (Key Vault's write, the sign-in check).
type SecretValue struct{ v string }

// NewSecretValue wraps a secret value.
func NewSecretValue(s string) SecretValue { return SecretValue{v: s} }

// Reveal returns the value.
func (s SecretValue) Reveal() string { return s.v }

// IsZero tells whether there is no value.
func (s SecretValue) IsZero() bool { return s.v == "" }

const redacted = "[redacted]"

func (SecretValue) String() string               { return redacted }
func (SecretValue) GoString() string             { return redacted }
func (SecretValue) Format(f fmt.State, _ rune)   { fmt.Fprint(f, redacted) }
func (SecretValue) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (SecretValue) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (SecretValue) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (*SecretValue) UnmarshalJSON([]byte) error {
	return errors.New("a secret value is never read from JSON")
}
func (*SecretValue) UnmarshalText(b []byte) error {
	return errors.New("a secret value is never read from text")
}

// SignIn is Entra ID's token service as the engine needs it: the client-credentials sign-in that SCEPman
// itself makes with the stored secret.
type SignIn interface {
	// SignIn asks the token service of tenantID for an access token for resource (an appId) as the
	// application clientID with secret, and returns the token's roles claim; the token itself is dropped
	// at once. A refusal is a *ServiceError of kind ErrSignInRefused whose Code is the AADSTS code.
	SignIn(ctx context.Context, tenantID, clientID string, secret SecretValue, resource string) ([]string, error)
}

// Sign-in states of secret.signIn.
const (
	SignInAccepted = "accepted"
	SignInPending  = "pending"
	SignInRejected = "rejected"
)

// PendingWindow is how long after its credential's start a refused secret counts as pending (the token
// service can take seconds to minutes to accept a new password) rather than rejected.
const PendingWindow = 10 * time.Minute

// SignInResult is what the sign-in check found for the current secret.
type SignInResult struct {
	State   string              // SignInAccepted, SignInPending or SignInRejected
	Code    string              // the AADSTS code of a refusal
	Message string              // the token service's description of a refusal (never a secret)
	Roles   map[string][]string // resource appId -> the roles claim of its token, when accepted
}

// AADSTS codes the engine tells apart.
const (
	aadstsInvalidSecret      = "AADSTS7000215" // a wrong value, or one the token service does not accept yet
	aadstsNoServicePrincipal = "AADSTS7000229" // the application has no service principal in the tenant
)

// isInvalidSecret tells whether a refusal is AADSTS7000215, which the token service also answers for a
// secret it has not accepted yet.
func isInvalidSecret(code string) bool { return strings.EqualFold(code, aadstsInvalidSecret) }

// SetSignIn makes the engine sign in with the current secret, as SCEPman does, in every observation,
// and wait for the token service to accept a renewed secret before storing it.
func (e *Engine) SetSignIn(s SignIn) { e.signer = s }

// signInResources are the resources of the level whose service principal the observation found.
func (e *Engine) signInResources(o *Observation) []string {
	var out []string
	for _, appID := range Resources(PermissionsFor(e.settings.PermissionLevel)) {
		if o.Resource[appID] != nil {
			out = append(out, appID)
		}
	}
	return out
}

// checkSignIn signs in with the current secret for each resource of the level whose service principal
// exists, and records what the token service said in o.SignIn. The tokens are read for their roles claim
// and dropped by the SignIn adapter; the secret value is sent nowhere else. A refusal is a finding, not an
// error; a token service that stays unavailable is an error.
func (e *Engine) checkSignIn(ctx context.Context, o *Observation) error {
	o.SignIn = nil
	if e.signer == nil || o.Current == nil || o.Disabled || o.Current.Value.IsZero() {
		return nil
	}
	appID := o.Current.Tags[TagAppID]
	if o.App != nil {
		appID = o.App.AppID
	}
	resources := e.signInResources(o)
	if appID == "" || len(resources) == 0 {
		return nil
	}
	r, err := e.signIn(ctx, o.TenantID, appID, o.Current.Value, resources)
	if err != nil || r == nil {
		return err
	}
	if r.State != SignInAccepted && isInvalidSecret(r.Code) && o.recentlyStarted(e.now()) {
		r.State = SignInPending
	}
	o.SignIn = r
	return nil
}

// signIn signs appID in with secret for every resource at once (the token requests need nothing from each
// other), then reads the answers in the resources' order: the first refusal is the verdict.
func (e *Engine) signIn(ctx context.Context, tenantID, appID string, secret SecretValue, resources []string) (*SignInResult, error) {
	roles := make([][]string, len(resources))
	errs := make([]error, len(resources))
	var wg sync.WaitGroup
	for i, res := range resources {
		wg.Go(func() {
			errs[i] = e.backoff.retry(ctx, "signing in", transient, func() (err error) {
				roles[i], err = e.signer.SignIn(ctx, tenantID, appID, secret, res)
				return err
			})
		})
	}
	wg.Wait()
	r := &SignInResult{State: SignInAccepted, Roles: map[string][]string{}}
	for i, res := range resources {
		err := errs[i]
		var se *ServiceError
		switch {
		case err == nil:
			r.Roles[res] = roles[i]
			continue
		case errors.Is(err, ErrSignInRefused) && errors.As(err, &se) && strings.EqualFold(se.Code, aadstsNoServicePrincipal):
			// Not a verdict on the secret: the application has no service principal, which the
			// observation reports as SERVICE_PRINCIPAL_MISSING.
			return nil, nil
		case errors.Is(err, ErrSignInRefused) && errors.As(err, &se):
			return &SignInResult{State: SignInRejected, Code: se.Code, Message: se.Message}, nil
		default:
			return nil, fmt.Errorf("signing in as application %s with the stored secret: %w", appID, err)
		}
	}
	return r, nil
}

// recentlyStarted tells whether the current secret's credential started less than PendingWindow ago (or,
// when no read shows the credential, whether its version was stored that recently).
func (o *Observation) recentlyStarted(now time.Time) bool {
	start := o.Current.Created
	if c, ok := o.credential(o.Current.KeyID()); ok {
		start = c.Start
	}
	return !start.IsZero() && now.Sub(start) < PendingWindow
}

// trustSignIn applies the ground truth: a current secret that signs in is a credential of the
// application, whatever a lagging read showed. Its credential is taken from the version (its exp is the
// credential's endDateTime, by the contract's tags).
func (o *Observation) trustSignIn() {
	if o.SignIn == nil || o.SignIn.State != SignInAccepted || o.App == nil || o.Current == nil {
		return
	}
	if _, ok := o.credential(o.Current.KeyID()); ok {
		return
	}
	o.App.Passwords = append(o.App.Passwords, PasswordCredential{KeyID: o.Current.KeyID(), Start: o.Current.Created, End: o.Current.Expires})
}

// acceptanceReserve is the time a renewal keeps, of its run's deadline, for storing the accepted secret
// or removing a refused one (a third of what is left, when that is less).
const acceptanceReserve = 90 * time.Second

// awaitAcceptance signs the new credential in, with back-off, until the token service accepts it or
// the run's deadline (less acceptanceReserve) comes. Without a sign-in check it returns at once.
func (e *Engine) awaitAcceptance(ctx context.Context, app *Application, cred PasswordCredential, text string) error {
	if e.signer == nil {
		return nil
	}
	o := &Observation{Resource: map[string]*ServicePrincipal{}}
	e.cacheMu.Lock()
	for id, sp := range e.resources {
		o.Resource[id] = &sp
	}
	tenantID := e.tenantID
	e.cacheMu.Unlock()
	resources := e.signInResources(o)
	if len(resources) == 0 {
		return nil
	}
	wctx := ctx
	if dl, ok := ctx.Deadline(); ok {
		reserve := min(acceptanceReserve, time.Until(dl)/3)
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(ctx, dl.Add(-reserve))
		defer cancel()
	}
	secret := NewSecretValue(text)
	start := time.Now()
	var last *SignInResult
	// Only errNotAccepted is retried here: signIn retries transient errors itself, within the patience.
	notAccepted := func(err error) bool { return errors.Is(err, errNotAccepted) }
	err := e.backoff.retry(wctx, "waiting for the token service to accept the new secret", notAccepted, func() error {
		r, err := e.signIn(wctx, tenantID, app.AppID, secret, resources[:1])
		if err != nil {
			return err
		}
		if r == nil { // no service principal: nothing can sign in, whatever the secret
			return nil
		}
		last = r
		if r.State != SignInAccepted {
			if isInvalidSecret(r.Code) {
				return errNotAccepted
			}
			return &ServiceError{Service: ServiceSignIn, Kind: ErrSignInRefused, Code: r.Code, Message: r.Message}
		}
		return nil
	})
	if err == nil {
		logctx.From(ctx).Info("the token service accepts the new secret", "after", time.Since(start).Round(time.Millisecond).String())
		return nil
	}
	if last != nil && errors.Is(err, errNotAccepted) {
		err = &ServiceError{Service: ServiceSignIn, Kind: ErrSignInRefused, Code: last.Code, Message: last.Message}
	}
	return fmt.Errorf("the token service did not accept the new client secret %s of application %s within %s: %w",
		cred.KeyID, app.AppID, time.Since(start).Round(time.Second), err)
}

// errNotAccepted marks a new secret the token service refuses with AADSTS7000215: not accepted yet.
var errNotAccepted = errors.New("the token service does not accept the new secret yet")
