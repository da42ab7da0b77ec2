package keyvault_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/azure"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
	"github.com/scepman-appreg/appreg/handler/internal/keyvault"
)

// wantServiceError fails unless err is a Key Vault *appreg.ServiceError of kind with that status and
// code, and returns it.
func wantServiceError(t *testing.T, ten *emulator.Tenant, what string, err, kind error, status int, code string) *appreg.ServiceError {
	t.Helper()
	var se *appreg.ServiceError
	if !errors.As(err, &se) || !errors.Is(err, kind) {
		t.Fatalf("%s: err = %v, want a *appreg.ServiceError of kind %v", what, err, kind)
	}
	if se.Service != appreg.ServiceKeyVault || se.Status != status || se.Code != code {
		t.Errorf("%s: ServiceError {Service %q Status %d Code %q}, want {%q %d %q}", what, se.Service, se.Status, se.Code,
			appreg.ServiceKeyVault, status, code)
	}
	checkNoSecretIn(t, ten, what+": the error", err.Error())
	return se
}

// TestSoftDeleteThroughSDK drives the real azsecrets client and the adapter through a soft delete, a
// delayed recovery, a disabled version and the vault's firewall, as real Key Vault answers them.
func TestSoftDeleteThroughSDK(t *testing.T) {
	ten := emulatortest.Start(t, emulator.Options{})
	hc := ten.HTTPClient()
	v := newVault(t, ten, hc)
	ctx := ctxFor(t)

	var first, second appreg.SecretVersion
	for i, sv := range []*appreg.SecretVersion{&first, &second} {
		var err error
		*sv, err = v.SetSecret(ctx, appreg.NewSecret{Name: "app-key", Value: "value-" + string(rune('a'+i)), ContentType: "text/plain",
			Tags: map[string]string{appreg.TagKeyID: "key-" + string(rune('a'+i))}})
		if err != nil {
			t.Fatalf("SetSecret %d: %v", i, err)
		}
	}

	// An admin deletes the secret: azsecrets DeleteSecret, as the portal or az keyvault secret delete.
	cred, err := azure.NewCredential(os.Getenv, hc)
	if err != nil {
		t.Fatalf("NewCredential: %v", err)
	}
	raw, err := azsecrets.NewClient(ten.VaultURL(), cred, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hc}})
	if err != nil {
		t.Fatalf("azsecrets.NewClient: %v", err)
	}
	del, err := raw.DeleteSecret(ctx, "app-key", nil)
	if err != nil {
		t.Fatalf("DeleteSecret: %v", err)
	}
	if del.ID == nil || string(*del.ID) != second.ID || del.Value != nil || del.RecoveryID == nil ||
		*del.RecoveryID != ten.VaultURL()+"deletedsecrets/app-key" || del.DeletedDate == nil || del.ScheduledPurgeDate == nil {
		t.Errorf("DeleteSecret answered id %v recoveryId %v deleted %v purge %v (value present: %v); want %s, its recoveryId and dates, no value",
			del.ID, del.RecoveryID, del.DeletedDate, del.ScheduledPurgeDate, del.Value != nil, second.ID)
	}

	_, err = v.Secret(ctx, "app-key")
	wantServiceError(t, ten, "Secret of a deleted secret", err, appreg.ErrNotFound, 404, "SecretNotFound")
	_, err = v.SecretVersions(ctx, "app-key")
	wantServiceError(t, ten, "SecretVersions of a deleted secret", err, appreg.ErrNotFound, 404, "SecretNotFound")
	_, err = v.SetSecret(ctx, appreg.NewSecret{Name: "app-key", Value: "value-c"})
	wantServiceError(t, ten, "SetSecret of a deleted secret", err, appreg.ErrSecretDeleted, 409, "Conflict/ObjectIsDeletedButRecoverable")

	ds, err := v.DeletedSecret(ctx, "app-key")
	if err != nil {
		t.Fatalf("DeletedSecret: %v", err)
	}
	if ds.ID != second.ID || ds.RecoveryID != ten.VaultURL()+"deletedsecrets/app-key" || ds.Tags[appreg.TagKeyID] != "key-b" ||
		ds.DeletedOn.IsZero() || !ds.ScheduledPurge.Equal(ds.DeletedOn.Add(90*24*time.Hour)) {
		t.Errorf("DeletedSecret = %+v, want id %s, its recoveryId, keyId key-b, purge 90 days after deletion", ds, second.ID)
	}
	_, err = v.DeletedSecret(ctx, "other-key")
	wantServiceError(t, ten, "DeletedSecret of nothing", err, appreg.ErrNotFound, 404, "SecretNotFound")
	err = v.RecoverDeletedSecret(ctx, "other-key")
	wantServiceError(t, ten, "RecoverDeletedSecret of nothing", err, appreg.ErrNotFound, 404, "SecretNotFound")

	const delay = 4 * time.Second // the checks below must fit in it, under -race on a loaded machine too
	ten.SetRecoveryDelay(delay)
	began := time.Now()
	if err := v.RecoverDeletedSecret(ctx, "app-key"); err != nil {
		t.Fatalf("RecoverDeletedSecret: %v", err)
	}
	_, err = v.SetSecret(ctx, appreg.NewSecret{Name: "app-key", Value: "value-c"})
	wantServiceError(t, ten, "SetSecret while recovering", err, appreg.ErrRecovering, 409, "Conflict/ObjectIsBeingRecovered")
	err = v.RecoverDeletedSecret(ctx, "app-key")
	wantServiceError(t, ten, "RecoverDeletedSecret while recovering", err, appreg.ErrRecovering, 409, "Conflict/ObjectIsBeingRecovered")
	_, err = v.Secret(ctx, "app-key")
	wantServiceError(t, ten, "Secret while recovering", err, appreg.ErrNotFound, 404, "SecretNotFound")
	_, err = v.DeletedSecret(ctx, "app-key")
	wantServiceError(t, ten, "DeletedSecret while recovering", err, appreg.ErrNotFound, 404, "SecretNotFound")
	if time.Since(began) >= delay {
		t.Fatalf("the checks during the recovery took longer than its delay (%v): raise it", delay)
	}

	// The recovery's delay runs from when the emulator applied the recover, a moment after began: read
	// until it has ended, within a few seconds more.
	time.Sleep(time.Until(began.Add(delay)))
	got, err := v.Secret(ctx, "app-key")
	for deadline := time.Now().Add(5 * time.Second); errors.Is(err, appreg.ErrNotFound) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		got, err = v.Secret(ctx, "app-key")
	}
	if err != nil || got.ID != second.ID || got.KeyID() != "key-b" {
		t.Fatalf("Secret after the recovery = %+v, %v; want %s", got, err, second.ID)
	}
	versions, err := v.SecretVersions(ctx, "app-key")
	if err != nil || len(versions) != 2 {
		t.Fatalf("SecretVersions after the recovery: %d versions, %v; want 2", len(versions), err)
	}

	// A disabled current version reads as 403 SecretDisabled and still lists; a new version may be stored.
	if err := ten.DisableCurrentVersion("app-key"); err != nil {
		t.Fatal(err)
	}
	_, err = v.Secret(ctx, "app-key")
	se := wantServiceError(t, ten, "Secret of a disabled version", err, appreg.ErrSecretDisabled, 403, "Forbidden/SecretDisabled")
	if se.Advice != keyvault.AdviceDisabled || se.Need != "" {
		t.Errorf("disabled: Advice %q Need %q, want %q and none", se.Advice, se.Need, keyvault.AdviceDisabled)
	}
	versions, err = v.SecretVersions(ctx, "app-key")
	if err != nil {
		t.Fatalf("SecretVersions with a disabled version: %v", err)
	}
	for _, sv := range versions {
		if sv.ID == second.ID && (sv.Enabled || sv.KeyID() != "key-b") {
			t.Errorf("listed disabled version %+v, want enabled false with keyId key-b", sv)
		}
	}
	third, err := v.SetSecret(ctx, appreg.NewSecret{Name: "app-key", Value: "value-c"})
	if err != nil {
		t.Fatalf("SetSecret after a disabled version: %v", err)
	}
	if got, err := v.Secret(ctx, "app-key"); err != nil || got.ID != third.ID {
		t.Errorf("Secret after a new version = %+v, %v; want %s", got, err, third.ID)
	}

	// The firewall's 403 and a missing role's 403 are told apart by the inner code.
	ten.SetVaultFirewall(true)
	_, err = v.Secret(ctx, "app-key")
	se = wantServiceError(t, ten, "Secret behind the firewall", err, appreg.ErrForbidden, 403, "Forbidden/ForbiddenByFirewall")
	if se.Advice != keyvault.AdviceFirewall || se.Need != "" {
		t.Errorf("firewall: Advice %q Need %q, want %q and none", se.Advice, se.Need, keyvault.AdviceFirewall)
	}
	_, err = v.SetSecret(ctx, appreg.NewSecret{Name: "app-key", Value: "value-d"})
	wantServiceError(t, ten, "SetSecret behind the firewall", err, appreg.ErrForbidden, 403, "Forbidden/ForbiddenByFirewall")
	ten.SetVaultFirewall(false)
	ten.SetVaultRoles()
	_, err = v.Secret(ctx, "app-key")
	se = wantServiceError(t, ten, "Secret without a role", err, appreg.ErrForbidden, 403, "Forbidden/ForbiddenByRbac")
	if se.Advice != "" || se.Need != keyvault.NeedSecretsOfficer {
		t.Errorf("no role: Advice %q Need %q, want none and %q", se.Advice, se.Need, keyvault.NeedSecretsOfficer)
	}

	st := ten.Stats()
	for _, op := range []string{emulator.OpDeleteSecret, emulator.OpGetDeletedSecret, emulator.OpRecoverDeletedSecret} {
		if st.Op(op).Requests == 0 {
			t.Errorf("the tenant counted no %s", op)
		}
	}
}
