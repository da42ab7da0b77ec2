package emulator

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// innerCode returns error.innererror.code of an error answer.
func (r reply) innerCode(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	inner, _ := e["innererror"].(map[string]any)
	return str(inner, "code")
}

// vaultStep is one request of a sequence and what it must answer.
type vaultStep struct {
	name       string
	method     string
	path       string
	body       []byte
	wantStatus int
	wantCode   string // error.code; "" for a success
	wantInner  string // error.innererror.code
	wantMsg    string // error.message prefix
}

func (h *harness) runSteps(t *testing.T, tok string, steps []vaultStep) {
	t.Helper()
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := h.vault(st.method, st.path, tok, st.body)
			if r.status != st.wantStatus {
				t.Fatalf("%s %s: status %d, want %d: %s", st.method, st.path, r.status, st.wantStatus, r.body)
			}
			if st.wantCode == "" {
				return
			}
			if got := r.errorCode(t); got != st.wantCode {
				t.Errorf("error.code = %q, want %q", got, st.wantCode)
			}
			if got := r.innerCode(t); got != st.wantInner {
				t.Errorf("innererror.code = %q, want %q", got, st.wantInner)
			}
			if got := r.errorMessage(t); !strings.HasPrefix(got, st.wantMsg) {
				t.Errorf("error.message = %q, want prefix %q", got, st.wantMsg)
			}
		})
	}
}

// seedVersions stores values as successive versions of a secret and returns their ids.
func (h *harness) seedVersions(tok, name string, bodies ...string) []string {
	h.t.Helper()
	var ids []string
	for _, b := range bodies {
		r := h.vault(http.MethodPut, "/secrets/"+name, tok, []byte(b))
		if r.status != http.StatusOK {
			h.t.Fatalf("seeding %s: status %d: %s", name, r.status, r.body)
		}
		ids = append(ids, str(r.json(h.t), "id"))
	}
	return ids
}

// listedVersions returns the listed versions of a secret (all pages), keyed by id.
func (h *harness) listedVersions(tok, name string) map[string]map[string]any {
	h.t.Helper()
	out := map[string]map[string]any{}
	next := h.tenant.VaultURL() + "secrets/" + name + "/versions?api-version=7.4"
	for next != "" {
		r := h.call(http.MethodGet, next, tok, nil, nil)
		if r.status != http.StatusOK {
			h.t.Fatalf("listing versions of %s: status %d: %s", name, r.status, r.body)
		}
		body := r.json(h.t)
		for _, v := range body["value"].([]any) {
			item := v.(map[string]any)
			out[str(item, "id")] = item
		}
		next = str(body, "nextLink")
	}
	return out
}

const (
	msgDeletedButRecoverable = "Secret sd is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."
	msgSecretNotFound        = "A secret with (name/id) sd"
)

