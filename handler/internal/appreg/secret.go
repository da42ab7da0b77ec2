package appreg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/logctx"
)

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
