package appreg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/scepman-appreg/appreg/handler/internal/logctx"
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

// Observe reads the tenant: the application and its service principal, assignments and credentials, the
// resource service principals, and the Key Vault secret. The reads go out at once: the Graph reads in one
// round trip (package graph sends them as one JSON batch) once this process knows the ids of the
// application's objects, and the current secret beside them. The versions of the secret are listed only
// when the application holds a credential other than the one the current version names: only then can a
// finding (CREDENTIAL_STALE) or a removal depend on them. Otherwise Versions holds the current version
// alone.
func (e *Engine) Observe(ctx context.Context) (*Observation, error) {
	o := &Observation{Resource: map[string]*ServicePrincipal{}}
	e.cacheMu.Lock()
	knew := e.known.appID != ""
	e.cacheMu.Unlock()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if err := e.observeDirectory(gctx, o); err != nil {
			return err
		}
		// After the Graph reads: the tenant id comes from the Graph token they fetched, which a
		// concurrent first request would fetch a second time.
		o.TenantID, err = e.tenant(gctx)
		return err
	})
	g.Go(func() error { return e.readSecret(gctx, o) })
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := e.checkSignIn(ctx, o); err != nil {
		return nil, err
	}
	if err := e.confirmAbsence(ctx, o, knew); err != nil {
		return nil, err
	}
	o.trustSignIn()
	if err := e.completeVersions(ctx, o); err != nil {
		return nil, err
	}
	return o, nil
}

// readSecret reads the current version of the secret into o. A secret that is not there may be deleted
// but recoverable (Key Vault's soft delete): then o.Deleted holds it. A current version that is disabled
// cannot be read (403 SecretDisabled), but its metadata can: then the versions are listed, the newest is
// the current one, and o.Disabled is set.
func (e *Engine) readSecret(ctx context.Context, o *Observation) error {
	name := e.settings.SecretName
	o.Current, o.Deleted, o.Disabled, o.Versions, o.versionsListed = nil, nil, false, nil, false
	var cur SecretVersion
	err := e.backoff.retry(ctx, "reading the secret", transient, func() (err error) {
		cur, err = e.vault.Secret(ctx, name)
		return err
	})
	switch {
	case err == nil:
		o.Current, o.Versions = &cur, []SecretVersion{cur}
		return nil
	case errors.Is(err, ErrSecretDisabled):
		vs, err := e.listVersions(ctx)
		if err != nil {
			return err
		}
		if len(vs) == 0 {
			return nil
		}
		latest := vs[len(vs)-1]
		o.Current, o.Disabled, o.Versions, o.versionsListed = &latest, true, vs, true
		return nil
	case errors.Is(err, ErrNotFound):
	default:
		return fmt.Errorf("reading secret %s from Key Vault: %w", name, err)
	}
	var ds DeletedSecret
	err = e.backoff.retry(ctx, "reading the deleted secret", transient, func() (err error) {
		ds, err = e.vault.DeletedSecret(ctx, name)
		return err
	})
	switch {
	case err == nil:
		o.Deleted = &ds
	case errors.Is(err, ErrNotFound):
	case errors.Is(err, ErrForbidden):
		// The identity may not read deleted secrets: it cannot tell deleted from missing, and says so.
		logctx.From(ctx).Warn("cannot tell whether the missing secret is deleted but recoverable", "err", err.Error())
	default:
		return fmt.Errorf("reading deleted secret %s from Key Vault: %w", name, err)
	}
	return nil
}