func TestKeyVaultSoftDeleteAndRecover(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	h := start(t, Options{Now: func() time.Time { return now }})
	tok := h.token(AudienceVault)
	ids := h.seedVersions(tok, "sd", `{"value":"first-value"}`, `{"value":"second-value","contentType":"text/plain","tags":{"keyId":"k2"}}`)

	r := h.vault(http.MethodDelete, "/secrets/sd", tok, nil)
	if r.status != http.StatusOK {
		t.Fatalf("DELETE: status %d, want 200: %s", r.status, r.body)
	}
	checkDeletedBundle(t, h, r.json(t), ids[1], now)

	h.runSteps(t, tok, []vaultStep{
		{"get deleted secret", http.MethodGet, "/secrets/sd", nil, 404, "SecretNotFound", "", msgSecretNotFound},
		{"get a version of a deleted secret", http.MethodGet, "/secrets/sd/" + ids[0][len(ids[0])-32:], nil, 404, "SecretNotFound", "", msgSecretNotFound},
		{"list versions of a deleted secret", http.MethodGet, "/secrets/sd/versions", nil, 404, "SecretNotFound", "", msgSecretNotFound},
		{"put a deleted secret", http.MethodPut, "/secrets/sd", []byte(`{"value":"third-value"}`), 409, "Conflict", "ObjectIsDeletedButRecoverable", msgDeletedButRecoverable},
		{"put a deleted secret, other case", http.MethodPut, "/secrets/SD", []byte(`{"value":"third-value"}`), 409, "Conflict", "ObjectIsDeletedButRecoverable", "Secret SD is currently in a deleted but recoverable state"},
		{"delete again", http.MethodDelete, "/secrets/sd", nil, 404, "SecretNotFound", "", msgSecretNotFound},
		{"get deleted", http.MethodGet, "/deletedsecrets/sd", nil, 200, "", "", ""},
		{"get deleted of an unknown name", http.MethodGet, "/deletedsecrets/other", nil, 404, "SecretNotFound", "", "Deleted Secret not found"},
		{"recover nothing", http.MethodPost, "/deletedsecrets/other/recover", nil, 404, "SecretNotFound", "", "Deleted Secret not found"},
	})

	r = h.vault(http.MethodGet, "/secrets", tok, nil)
	if r.status != http.StatusOK || len(r.json(t)["value"].([]any)) != 0 {
		t.Errorf("list secrets while deleted: %d %s, want 200 and no secret", r.status, r.body)
	}
	checkDeletedBundle(t, h, h.vault(http.MethodGet, "/deletedsecrets/sd", tok, nil).json(t), ids[1], now)

	r = h.vault(http.MethodPost, "/deletedsecrets/sd/recover", tok, nil)
	if r.status != http.StatusOK {
		t.Fatalf("recover: status %d, want 200: %s", r.status, r.body)
	}
	if got := r.json(t); str(got, "id") != ids[1] || got["value"] != nil || got["recoveryId"] != nil {
		t.Errorf("recover answered %s, want the bundle of %s without value", r.body, ids[1])
	}
	h.runSteps(t, tok, []vaultStep{
		{"get recovered", http.MethodGet, "/secrets/sd", nil, 200, "", "", ""},
		{"get recovered first version", http.MethodGet, "/secrets/sd/" + ids[0][len(ids[0])-32:], nil, 200, "", "", ""},
		{"get deleted after recovery", http.MethodGet, "/deletedsecrets/sd", nil, 404, "SecretNotFound", "", "Deleted Secret not found"},
		{"recover again", http.MethodPost, "/deletedsecrets/sd/recover", nil, 404, "SecretNotFound", "", "Deleted Secret not found"},
		{"put after recovery", http.MethodPut, "/secrets/sd", []byte(`{"value":"third-value"}`), 200, "", "", ""},
	})
	if got := h.listedVersions(tok, "sd"); len(got) != 3 || got[ids[0]] == nil || got[ids[1]] == nil {
		t.Errorf("versions after recovery and a new put = %v, want 3 including %q", got, ids)
	}

	st := h.tenant.Stats()
	for op, want := range map[string]OpStats{
		OpDeleteSecret:         {Requests: 2, Writes: 2, Applied: 1, Errors: 1},
		OpRecoverDeletedSecret: {Requests: 3, Writes: 3, Applied: 1, Errors: 2},
		OpGetDeletedSecret:     {Requests: 4, Errors: 2},
	} {
		got := st.Op(op)
		if got.Requests != want.Requests || got.Writes != want.Writes || got.Applied != want.Applied || got.Errors != want.Errors {
			t.Errorf("stats of %s = %+v, want %+v", op, got, want)
		}
	}
}

// checkDeletedBundle checks a DeletedSecretBundle of secret sd whose current version is id.
func checkDeletedBundle(t *testing.T, h *harness, b map[string]any, id string, deleted time.Time) {
	t.Helper()
	if str(b, "id") != id || b["value"] != nil {
		t.Errorf("deleted bundle id %v value present %v, want %s without value", b["id"], b["value"] != nil, id)
	}
	if got, want := str(b, "recoveryId"), h.tenant.VaultURL()+"deletedsecrets/sd"; got != want {
		t.Errorf("recoveryId = %q, want %q", got, want)
	}
	if got := b["deletedDate"]; got != float64(deleted.Unix()) {
		t.Errorf("deletedDate = %v, want %d", got, deleted.Unix())
	}
	if got, want := b["scheduledPurgeDate"], float64(deleted.Add(90*24*time.Hour).Unix()); got != want {
		t.Errorf("scheduledPurgeDate = %v, want %v", got, want)
	}
	tags, _ := b["tags"].(map[string]any)
	attrs, _ := b["attributes"].(map[string]any)
	if tags["keyId"] != "k2" || str(b, "contentType") != "text/plain" || attrs["enabled"] != true {
		t.Errorf("deleted bundle tags %v contentType %v attributes %v, want the current version's", tags, b["contentType"], attrs)
	}
}

