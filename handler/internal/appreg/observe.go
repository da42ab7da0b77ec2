package appreg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/scepman-appreg/appreg/handler/internal/logctx"
)

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
	// A 404 is no list: the secret may be deleted, or its recovery still running (reads answer 404 until
	// it ends), so what no version names is not known yet.
	o.Versions, o.versionsListed = vs, err == nil
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
