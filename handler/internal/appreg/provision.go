package appreg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/logctx"
)

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