func TestKeyVaultRecoveryDelay(t *testing.T) {
	const delay = 700 * time.Millisecond
	h := start(t, Options{})
	tok := h.token(AudienceVault)
	ids := h.seedVersions(tok, "sd", `{"value":"first-value"}`, `{"value":"second-value"}`)
	if err := h.tenant.DeleteSecret("sd"); err != nil {
		t.Fatalf("DeleteSecret: %v", err)
	}
	h.tenant.SetRecoveryDelay(delay)
	began := time.Now()
	if r := h.vault(http.MethodPost, "/deletedsecrets/sd/recover", tok, nil); r.status != http.StatusOK {
		t.Fatalf("recover: status %d, want 200: %s", r.status, r.body)
	}
	const msgRecovering = "Secret sd is currently being recovered"
	h.runSteps(t, tok, []vaultStep{
		{"get while recovering", http.MethodGet, "/secrets/sd", nil, 404, "SecretNotFound", "", msgSecretNotFound},
		{"list versions while recovering", http.MethodGet, "/secrets/sd/versions", nil, 404, "SecretNotFound", "", msgSecretNotFound},
		{"put while recovering", http.MethodPut, "/secrets/sd", []byte(`{"value":"third-value"}`), 409, "Conflict", "ObjectIsBeingRecovered", msgRecovering},
		{"delete while recovering", http.MethodDelete, "/secrets/sd", nil, 409, "Conflict", "ObjectIsBeingRecovered", msgRecovering},
		{"get deleted while recovering", http.MethodGet, "/deletedsecrets/sd", nil, 404, "SecretNotFound", "", "Deleted Secret not found"},
		{"recover while recovering", http.MethodPost, "/deletedsecrets/sd/recover", nil, 409, "Conflict", "ObjectIsBeingRecovered", msgRecovering},
	})
	if time.Since(began) >= delay {
		t.Fatalf("the checks during the delay took longer than the delay (%v): raise it", delay)
	}
	time.Sleep(time.Until(began.Add(delay)))
	h.runSteps(t, tok, []vaultStep{
		{"get after the delay", http.MethodGet, "/secrets/sd", nil, 200, "", "", ""},
		{"put after the delay", http.MethodPut, "/secrets/sd", []byte(`{"value":"third-value"}`), 200, "", "", ""},
	})
	if got := h.listedVersions(tok, "sd"); len(got) != 3 || got[ids[0]] == nil || got[ids[1]] == nil {
		t.Errorf("versions after the recovery = %v, want 3 including %q", got, ids)
	}
	if snap := h.tenant.Snapshot(); len(snap.DeletedSecrets) != 0 {
		t.Errorf("DeletedSecrets after the recovery = %+v, want none", snap.DeletedSecrets)
	}
}

func TestKeyVaultDeletedSecretRBAC(t *testing.T) {
	tests := []struct {
		name                                 string
		roles                                []string
		wantDelete, wantGetDeleted, wantRecv int
	}{
		{"officer", []string{VaultRoleSecretsOfficer}, 200, 200, 200},
		{"administrator", []string{VaultRoleAdministrator}, 200, 200, 200},
		{"secrets user", []string{VaultRoleSecretsUser}, 403, 403, 403},
		{"reader", []string{VaultRoleReader}, 403, 403, 403},
		{"none", []string{}, 403, 403, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{})
			tok := h.token(AudienceVault)
			h.seedVersions(tok, "sd", `{"value":"v1"}`)
			h.tenant.SetVaultRoles(tc.roles...)
			check := func(what string, r reply, want int) {
				t.Helper()
				if r.status != want {
					t.Errorf("%s: status %d, want %d: %s", what, r.status, want, r.body)
				}
				if r.status == 403 && (r.errorCode(t) != "Forbidden" || r.innerCode(t) != "ForbiddenByRbac") {
					t.Errorf("%s: 403 body %s, want Forbidden/ForbiddenByRbac", what, r.body)
				}
			}
			r := h.vault(http.MethodDelete, "/secrets/sd", tok, nil)
			check("delete", r, tc.wantDelete)
			if r.status != 200 {
				if err := h.tenant.DeleteSecret("sd"); err != nil {
					t.Fatalf("DeleteSecret: %v", err)
				}
			}
			check("get deleted", h.vault(http.MethodGet, "/deletedsecrets/sd", tok, nil), tc.wantGetDeleted)
			check("recover", h.vault(http.MethodPost, "/deletedsecrets/sd/recover", tok, nil), tc.wantRecv)
		})
	}
}

