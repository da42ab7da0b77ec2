package appreg

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// SecretContentType is the contentType of every secret version the engine stores.
const SecretContentType = "text/plain; client secret of an Entra ID application"

// Engine reconciles the tenant with the desired state: it observes, diffs, and applies the plan.
type Engine struct {
	dir      Directory
	vault    Vault
	settings Settings
	now      func() time.Time
	backoff  Backoff

	// writeMu serialises the writing operations (provision, rotate) of this process; other processes are
	// tolerated by the engine's idempotent steps.
	writeMu sync.Mutex

	cacheMu   sync.Mutex
	tenantID  string
	resources map[string]ServicePrincipal // resource service principals do not change: read once per process
	known     knownIDs                    // the application's ids, as last observed by this process

	refresher Refresher
	siteIDs   []string
	signer    SignIn // nil: no sign-in check
}

// NewEngine builds an engine. now is the clock that decides expiry (time.Now in production).
func NewEngine(dir Directory, vault Vault, s Settings, now func() time.Time) *Engine {
	return &Engine{dir: dir, vault: vault, settings: s, now: now, backoff: DefaultBackoff,
		resources: map[string]ServicePrincipal{}}
}

// SetBackoff replaces the retry back-off.
func (e *Engine) SetBackoff(b Backoff) { e.backoff = b }

// Settings returns the engine's settings.
func (e *Engine) Settings() Settings { return e.settings }

// knownIDs are the ids of the application's objects as this process last saw them: they do not change
// while the objects exist, so that the next observation can read the application, its service principal
// and their assignments in one round trip. The observation checks them against what it reads (the
// application by uniqueName is authoritative) and forgets them when they no longer match.
type knownIDs struct {
	appID string // the application's appId
	spID  string // the id of its service principal
}

func (e *Engine) tenant(ctx context.Context) (string, error) {
	e.cacheMu.Lock()
	id := e.tenantID
	e.cacheMu.Unlock()
	if id != "" {
		return id, nil
	}
	err := e.backoff.retry(ctx, "reading the tenant id", transient, func() (err error) {
		id, err = e.dir.TenantID(ctx)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("reading the tenant id: %w", err)
	}
	e.cacheMu.Lock()
	e.tenantID = id
	e.cacheMu.Unlock()
	return id, nil
}

// Status observes the tenant and reports its findings; it never writes.
func (e *Engine) Status(ctx context.Context) (StatusReport, error) {
	o, err := e.Observe(ctx)
	if err != nil {
		return StatusReport{}, err
	}
	return e.report(o), nil
}

func (e *Engine) report(o *Observation) StatusReport {
	now := e.now()
	fs := e.settings.Diff(o, now)
	r := StatusReport{Compliant: Compliant(fs), Findings: fs}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	if o.App != nil {
		r.AppID = o.App.AppID
	}
	if o.Current != nil {
		s := &SecretStatus{KeyID: o.Current.KeyID()}
		if _, cred := e.settings.secretState(o, now); !cred.End.IsZero() {
			exp, renew := cred.End.UTC(), cred.End.Add(-e.settings.RenewBefore).UTC()
			s.ExpiresOn, s.RenewAfter = &exp, &renew
		} else if !o.Current.Expires.IsZero() {
			exp := o.Current.Expires.UTC()
			s.ExpiresOn = &exp
		}
		if o.SignIn != nil {
			s.SignIn = o.SignIn.State
		}
		r.Secret = s
	}
	return r
}

// Compliance runs the status check and, when remediation is on and the tenant is not compliant,
// provisions and checks again.
func (e *Engine) Compliance(ctx context.Context) (ComplianceResult, error) {
	before, err := e.Status(ctx)
	if err != nil {
		return ComplianceResult{}, err
	}
	res := ComplianceResult{Before: before, Compliant: before.Compliant}
	if before.Compliant || !e.settings.Remediate {
		return res, nil
	}
	pr, err := e.Provision(ctx)
	if err != nil {
		return res, fmt.Errorf("remediating: %w", err)
	}
	res.Remediated = &pr
	after, err := e.Status(ctx)
	if err != nil {
		return res, fmt.Errorf("checking again after remediation: %w", err)
	}
	res.After, res.Compliant = &after, after.Compliant
	return res, nil
}
