package appreg

import (
	"context"
	"fmt"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/logctx"
)

// Refresher asks an App Service to re-read its Key Vault references at once.
type Refresher interface {
	RefreshKeyVaultReferences(ctx context.Context, siteID string) (status int, err error)
}

// SetRefresher makes Rotate refresh the Key Vault references of these App Services after it stored a
// new version.
func (e *Engine) SetRefresher(r Refresher, siteIDs []string) {
	e.refresher, e.siteIDs = r, siteIDs
}

// Rotate renews the secret when it is missing, not on the application, expired or inside the renewal
// window: a new credential, stored as a new version, which only then is current. Then it removes the
// credentials that Removable allows, never the current one.
func (e *Engine) Rotate(ctx context.Context) (RotateResult, error) {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	res := RotateResult{Changes: []string{}}
	o, err := e.Observe(ctx)
	if err != nil {
		return res, err
	}
	if o.App == nil {
		return res, fmt.Errorf("rotating the secret: application %q: %w: call provision first", e.settings.UniqueName, ErrNotFound)
	}
	log := logctx.From(ctx).With("appId", o.App.AppID)
	ctx = logctx.With(ctx, log)

	state, _ := e.settings.secretState(o, e.now())
	reason := state.String()
	if state == SecretDeleted {
		// The name can be written again only once the secret is recovered. Then it is renewed, as the
		// contract says of a deleted secret: whoever deleted it may have had a reason (a leak), and the
		// recovered versions stay for the overlap rule.
		if err := e.recoverSecret(ctx, o); err != nil {
			return res, err
		}
		res.Changes = append(res.Changes, fmt.Sprintf("Key Vault secret %s recovered from soft delete, with all its versions", e.settings.SecretName))
	}
	if state != SecretCurrent {
		res.Renewed, res.Reason = true, reason
		cred, v, err := e.newSecret(ctx, o.App, false, true)
		if err != nil {
			return res, err
		}
		res.Changes = append(res.Changes,
			fmt.Sprintf("client secret %s created, expires %s", cred.KeyID, cred.End.UTC().Format("2006-01-02T15:04:05Z")),
			fmt.Sprintf("client secret stored in Key Vault as %s", v.ID))
		res.Secret = &SecretInfo{Name: e.settings.SecretName, ID: v.ID, KeyID: cred.KeyID, ExpiresOn: cred.End.UTC()}
		o.App.Passwords = append(o.App.Passwords, cred)
		o.Current = &v
		o.Versions = append(o.Versions, v)
		res.Refresh = e.refresh(ctx)
	} else if cred, ok := o.credential(o.currentKeyID()); ok {
		res.Reason = "current secret valid until " + cred.End.UTC().Format("2006-01-02T15:04:05Z")
		res.Secret = &SecretInfo{Name: e.settings.SecretName, ID: o.Current.ID, KeyID: cred.KeyID, ExpiresOn: cred.End.UTC()}
	}

	// The removal rule below may need the versions that the observation skipped.
	if err := e.completeVersions(ctx, o); err != nil {
		return res, err
	}
	if o.needsVersions() {
		// The versions could not be listed (the secret is deleted, or its recovery is still running):
		// without them no credential can be judged, so removals wait for the next run.
		log.Warn("the secret's versions could not be listed; credentials are removed by a later run")
		return res, nil
	}
	now := e.now()
	for _, c := range o.App.Passwords {
		ok, why := Removable(c, o.Current, o.Versions, e.settings.Overlap, now)
		if !ok {
			continue
		}
		if err := e.removePassword(ctx, o.App.ObjectID, c.KeyID); err != nil {
			return res, err
		}
		log.Info("credential removed", "keyId", c.KeyID, "reason", why)
		res.Removed = append(res.Removed, c.KeyID)
		res.Changes = append(res.Changes, fmt.Sprintf("credential %s removed: %s", c.KeyID, why))
	}
	return res, nil
}

// refreshTimeout bounds the refresh of one site.
const refreshTimeout = 45 * time.Second

// refresh asks every configured App Service to re-read its Key Vault references; a failure is logged and
// reported, and does not undo the rotation.
func (e *Engine) refresh(ctx context.Context) []RefreshResult {
	if e.refresher == nil {
		return nil
	}
	log := logctx.From(ctx)
	var rs []RefreshResult
	for _, id := range e.siteIDs {
		// The ARM client retries transient answers itself; a refresh is worth less than the rest of the
		// run, so it gets a bounded time of its own instead of the engine's retries.
		rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		status, err := e.refresher.RefreshKeyVaultReferences(rctx, id)
		cancel()
		r := RefreshResult{SiteID: id, Status: status}
		if err != nil {
			r.Error = err.Error()
			log.Error("refreshing Key Vault references failed; the site reads the new secret within 24 hours", "siteId", id, "status", status, "err", r.Error)
		} else {
			log.Info("Key Vault references refreshed", "siteId", id, "status", status)
		}
		rs = append(rs, r)
	}
	return rs
}

func (s SecretState) String() string {
	switch s {
	case SecretMissing:
		return "secret missing"
	case SecretDeleted:
		return "secret deleted"
	case SecretDisabled:
		return "secret disabled"
	case SecretNotOnApp:
		return "secret not on the application"
	case SecretRejected:
		return "secret refused by the token service"
	case SecretExpired:
		return "secret expired"
	case SecretExpiring:
		return "secret inside the renewal window"
	case SecretCurrent:
		return "secret current"
	}
	return fmt.Sprintf("SecretState(%d)", int(s))
}