func TestKeyVaultDeleteAndPurgeFromTests(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	h := start(t, Options{Now: func() time.Time { return now }})
	tok := h.token(AudienceVault)
	h.seedVersions(tok, "sd", `{"value":"v1","tags":{"keyId":"k1"}}`, `{"value":"v2"}`)

	if err := h.tenant.DeleteSecret("absent"); err == nil {
		t.Error("DeleteSecret of an absent secret: no error")
	}
	if err := h.tenant.DeleteSecret("SD"); err != nil {
		t.Fatalf("DeleteSecret: %v", err)
	}
	if err := h.tenant.DeleteSecret("sd"); err == nil {
		t.Error("DeleteSecret of a deleted secret: no error")
	}
	snap := h.tenant.Snapshot()
	if len(snap.Secrets) != 0 || len(snap.DeletedSecrets) != 1 {
		t.Fatalf("after DeleteSecret: %d secrets, %d deleted, want 0 and 1", len(snap.Secrets), len(snap.DeletedSecrets))
	}
	d := snap.DeletedSecrets[0]
	if d.Name != "sd" || len(d.Versions) != 2 || !d.DeletedDate.Equal(now) || !d.ScheduledPurgeDate.Equal(now.Add(90*24*time.Hour)) || !d.RecoveredAt.IsZero() {
		t.Errorf("deleted secret %s with %d versions, deleted %v, purge %v, recovered at %v; want sd, 2, %v, +90 days, zero",
			d.Name, len(d.Versions), d.DeletedDate, d.ScheduledPurgeDate, d.RecoveredAt, now)
	}
	d.Versions[0].Tags["keyId"] = "changed"
	if got := h.tenant.Snapshot().DeletedSecrets[0].Versions[0].Tags["keyId"]; got != "k1" {
		t.Errorf("changing a snapshot changed the tenant: keyId %q, want k1", got)
	}

	h.tenant.PurgeDeletedSecret("Sd")
	h.runSteps(t, tok, []vaultStep{
		{"get deleted after purge", http.MethodGet, "/deletedsecrets/sd", nil, 404, "SecretNotFound", "", "Deleted Secret not found"},
		{"put after purge", http.MethodPut, "/secrets/sd", []byte(`{"value":"fresh"}`), 200, "", "", ""},
	})
	if got := h.listedVersions(tok, "sd"); len(got) != 1 {
		t.Errorf("versions after purge and put = %d, want 1 (the purged versions are gone)", len(got))
	}
}

func TestKeyVaultDisabledVersion(t *testing.T) {
	h := start(t, Options{})
	tok := h.token(AudienceVault)
	ids := h.seedVersions(tok, "dis", `{"value":"v1"}`, `{"value":"v2","tags":{"keyId":"k2"}}`)
	if err := h.tenant.DisableCurrentVersion("absent"); err == nil {
		t.Error("DisableCurrentVersion of an absent secret: no error")
	}
	if err := h.tenant.DisableCurrentVersion("dis"); err != nil {
		t.Fatalf("DisableCurrentVersion: %v", err)
	}
	const msgDisabled = "Operation get is not allowed on a disabled secret."
	h.runSteps(t, tok, []vaultStep{
		{"get current", http.MethodGet, "/secrets/dis", nil, 403, "Forbidden", "SecretDisabled", msgDisabled},
		{"get the version", http.MethodGet, "/secrets/dis/" + ids[1][len(ids[1])-32:], nil, 403, "Forbidden", "SecretDisabled", msgDisabled},
		{"get the older version", http.MethodGet, "/secrets/dis/" + ids[0][len(ids[0])-32:], nil, 200, "", "", ""},
	})
	r := h.vault(http.MethodGet, "/secrets/dis", tok, nil)
	if r.errorMessage(t) != msgDisabled {
		t.Errorf("message = %q, want exactly %q", r.errorMessage(t), msgDisabled)
	}
	listed := h.listedVersions(tok, "dis")
	v := listed[ids[1]]
	attrs, _ := v["attributes"].(map[string]any)
	tags, _ := v["tags"].(map[string]any)
	if v == nil || attrs["enabled"] != false || tags["keyId"] != "k2" || v["value"] != nil {
		t.Errorf("listed disabled version = %v, want enabled false, tag keyId k2, no value", v)
	}
	newIDs := h.seedVersions(tok, "dis", `{"value":"v3"}`)
	r = h.vault(http.MethodGet, "/secrets/dis", tok, nil)
	if r.status != http.StatusOK || str(r.json(t), "id") != newIDs[0] {
		t.Errorf("get after a new version: %d %s, want 200 with %s", r.status, r.body, newIDs[0])
	}
}