// listVersions lists every version of the secret, oldest first; empty when there is none.
func (e *Engine) listVersions(ctx context.Context) ([]SecretVersion, error) {
	var vs []SecretVersion
	err := e.backoff.retry(ctx, "listing secret versions", transient, func() (err error) {
		vs, err = e.vault.SecretVersions(ctx, e.settings.SecretName)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("listing the versions of secret %s: %w", e.settings.SecretName, err)
	}
	sortVersions(vs)
	return vs, nil
}

// maxConfirmations bounds the extra directory reads of confirmAbsence: with the engine's default back-off
// they span about eight seconds.
const maxConfirmations = 5

// confirmAbsence reads the directory again when the observation misses something that should exist: the
// application, its service principal, a consent, or the credential the current secret names, while Key
// Vault holds a secret or this process has seen the application. Graph serves reads from replicas that
// lag writes unevenly, so a read just after a write (this run's, or another's) can miss what exists: an
// object once seen exists (reference section 8). The reads are merged, and they stop as soon as nothing
// is missing any more; what is still missing after the last one is missing. On a tenant where nothing is
// missing, nothing is read twice.
func (e *Engine) confirmAbsence(ctx context.Context, o *Observation, knew bool) error {
	if o.Current == nil && !knew {
		return nil
	}
	merged := false
	for n := 0; n < maxConfirmations && o.missesSomething(e.settings.PermissionLevel); n++ {
		if err := sleep(ctx, e.backoff.delay(n)); err != nil {
			break // the run's time is up: go on with what was read
		}
		again := &Observation{Resource: map[string]*ServicePrincipal{}}
		if err := e.observeDirectory(ctx, again); err != nil {
			return err
		}
		o.merge(again)
		merged = true
	}
	if merged && o.App != nil && o.SP != nil {
		e.remember(knownIDs{appID: o.App.AppID, spID: o.SP.ID})
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// completeVersions lists every version of the secret when the removal rule needs more than the versions
// the observation holds: when a credential of the application other than the current one is named by
// none of them. The versions held are the current version at the time of the observation and those this
// run stored since, so for a credential they name, the latest version naming it is among them and a
// successor they show is no earlier than the real one: Removable errs, if at all, on the side of keeping.
func (e *Engine) completeVersions(ctx context.Context, o *Observation) error {
	if o.versionsListed || !o.needsVersions() {
		return nil
	}
	var vs []SecretVersion
	err := e.backoff.retry(ctx, "listing secret versions", transient, func() (err error) {
		vs, err = e.vault.SecretVersions(ctx, e.settings.SecretName)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("listing the versions of secret %s: %w", e.settings.SecretName, err)
	}
	// A version this run stored may not show in the list yet: keep it.
	for _, held := range o.Versions {
		if !slices.ContainsFunc(vs, func(v SecretVersion) bool { return v.ID == held.ID }) {
			vs = append(vs, held)
		}
	}
	sortVersions(vs)
	o.Versions, o.versionsListed = vs, true
	return nil
}

// observeDirectory reads the application, its service principal and the assignments granted to it, and
// the resource service principals this process has not read yet: in one round trip when the ids of the
// application's objects are known from an earlier observation, else the application (with the resources)
// first, then its service principal, then the assignments, each needing the id the one before gives.
func (e *Engine) observeDirectory(ctx context.Context, o *Observation) error {
	e.cacheMu.Lock()
	known := e.known
	var missing []string
	for _, appID := range Resources(PermissionsFor(e.settings.PermissionLevel)) {
		if sp, ok := e.resources[appID]; ok {
			o.Resource[appID] = &sp
		} else {
			missing = append(missing, appID)
		}
	}
	e.cacheMu.Unlock()

	q := SnapshotQuery{UniqueName: e.settings.UniqueName, AppID: known.appID, SPID: known.spID, Resources: missing}
	snap, err := e.snapshot(ctx, q)
	if errors.Is(err, ErrNotFound) && q.SPID != "" {
		// The service principal this process knew is gone: read as a process that knows nothing.
		e.remember(knownIDs{})
		q.AppID, q.SPID = "", ""
		snap, err = e.snapshot(ctx, q)
	}
	if err != nil {
		return fmt.Errorf("reading application %q and its service principal: %w", e.settings.UniqueName, err)
	}
	e.cacheMu.Lock()
	for appID, sp := range snap.Resources {
		if sp != nil {
			e.resources[appID] = *sp
		}
		o.Resource[appID] = sp
	}
	e.cacheMu.Unlock()

	o.App = snap.App
	if o.App == nil {
		e.remember(knownIDs{})
		return nil
	}
	switch {
	case q.AppID != "" && q.AppID == o.App.AppID:
		o.SP = snap.SP
		if o.SP != nil && q.SPID != "" && q.SPID == o.SP.ID {
			o.Assigned = snap.Assigned
			return nil
		}
	default: // the first observation of this process, or the application was replaced
		sp, err := e.readSP(ctx, o.App.AppID, false)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		default:
			o.SP = &sp
		}
	}
	if o.SP == nil {
		e.remember(knownIDs{})
		return nil
	}
	if o.Assigned, err = e.readAssignments(ctx, o.SP.ID); err != nil {
		return err
	}
	e.remember(knownIDs{appID: o.App.AppID, spID: o.SP.ID})
	return nil
}

// snapshot reads q, retrying what is worth retrying.
func (e *Engine) snapshot(ctx context.Context, q SnapshotQuery) (Snapshot, error) {
	var snap Snapshot
	err := e.backoff.retry(ctx, "reading the application", transient, func() (err error) {
		snap, err = e.dir.Snapshot(ctx, q)
		return err
	})
	return snap, err
}

// remember keeps the ids of the application's objects for the next observation of this process.
func (e *Engine) remember(k knownIDs) {
	e.cacheMu.Lock()
	e.known = k
	e.cacheMu.Unlock()
}

func (e *Engine) readSP(ctx context.Context, appID string, fresh bool) (ServicePrincipal, error) {
	retryable := transient
	if fresh {
		retryable = transientOr(ErrNotFound)
	}
	var sp ServicePrincipal
	err := e.backoff.retry(ctx, "reading the service principal", retryable, func() (err error) {
		sp, err = e.dir.ServicePrincipal(ctx, appID)
		return err
	})
	if err != nil {
		return sp, fmt.Errorf("reading the service principal of application %s: %w", appID, err)
	}
	return sp, nil
}

func (e *Engine) readAssignments(ctx context.Context, spID string) ([]AppRoleAssignment, error) {
	var as []AppRoleAssignment
	err := e.backoff.retry(ctx, "listing app role assignments", transient, func() (err error) {
		as, err = e.dir.AppRoleAssignments(ctx, spID)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		// The service principal was just read, so a replica that lags does not know it yet: no
		// assignment is seen, and confirmAbsence reads again.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing the app role assignments of service principal %s: %w", spID, err)
	}
	return as, nil
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

// Provision brings the tenant to the desired state.
func (e *Engine) Provision(ctx context.Context) (ProvisionResult, error) {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	log := logctx.From(ctx)
	o, err := e.Observe(ctx)
	if err != nil {
		return ProvisionResult{}, err
	}
	var res ProvisionResult
	change := func(format string, args ...any) {
		c := fmt.Sprintf(format, args...)
		res.Changes = append(res.Changes, c)
		log.Info("change", "change", c)
	}
	want := PermissionsFor(e.settings.PermissionLevel)

	// 1. The application.
	spec := AppSpec{DisplayName: e.settings.DisplayName, SignInAudience: AudienceMyOrg, RequiredResourceAccess: RequiredResourceAccess(want)}
	if o.App == nil || appDiffers(*o.App, spec) {
		created, err := e.upsertApp(ctx, spec)
		if err != nil {
			return res, err
		}
		app, err := e.readBackApp(ctx, spec)
		if err != nil {
			return res, err
		}
		switch {
		case created:
			res.Created = true
			change("application created")
		case o.App == nil:
			change("application created by a concurrent call, then updated")
		default:
			change("application updated: %s", appDiffs(o.App, spec))
		}
		o.App = &app
	}
	log = log.With("appId", o.App.AppID)
	ctx = logctx.With(ctx, log)
	// 2. Its service principal.
	if o.SP == nil {
		sp, made, err := e.ensureSP(ctx, o.App.AppID, res.Created)
		if err != nil {
			return res, err
		}
		if made {
			change("service principal created")
		}
		o.SP = &sp
	}
	// 3. Admin consent: granted here, or (APPREG_CONSENT=admin) left to an administrator.
	granted := false
	for _, p := range want {
		rsp := o.Resource[p.ResourceAppID]
		if rsp == nil {
			continue
		}
		if err := checkRole(rsp, p); err != nil {
			return res, err
		}
		if o.consented(p) || e.settings.AdminConsent {
			continue
		}
		if err := e.assign(ctx, o.SP.ID, rsp.ID, p); err != nil {
			return res, err
		}
		change("admin consent granted: %s %s", p.Resource, p.Value)
		granted = true
	}
	if granted {
		if o.Assigned, err = e.readBackAssignments(ctx, o, want); err != nil {
			return res, err
		}
	}
	if !e.settings.AdminConsent {
		for _, u := range e.settings.unexpectedConsents(o) {
			if u.assignment == nil {
				continue
			}
			if err := e.revoke(ctx, o.SP.ID, *u.assignment); err != nil {
				return res, err
			}
			change("admin consent revoked: %s", u.message)
			o.Assigned = slices.DeleteFunc(o.Assigned, func(a AppRoleAssignment) bool { return a.ID == u.assignment.ID })
		}
	}
	// 4. The secret.
	state, _ := e.settings.secretState(o, e.now())
	if state == SecretDeleted {
		if err := e.recoverSecret(ctx, o); err != nil {
			return res, err
		}
		change("Key Vault secret %s recovered from soft delete, with all its versions", e.settings.SecretName)
		state, _ = e.settings.secretState(o, e.now())
	}
	switch state {
	case SecretMissing, SecretDisabled, SecretNotOnApp, SecretExpired, SecretRejected:
		// No current secret signs in: store the new one at once, since nothing better exists, and say
		// whether the token service accepts it yet.
		cred, v, err := e.newSecret(ctx, o.App, res.Created, false)
		if err != nil {
			return res, err
		}
		change("client secret %s created, expires %s", cred.KeyID, cred.End.UTC().Format(time.RFC3339))
		change("client secret stored in Key Vault as %s", v.ID)
		o.App.Passwords = append(o.App.Passwords, cred)
		o.Current, o.Disabled, o.Deleted = &v, false, nil
		o.Versions = append(o.Versions, v)
		if err := e.checkSignIn(ctx, o); err != nil {
			return res, err
		}
	}

	e.remember(knownIDs{appID: o.App.AppID, spID: o.SP.ID})

	res.TenantID, res.AppID, res.ObjectID = o.TenantID, o.App.AppID, o.App.ObjectID
	res.ServicePrincipalID, res.DisplayName, res.UniqueName = o.SP.ID, o.App.DisplayName, e.settings.UniqueName
	for _, p := range want {
		res.Permissions = append(res.Permissions, PermissionState{ResourceAppID: p.ResourceAppID, Value: p.Value, ID: p.ID, Consented: o.consented(p)})
	}
	if cred, ok := o.credential(o.currentKeyID()); ok {
		res.Secret = &SecretInfo{Name: e.settings.SecretName, ID: o.Current.ID, KeyID: cred.KeyID, ExpiresOn: cred.End.UTC()}
		if o.SignIn != nil {
			res.Secret.SignIn = o.SignIn.State
		}
	}
	if slices.ContainsFunc(res.Permissions, func(p PermissionState) bool { return !p.Consented && o.Resource[p.ResourceAppID] != nil }) {
		res.AdminConsentURL = e.settings.AdminConsentURL(o.TenantID, o.App.AppID)
	}
	for _, f := range e.settings.Diff(o, e.now()) {
		if f.Code == CodeResourceUnavailable {
			res.Warnings = append(res.Warnings, f)
		}
	}
	if res.Changes == nil {
		res.Changes = []string{}
	}
	return res, nil
}

func (e *Engine) upsertApp(ctx context.Context, spec AppSpec) (bool, error) {
	var created bool
	err := e.backoff.retry(ctx, "upserting the application", transient, func() (err error) {
		created, err = e.dir.UpsertApplication(ctx, e.settings.UniqueName, spec)
		return err
	})
	if errors.Is(err, ErrUniqueNameTaken) && e.liveApplication(ctx) {
		// Uniqueness is enforced at write time: the loser of two racing creates is told the name is taken
		// although the winner is live (reference section 8). The application exists: update it.
		logctx.From(ctx).Info("a concurrent create holds the uniqueName; updating that application", "uniqueName", e.settings.UniqueName)
		err = e.backoff.retry(ctx, "updating the application", transientOr(ErrUniqueNameTaken), func() (err error) {
			created, err = e.dir.UpsertApplication(ctx, e.settings.UniqueName, spec)
			return err
		})
		created = false
	}
	if errors.Is(err, ErrUniqueNameTaken) {
		return false, fmt.Errorf("creating application %q: %w: restore it (Entra admin center > App registrations > Deleted applications > Restore app) "+
			"or delete it permanently from there, or set APPREG_UNIQUE_NAME to another name: %w", e.settings.UniqueName, ErrUniqueNameTaken, err)
	}
	if err != nil {
		return false, fmt.Errorf("creating or updating application %q: %w", e.settings.UniqueName, err)
	}
	return created, nil
}

// liveApplication tells whether an active application holds the uniqueName, reading it a few times: a
// replica that lags may not show one created a moment ago.
func (e *Engine) liveApplication(ctx context.Context) bool {
	for n := 0; n <= maxConfirmations; n++ {
		_, err := e.dir.Application(ctx, e.settings.UniqueName)
		switch {
		case err == nil:
			return true
		case !errors.Is(err, ErrNotFound) && !IsTransient(err):
			return false
		}
		if sleep(ctx, e.backoff.delay(n)) != nil {
			return false
		}
	}
	return false
}

// errStale marks a read that does not show a write yet: replication delay.
var errStale = fmt.Errorf("read does not show the write yet: %w", ErrNotReplicated)

// readBackApp reads the application until it shows what was written.
func (e *Engine) readBackApp(ctx context.Context, spec AppSpec) (Application, error) {
	var app Application
	err := e.backoff.retry(ctx, "reading the application back", transientOr(ErrNotFound), func() (err error) {
		app, err = e.dir.Application(ctx, e.settings.UniqueName)
		if err == nil && appDiffers(app, spec) {
			err = errStale
		}
		return err
	})
	if err != nil {
		return app, fmt.Errorf("reading application %q back: %w", e.settings.UniqueName, err)
	}
	return app, nil
}

// ensureSP creates the service principal of appID and reads it back; made is false when another caller
// had created it.
func (e *Engine) ensureSP(ctx context.Context, appID string, fresh bool) (sp ServicePrincipal, made bool, err error) {
	err = e.backoff.retry(ctx, "creating the service principal", transientOr(ErrNotReplicated), func() (err error) {
		_, err = e.dir.CreateServicePrincipal(ctx, appID)
		return err
	})
	switch {
	case err == nil:
		made = true
	case errors.Is(err, ErrAlreadyExists):
	default:
		return sp, false, fmt.Errorf("creating the service principal of application %s: %w", appID, err)
	}
	sp, err = e.readSP(ctx, appID, true)
	return sp, made, err
}

// checkRole checks the resource's app role against the table before it is granted.
func checkRole(rsp *ServicePrincipal, p Permission) error {
	for _, r := range rsp.AppRoles {
		if r.Value == p.Value {
			if r.ID != p.ID {
				return fmt.Errorf("%s offers %s with app role id %s, but the permission table says %s: %w", p.Resource, p.Value, r.ID, p.ID, ErrRejected)
			}
			return nil
		}
	}
	return fmt.Errorf("%s (service principal %s) offers no app role %s: %w", p.Resource, rsp.ID, p.Value, ErrRejected)
}

// revoke removes an app role assignment outside the level; one already gone is not an error.
func (e *Engine) revoke(ctx context.Context, spID string, a AppRoleAssignment) error {
	err := e.backoff.retry(ctx, "revoking an app role assignment", transient, func() error {
		return e.dir.RemoveAppRoleAssignment(ctx, spID, a.ID)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("revoking app role assignment %s (app role %s): %w", a.ID, a.AppRoleID, err)
	}
	return nil
}

func (e *Engine) assign(ctx context.Context, principalID, resourceID string, p Permission) error {
	err := e.backoff.retry(ctx, "granting "+p.Value, transientOr(ErrNotReplicated), func() error {
		_, err := e.dir.AssignAppRole(ctx, principalID, resourceID, p.ID)
		return err
	})
	if err != nil && !errors.Is(err, ErrAlreadyExists) {
		return fmt.Errorf("granting admin consent to %s %s: %w", p.Resource, p.Value, err)
	}
	return nil
}

// readBackAssignments lists the assignments until every permission of the level whose resource exists shows.
func (e *Engine) readBackAssignments(ctx context.Context, o *Observation, want []Permission) ([]AppRoleAssignment, error) {
	var as []AppRoleAssignment
	// The service principal exists (this run created or read it): a 404 is a replica that lags.
	err := e.backoff.retry(ctx, "reading assignments back", transientOr(ErrNotFound), func() (err error) {
		if as, err = e.dir.AppRoleAssignments(ctx, o.SP.ID); err != nil {
			return err
		}
		probe := *o
		probe.Assigned = as
		for _, p := range want {
			if probe.Resource[p.ResourceAppID] != nil && !probe.consented(p) {
				return errStale
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the app role assignments of service principal %s back: %w", o.SP.ID, err)
	}
	return as, nil
}

// newSecret adds a password credential and stores it as a new version of the secret. If Key Vault
// refuses, the credential is removed again before the error is returned.
//
// With await, the new credential is stored only once the token service accepts it (see awaitAcceptance);
// one that is still refused when the run's time is up is removed again, and nothing is stored.
func (e *Engine) newSecret(ctx context.Context, app *Application, fresh, await bool) (PasswordCredential, SecretVersion, error) {
	log := logctx.From(ctx)
	cred, text, err := e.addPassword(ctx, app, fresh)
	if err != nil {
		return cred, SecretVersion{}, err
	}
	log = log.With("keyId", cred.KeyID)
	ctx = logctx.With(ctx, log)
	if await {
		if err := e.awaitAcceptance(ctx, app, cred, text); err != nil {
			check, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
			defer cancel()
			if rerr := e.removePassword(check, app.ObjectID, cred.KeyID); rerr != nil {
				log.Error("the refused credential could not be removed; a later rotate removes it", "err", rerr.Error())
				return cred, SecretVersion{}, errors.Join(err, rerr)
			}
			log.Warn("the token service did not accept the new secret in time; its credential was removed again, the current secret is untouched")
			return cred, SecretVersion{}, err
		}
	}
	var v SecretVersion
	err = e.backoff.retry(ctx, "storing the secret", transientOr(ErrSecretDeleted), func() (err error) {
		v, err = e.vault.SetSecret(ctx, NewSecret{
			Name: e.settings.SecretName, Value: text, ContentType: SecretContentType, Expires: cred.End,
			Tags: map[string]string{TagAppID: app.AppID, TagKeyID: cred.KeyID},
		})
		if errors.Is(err, ErrSecretDeleted) {
			// Deleted since it was read: its name can be written again only once it is recovered.
			if rerr := e.startRecovery(ctx); rerr != nil {
				return rerr
			}
		}
		return err
	})
	if err != nil {
		err = fmt.Errorf("storing the new client secret of application %s in Key Vault as %s: %w", app.AppID, e.settings.SecretName, err)
		// A failure without a clear answer (a timeout, a dropped connection, a 5xx from a gateway) may
		// still have stored the version: removing the credential then would leave Key Vault holding a
		// secret the application lacks. So look first, with a context of its own (the run's may be over).
		check, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		stored, serr := e.storedVersion(check, cred.KeyID)
		switch {
		case serr != nil:
			log.Error("Key Vault failed and could not be read back; the new credential stays until a later rotate finds no version naming it", "err", serr.Error())
			return cred, v, errors.Join(err, serr)
		case stored != nil:
			log.Warn("Key Vault's answer was lost, but the version was stored", "secretId", stored.ID)
			return cred, *stored, nil
		}
		if rerr := e.removePassword(check, app.ObjectID, cred.KeyID); rerr != nil {
			log.Error("the new credential could not be removed after Key Vault refused it; a later rotate removes it", "err", rerr.Error())
			return cred, v, errors.Join(err, rerr)
		}
		log.Warn("Key Vault refused the new secret; its credential was removed again")
		return cred, v, err
	}
	log.Info("client secret stored", "secretId", v.ID)
	v.Value = NewSecretValue(text)
	return cred, v, nil
}

// recoveryTimeout bounds the wait for Key Vault to finish a recovery (seconds, sometimes a minute).
const recoveryTimeout = 90 * time.Second

// recoverSecret recovers the deleted secret with all its versions, waits until Key Vault serves it
// again (reads answer 404 and writes ObjectIsBeingRecovered until then), and reads it into o.
func (e *Engine) recoverSecret(ctx context.Context, o *Observation) error {
	name := e.settings.SecretName
	if err := e.startRecovery(ctx); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, recoveryTimeout)
	defer cancel()
	err := e.backoff.retry(wctx, "waiting for the recovery", transientOr(ErrNotFound), func() error {
		_, err := e.vault.Secret(wctx, name)
		if errors.Is(err, ErrSecretDisabled) {
			return nil // recovered; its current version is disabled, which readSecret tells
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("waiting for Key Vault to recover secret %s: %w", name, err)
	}
	logctx.From(ctx).Info("Key Vault secret recovered from soft delete", "secretName", name)
	if err := e.readSecret(ctx, o); err != nil {
		return err
	}
	return e.completeVersions(ctx, o)
}

// startRecovery asks Key Vault to recover the deleted secret. A recovery already under way, or one
// another run finished, is not an error.
func (e *Engine) startRecovery(ctx context.Context) error {
	name := e.settings.SecretName
	err := e.backoff.retry(ctx, "recovering the secret", transient, func() error {
		err := e.vault.RecoverDeletedSecret(ctx, name)
		if errors.Is(err, ErrRecovering) {
			return nil
		}
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("recovering deleted secret %s in Key Vault: %w", name, err)
	}
	return nil
}

// storedVersion finds the version of the secret that names keyID, nil when there is none.
func (e *Engine) storedVersion(ctx context.Context, keyID string) (*SecretVersion, error) {
	var vs []SecretVersion
	err := e.backoff.retry(ctx, "listing secret versions", transient, func() (err error) {
		vs, err = e.vault.SecretVersions(ctx, e.settings.SecretName)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("reading the versions of secret %s back: %w", e.settings.SecretName, err)
	}
	for i := range vs {
		if vs[i].KeyID() == keyID {
			return &vs[i], nil
		}
	}
	return nil, nil
}

// lifetimes tried, longest first, when the tenant's policy refuses the configured one and cannot be read.
var fallbackLifetimes = []time.Duration{365, 180, 90, 60, 30, 14, 7, 1}

func (e *Engine) addPassword(ctx context.Context, app *Application, fresh bool) (PasswordCredential, string, error) {
	retryable := transient
	if fresh {
		retryable = transientOr(ErrNotFound)
	}
	try := func(lifetime time.Duration) (cred PasswordCredential, text string, err error) {
		now := e.now()
		name := "appreg " + now.UTC().Format("2006-01-02T15:04:05Z")
		err = e.backoff.retry(ctx, "adding a password", retryable, func() (err error) {
			cred, text, err = e.dir.AddPassword(ctx, app.ObjectID, name, now.Add(lifetime).Truncate(time.Second))
			return err
		})
		return cred, text, err
	}
	lifetime := e.settings.SecretLifetime
	cred, text, err := try(lifetime)
	if errors.Is(err, ErrLifetimePolicy) {
		candidates := []time.Duration{}
		maxLife, perr := e.dir.MaxPasswordLifetime(ctx)
		if perr == nil && maxLife > 0 && maxLife < lifetime {
			candidates = append(candidates, maxLife-time.Minute)
		}
		for _, d := range fallbackLifetimes {
			if d*24*time.Hour < lifetime {
				candidates = append(candidates, d*24*time.Hour)
			}
		}
		for _, d := range candidates {
			logctx.From(ctx).Info("the tenant's app management policy refused the secret lifetime; trying a shorter one",
				"refused", lifetime.String(), "trying", d.String())
			lifetime = d
			if cred, text, err = try(d); !errors.Is(err, ErrLifetimePolicy) {
				break
			}
		}
	}
	if err != nil {
		return cred, "", fmt.Errorf("creating a client secret for application %s: %w", app.AppID, err)
	}
	return cred, text, nil
}

func (e *Engine) removePassword(ctx context.Context, objectID, keyID string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
	}
	err := e.backoff.retry(ctx, "removing a password", transient, func() error {
		return e.dir.RemovePassword(ctx, objectID, keyID)
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrRejected) {
		// Graph's answer for a keyId the application does not hold is undocumented (400 or 404), and a
		// lagging read may have shown one that is gone: what counts is that the application no longer
		// lists it. A credential old enough to be removed cannot be hidden by a lagging replica, so one read
		// without it settles the question.
		if e.credentialGone(ctx, keyID) {
			return nil
		}
	}
	return err // the adapter said what it was removing
}

// credentialGone reads the application a few times and tells whether one read lacks the credential.
func (e *Engine) credentialGone(ctx context.Context, keyID string) bool {
	for n := 0; n <= maxConfirmations; n++ {
		app, err := e.dir.Application(ctx, e.settings.UniqueName)
		switch {
		case err == nil && !slices.ContainsFunc(app.Passwords, func(c PasswordCredential) bool { return c.KeyID == keyID }):
			return true
		case err != nil && !IsTransient(err):
			return false
		}
		if sleep(ctx, e.backoff.delay(n)) != nil {
			return false
		}
	}
	return false
}

// appDiffers tells whether the application differs from the spec in what provisioning writes.
func appDiffers(app Application, spec AppSpec) bool {
	return app.DisplayName != spec.DisplayName || app.SignInAudience != spec.SignInAudience ||
		!sameAccess(app.RequiredResourceAccess, spec.RequiredResourceAccess)
}

func appDiffs(app *Application, spec AppSpec) string {
	var d []string
	if app.DisplayName != spec.DisplayName {
		d = append(d, "displayName")
	}
	if app.SignInAudience != spec.SignInAudience {
		d = append(d, "signInAudience")
	}
	if !sameAccess(app.RequiredResourceAccess, spec.RequiredResourceAccess) {
		d = append(d, "requiredResourceAccess")
	}
	return fmt.Sprint(d)
}

func accessSet(rra []ResourceAccess) []string {
	var s []string
	for _, ra := range rra {
		for _, a := range ra.Access {
			s = append(s, ra.ResourceAppID+"/"+a.ID+"/"+a.Type)
		}
	}
	sort.Strings(s)
	return s
}

func sameAccess(a, b []ResourceAccess) bool {
	x, y := accessSet(a), accessSet(b)
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}
