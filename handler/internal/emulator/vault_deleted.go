package emulator

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Key Vault behaviours of a real vault that are off by default: soft delete and recovery
// (azure.md section 8), disabled versions and the vault firewall.

// softDeleteRetention is how long a deleted secret stays recoverable (the vault's retention, 90 days).
const softDeleteRetention = 90 * 24 * time.Hour

// firewallClientAddress is the client address the emulated firewall reports (TEST-NET-3).
const firewallClientAddress = "203.0.113.7"

// vaultRealism holds the Key Vault options; guarded by Tenant.mu.
type vaultRealism struct {
	firewall      bool          // every authenticated request answers 403 ForbiddenByFirewall
	recoveryDelay time.Duration // how long a recovery runs (wall clock); 0: at once
}

// SetVaultFirewall turns the vault's firewall on or off: while on, every Key Vault request with a valid
// token answers 403 Forbidden with inner code ForbiddenByFirewall (the 401 challenge still comes first).
func (t *Tenant) SetVaultFirewall(on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.vaultRealism.firewall = on
}

// SetRecoveryDelay sets how long a recovery of a deleted secret (POST /deletedsecrets/{name}/recover)
// runs, wall clock; 0 (the default): the secret is back at once. While it runs, reads of the secret
// answer 404 SecretNotFound, writes 409 ObjectIsBeingRecovered, and GET /deletedsecrets/{name} 404.
func (t *Tenant) SetRecoveryDelay(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.vaultRealism.recoveryDelay = max(d, 0)
}

// DeleteSecret soft-deletes a secret as an admin does in the portal: the secret moves with all its
// versions to State.DeletedSecrets (deleted now, purged in 90 days). Until it is recovered or purged,
// reads answer 404 SecretNotFound and writes 409 ObjectIsDeletedButRecoverable.
func (t *Tenant) DeleteSecret(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settleRecoveries()
	if _, err := t.softDelete(name); err != nil {
		return fmt.Errorf("emulator: deleting secret %q: %w", name, err)
	}
	return nil
}

// PurgeDeletedSecret drops a deleted secret for good (recovering or not); its name is free again.
func (t *Tenant) PurgeDeletedSecret(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settleRecoveries()
	var kept []DeletedSecret
	for _, d := range t.state.DeletedSecrets {
		if !strings.EqualFold(d.Name, name) {
			kept = append(kept, d)
		}
	}
	t.state.DeletedSecrets = kept
}

// DisableCurrentVersion disables the current version of a secret (as PATCH attributes.enabled=false
// does): a GET of it then answers 403 Forbidden, inner code SecretDisabled.
func (t *Tenant) DisableCurrentVersion(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settleRecoveries()
	cur := t.state.Secret(name).Current()
	if cur == nil {
		return fmt.Errorf("emulator: disabling secret %q: the vault holds no such secret", name)
	}
	cur.Enabled = false
	cur.Updated = t.now()
	return nil
}

// The functions below run under t.mu.

// settleRecoveries moves the secrets whose recovery has completed back to Secrets.
func (t *Tenant) settleRecoveries() {
	now := time.Now()
	var kept []DeletedSecret
	for _, d := range t.state.DeletedSecrets {
		if d.RecoveredAt.IsZero() || now.Before(d.RecoveredAt) {
			kept = append(kept, d)
			continue
		}
		t.state.Secrets = append(t.state.Secrets, Secret{Name: d.Name, Versions: d.Versions})
	}
	t.state.DeletedSecrets = kept
}

// deletedSecret returns the deleted secret with that name (case-insensitive), recovering or not, or nil.
func (t *Tenant) deletedSecret(name string) *DeletedSecret {
	for i := range t.state.DeletedSecrets {
		if strings.EqualFold(t.state.DeletedSecrets[i].Name, name) {
			return &t.state.DeletedSecrets[i]
		}
	}
	return nil
}

// softDelete moves a live secret to DeletedSecrets and returns its entry there.
func (t *Tenant) softDelete(name string) (*DeletedSecret, error) {
	if d := t.deletedSecret(name); d != nil {
		if !d.RecoveredAt.IsZero() {
			return nil, errors.New("it is being recovered")
		}
		return nil, errors.New("it is already deleted")
	}
	for i, sec := range t.state.Secrets {
		if !strings.EqualFold(sec.Name, name) {
			continue
		}
		if len(sec.Versions) == 0 {
			break
		}
		now := t.now()
		t.state.Secrets = append(t.state.Secrets[:i:i], t.state.Secrets[i+1:]...)
		t.state.DeletedSecrets = append(t.state.DeletedSecrets, DeletedSecret{
			Name: sec.Name, Versions: sec.Versions, DeletedDate: now, ScheduledPurgeDate: now.Add(softDeleteRetention),
		})
		return &t.state.DeletedSecrets[len(t.state.DeletedSecrets)-1], nil
	}
	return nil, errors.New("the vault holds no such secret")
}

// vaultConflict is Key Vault's 409 with an inner code.
func vaultConflict(inner, message string) answer {
	return jsonAnswer(http.StatusConflict, map[string]any{"error": map[string]any{
		"code": "Conflict", "message": message, "innererror": map[string]any{"code": inner},
	}}, "application/json; charset=utf-8")
}

// beingRecovered is the 409 a write of a secret under recovery answers.
func beingRecovered(name string) answer {
	return vaultConflict("ObjectIsBeingRecovered", fmt.Sprintf(
		"Secret %s is currently being recovered, and its name cannot be reused; retry the operation after the recovery has completed.", name))
}