func TestKeyVaultFirewall(t *testing.T) {
	h := start(t, Options{})
	tok := h.token(AudienceVault)
	h.seedVersions(tok, "fw", `{"value":"v1"}`)
	if err := h.tenant.DeleteSecret("fw"); err != nil {
		t.Fatal(err)
	}
	h.tenant.SetVaultFirewall(true)
	c := jwtClaims(t, tok)
	wantMsg := "Client address is not authorized and caller is not a trusted service.\r\nClient address: 203.0.113.7\r\n" +
		"Caller: appid=" + str(c, "appid") + ";oid=" + str(c, "oid") + ";iss=" + str(c, "iss") + "\r\n" +
		"Vault: appreg-emulated;location=westeurope"
	tests := []struct{ name, method, path string }{
		{"get", http.MethodGet, "/secrets/fw"},
		{"set", http.MethodPut, "/secrets/fw"},
		{"list versions", http.MethodGet, "/secrets/fw/versions"},
		{"list", http.MethodGet, "/secrets"},
		{"delete", http.MethodDelete, "/secrets/fw"},
		{"get deleted", http.MethodGet, "/deletedsecrets/fw"},
		{"recover", http.MethodPost, "/deletedsecrets/fw/recover"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := h.vault(tc.method, tc.path, "", nil); r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("without a token: status %d, want the 401 challenge", r.status)
			}
			var body []byte
			if tc.method == http.MethodPut {
				body = []byte(`{"value":"v2"}`)
			}
			r := h.vault(tc.method, tc.path, tok, body)
			if r.status != http.StatusForbidden || r.errorCode(t) != "Forbidden" || r.innerCode(t) != "ForbiddenByFirewall" {
				t.Fatalf("status %d %s, want 403 Forbidden/ForbiddenByFirewall", r.status, r.body)
			}
			if got := r.errorMessage(t); got != wantMsg {
				t.Errorf("message = %q, want %q", got, wantMsg)
			}
		})
	}
	if snap := h.tenant.Snapshot(); len(snap.Secrets) != 0 || len(snap.DeletedSecrets) != 1 {
		t.Errorf("the firewall let a write through: %d secrets, %d deleted", len(snap.Secrets), len(snap.DeletedSecrets))
	}
	h.tenant.SetVaultFirewall(false)
	if r := h.vault(http.MethodGet, "/deletedsecrets/fw", tok, nil); r.status != http.StatusOK {
		t.Errorf("with the firewall off: status %d, want 200: %s", r.status, r.body)
	}
}

func TestKeyVaultSoftDeleteFaults(t *testing.T) {
	h := start(t, Options{})
	tok := h.token(AudienceVault)
	h.seedVersions(tok, "sd", `{"value":"v1"}`)
	h.tenant.AddFault(Fault{Service: ServiceKeyVault, Operation: OpDeleteSecret, Status: 503})
	h.tenant.AddFault(Fault{Service: ServiceKeyVault, Operation: OpRecoverDeletedSecret, Status: 500, After: true})
	h.tenant.AddFault(Fault{Service: ServiceKeyVault, Operation: OpGetDeletedSecret, Status: 429})
	h.runSteps(t, tok, []vaultStep{
		{"delete faulted before", http.MethodDelete, "/secrets/sd", nil, 503, "", "", ""},
		{"still live", http.MethodGet, "/secrets/sd", nil, 200, "", "", ""},
		{"delete", http.MethodDelete, "/secrets/sd", nil, 200, "", "", ""},
		{"get deleted faulted", http.MethodGet, "/deletedsecrets/sd", nil, 429, "", "", ""},
		{"recover faulted after", http.MethodPost, "/deletedsecrets/sd/recover", nil, 500, "", "", ""},
		{"recovered all the same", http.MethodGet, "/secrets/sd", nil, 200, "", "", ""},
	})
	if got := h.tenant.Stats().FaultsFired; got != 3 {
		t.Errorf("FaultsFired = %d, want 3", got)
	}
}
