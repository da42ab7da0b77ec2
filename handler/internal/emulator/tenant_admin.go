package emulator

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// SetReplicationDelay sets how long objects created from now on stay invisible (0: none).
func (t *Tenant) SetReplicationDelay(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.replicationDelay = max(d, 0)
}

// SetLatency delays every answer of every service by d (0: none).
func (t *Tenant) SetLatency(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.latency = max(d, 0)
}

// SetConcurrencyViolationWindow makes a credential change (addPassword, removePassword) that follows
// another credential change to the same application within d fail with 409
// Directory_ConcurrencyViolation; 0 (the default) turns it off.
func (t *Tenant) SetConcurrencyViolationWindow(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.concurrencyWindow = max(d, 0)
}

// SetGraphRoles sets the Graph roles of tokens issued from now on.
func (t *Tenant) SetGraphRoles(roles ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.graphRoles = slices.Clone(roles)
}

// SetVaultRoles sets the identity's Key Vault RBAC roles, checked on every request.
func (t *Tenant) SetVaultRoles(roles ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.vaultRoles = slices.Clone(roles)
}

// SetMaxPasswordLifetime sets the default app management policy's password lifetime; 0: none.
func (t *Tenant) SetMaxPasswordLifetime(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.maxPasswordLifetime = max(d, 0)
}

// SoftDeleteApplication moves the application with that uniqueName to deletedItems, with its service
// principal and the assignments to and from it; its uniqueName stays taken. When there is no such
// application, a deleted one holding the name is made up, so that the name is taken all the same.
func (t *Tenant) SoftDeleteApplication(uniqueName string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	i := slices.IndexFunc(t.state.Applications, func(a Application) bool {
		return strings.EqualFold(a.UniqueName, uniqueName)
	})
	var app Application
	if i < 0 {
		app = Application{ID: NewGUID(), AppID: NewGUID(), DisplayName: uniqueName, UniqueName: uniqueName,
			SignInAudience: "AzureADMyOrg", CreatedDateTime: now}
	} else {
		app = t.state.Applications[i]
		t.state.Applications = slices.Delete(t.state.Applications, i, i+1)
		if sp := t.state.ServicePrincipalByAppID(app.AppID); sp != nil {
			id := sp.ID
			t.state.ServicePrincipals = slices.DeleteFunc(t.state.ServicePrincipals, func(s ServicePrincipal) bool { return s.ID == id })
			t.state.AppRoleAssignments = slices.DeleteFunc(t.state.AppRoleAssignments, func(a AppRoleAssignment) bool {
				return a.PrincipalID == id || a.ResourceID == id
			})
		}
	}
	app.DeletedDateTime = now
	t.state.DeletedApplications = append(t.state.DeletedApplications, app)
}

// SetSite registers an App Service (or slot) resource id whose Key Vault reference refresh answers
// status (200 for success).
func (t *Tenant) SetSite(id string, status int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := strings.ToLower(strings.TrimSuffix(id, "/"))
	t.sites[key] = status
	t.siteNames[key] = strings.TrimSuffix(id, "/")
}

// ExpireSecret stands in for the passing of time on a running emulated tenant: it moves the end of the
// credential that the current version of the secret names, and that version's exp, to now+in (as if the
// secret had been created that much earlier); the credential may be in any tenant of the world (an
// instance in a customer's tenant keeps its secret in the home vault). It returns the credential's keyId. It is how `make run`
// shows a renewal without waiting months.
func (t *Tenant) ExpireSecret(name string, in time.Duration) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sec := t.state.Secret(name)
	if sec == nil || sec.Current() == nil {
		return "", fmt.Errorf("the emulated vault holds no secret %q: provision first", name)
	}
	cur := sec.Current()
	keyID := cur.Tags["keyId"]
	var cred *PasswordCredential
	t.eachApplication(func(a *Application) {
		if c := a.PasswordCredential(keyID); c != nil {
			cred = c
		}
	})
	if cred == nil {
		return "", fmt.Errorf("no application holds credential %q, which secret %q names", keyID, name)
	}
	end := t.now().Add(in)
	cred.EndDateTime, cur.Expires = end, end
	return keyID, nil
}

// TamperSecret stands in for an admin who pastes a wrong value into the vault: it stores a new version of
// the secret with a value no credential holds and the current version's tags, so that Key Vault and Graph
// still look right and only a sign-in can tell. The current credential is first made an hour old (as if
// provisioned that long ago), so that the refusal reads as a wrong value, not as replication. It returns
// the keyId the tampered version names. It is how `make run` shows the sign-in check.
func (t *Tenant) TamperSecret(name string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sec := t.state.Secret(name)
	if sec == nil || sec.Current() == nil {
		return "", fmt.Errorf("the emulated vault holds no secret %q: provision first", name)
	}
	cur := *sec.Current()
	keyID := cur.Tags["keyId"]
	t.eachApplication(func(a *Application) {
		if c := a.PasswordCredential(keyID); c != nil {
			if hourAgo := t.now().Add(-time.Hour); c.StartDateTime.After(hourAgo) {
				c.StartDateTime = hourAgo
			}
			c.AddedAt = time.Time{}
		}
	})
	now := t.now()
	cur.Version, cur.Value, cur.Created, cur.Updated, cur.Tags = newSecretVersion(), "tampered-"+newSecretText(), now, now, maps.Clone(cur.Tags)
	sec.Versions = append(sec.Versions, cur)
	t.issue(cur.Value)
	return keyID, nil
}

// eachApplication runs fn on every active application of every tenant of the world, the home tenant's
// first. Runs under t.mu.
func (t *Tenant) eachApplication(fn func(*Application)) {
	home := t.homeDir()
	for _, d := range append([]*directory{home}, t.otherDirs()...) {
		for i := range d.state.Applications {
			fn(&d.state.Applications[i])
		}
	}
}