// deletedConflict is the 409 a write of a deleted (or recovering) secret answers; nil when it is not.
func (t *Tenant) deletedConflict(name string) *answer {
	d := t.deletedSecret(name)
	if d == nil {
		return nil
	}
	ans := vaultConflict("ObjectIsDeletedButRecoverable", fmt.Sprintf(
		"Secret %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.", name))
	if !d.RecoveredAt.IsZero() {
		ans = beingRecovered(name)
	}
	return &ans
}

func (t *Tenant) deletedSecretNotFound(req *request) answer {
	return t.errorAnswer(req, http.StatusNotFound, "SecretNotFound", "Deleted Secret not found")
}

// deletedSecretJSON is a DeletedSecretBundle (without the value).
func (t *Tenant) deletedSecretJSON(d DeletedSecret) map[string]any {
	var cur SecretVersion
	if n := len(d.Versions); n > 0 {
		cur = d.Versions[n-1]
	}
	out := t.secretJSON(d.Name, cur, false)
	if cur.Version == "" {
		out["id"] = t.vaultBase() + "/secrets/" + d.Name
	}
	out["recoveryId"] = t.vaultBase() + "/deletedsecrets/" + d.Name
	out["deletedDate"] = d.DeletedDate.Unix()
	out["scheduledPurgeDate"] = d.ScheduledPurgeDate.Unix()
	return out
}

// vaultFirewallAnswer is the firewall's 403 to the caller c.
func (t *Tenant) vaultFirewallAnswer(c *claims) *answer {
	msg := "Client address is not authorized and caller is not a trusted service.\r\n" +
		"Client address: " + firewallClientAddress + "\r\n" +
		fmt.Sprintf("Caller: appid=%s;oid=%s;iss=%s\r\n", c.AppID, c.Oid, c.Iss) +
		fmt.Sprintf("Vault: %s;location=westeurope", t.vaultName)
	ans := jsonAnswer(http.StatusForbidden, map[string]any{"error": map[string]any{
		"code": "Forbidden", "message": msg, "innererror": map[string]any{"code": "ForbiddenByFirewall"},
	}}, "application/json; charset=utf-8")
	return &ans
}

// deletedSecretRoute maps a request under /deletedsecrets to its operation.
func (t *Tenant) deletedSecretRoute(req *request) (route, bool) {
	segs, m := req.segs, req.method
	switch {
	case m == http.MethodGet && (len(segs) == 2 || (len(segs) == 3 && segs[2] == "")) && segs[1] != "":
		name := segs[1]
		return route{op: OpGetDeletedSecret, handle: func(r *request) answer { return t.getDeletedSecret(r, name) }}, true
	case m == http.MethodPost && len(segs) == 3 && strings.EqualFold(segs[2], "recover"):
		name := segs[1]
		return route{op: OpRecoverDeletedSecret, write: true, handle: func(r *request) answer { return t.recoverDeletedSecret(r, name) }}, true
	}
	return route{}, false
}

// deleteSecret serves DELETE /secrets/{name}.
func (t *Tenant) deleteSecret(req *request, name string) answer {
	if ans := t.badSecretName(req, name); ans != nil {
		return *ans
	}
	if ans := t.vaultAllowed(req, "delete", "/secrets/"+name); ans != nil {
		return *ans
	}
	if d := t.deletedSecret(name); d != nil && !d.RecoveredAt.IsZero() {
		return beingRecovered(name)
	}
	d, err := t.softDelete(name)
	if err != nil {
		return t.secretNotFound(req, name)
	}
	req.applied = true
	return t.vaultJSON(http.StatusOK, t.deletedSecretJSON(*d))
}

// getDeletedSecret serves GET /deletedsecrets/{name}.
func (t *Tenant) getDeletedSecret(req *request, name string) answer {
	if ans := t.badSecretName(req, name); ans != nil {
		return *ans
	}
	if ans := t.vaultAllowed(req, "readDeleted", "/deletedsecrets/"+name); ans != nil {
		return *ans
	}
	d := t.deletedSecret(name)
	if d == nil || !d.RecoveredAt.IsZero() {
		return t.deletedSecretNotFound(req)
	}
	return t.vaultJSON(http.StatusOK, t.deletedSecretJSON(*d))
}

// recoverDeletedSecret serves POST /deletedsecrets/{name}/recover: it answers the current version's
// bundle (without the value) and the secret comes back after the recovery delay.
func (t *Tenant) recoverDeletedSecret(req *request, name string) answer {
	if ans := t.badSecretName(req, name); ans != nil {
		return *ans
	}
	if ans := t.vaultAllowed(req, "recover", "/deletedsecrets/"+name); ans != nil {
		return *ans
	}
	d := t.deletedSecret(name)
	if d == nil {
		return t.deletedSecretNotFound(req)
	}
	if !d.RecoveredAt.IsZero() {
		return beingRecovered(name)
	}
	body := t.deletedSecretJSON(*d)
	for _, k := range []string{"recoveryId", "deletedDate", "scheduledPurgeDate"} {
		delete(body, k)
	}
	d.RecoveredAt = time.Now().Add(t.vaultRealism.recoveryDelay)
	t.settleRecoveries()
	req.applied = true
	return t.vaultJSON(http.StatusOK, body)
}
