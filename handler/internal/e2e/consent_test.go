package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
)

// TestConsentByAnAdministrator: APPREG_CONSENT=admin on an identity that holds only
// Application.ReadWrite.OwnedBy and Application.Read.All (contract, "Consent by an administrator"). The
// function never writes an app role assignment; provision succeeds and answers the consent link; status
// reports CONSENT_MISSING with the link until an administrator consents, then the tenant is compliant.
func TestConsentByAnAdministrator(t *testing.T) {
	t.Parallel()
	a := start(t, setup{
		opts: emulator.Options{IdentityClientID: emulator.NewGUID(),
			GraphRoles: []string{emulator.RoleApplicationReadWriteOwnedBy, emulator.RoleApplicationReadAll}},
		settings: map[string]string{"APPREG_CONSENT": "admin"},
	})
	var p signedProvision
	if got := a.call(http.MethodPost, "/api/provision", "", &p); got != http.StatusCreated {
		t.Fatalf("provision in admin mode: %d, want 201", got)
	}
	wantURL := "https://login.microsoftonline.com/" + p.TenantID + "/adminconsent?client_id=" + p.AppID
	if p.AdminConsentURL != wantURL {
		t.Errorf("adminConsentUrl = %q, want %q", p.AdminConsentURL, wantURL)
	}
	for _, perm := range p.Permissions {
		if perm.Consented {
			t.Errorf("permission %s reported consented; nobody consented yet", perm.Value)
		}
	}
	if n := a.tenant.Stats().Op(emulator.OpAssignAppRole).Requests; n != 0 {
		t.Errorf("%d requests to appRoleAssignedTo; admin mode writes no app role assignment", n)
	}
	var st signedStatus
	if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || st.Compliant {
		t.Fatalf("status before consent: %d %v, want not compliant", got, st.codes())
	}
	missing := 0
	for _, f := range st.Findings {
		if f.Code == "CONSENT_MISSING" {
			missing++
			if !strings.Contains(f.Message, wantURL) {
				t.Errorf("CONSENT_MISSING %q does not carry the consent link", f.Message)
			}
		}
	}
	if missing != 2 {
		t.Errorf("findings %v, want CONSENT_MISSING for each of the two permissions", st.codes())
	}
	var again signedProvision
	if got := a.call(http.MethodPost, "/api/provision", "", &again); got != http.StatusOK || len(again.Changes) != 0 || again.AdminConsentURL != wantURL {
		t.Errorf("second provision before consent: %d changes %v link %q, want 200, none, the link", got, again.Changes, again.AdminConsentURL)
	}

	// An administrator opens the link and consents: Entra grants each permission of requiredResourceAccess.
	a.tenant.Mutate(func(s *emulator.State) {
		for _, perm := range emulatortest.Level0 {
			s.AppRoleAssignments = append(s.AppRoleAssignments, emulator.AppRoleAssignment{
				AppRoleID: perm.AppRoleID, PrincipalID: p.ServicePrincipalID, PrincipalType: "ServicePrincipal",
				ResourceID: s.ServicePrincipalByAppID(perm.ResourceAppID).ID})
		}
	})
	if got := a.call(http.MethodGet, "/api/status", "", &st); got != http.StatusOK || !st.Compliant || slices.Contains(st.codes(), "ROLE_NOT_IN_TOKEN") {
		t.Errorf("status after the administrator consented: %d %v, want compliant, the roles in the token", got, st.codes())
	}
	again = signedProvision{}
	if got := a.call(http.MethodPost, "/api/provision", "", &again); got != http.StatusOK || again.AdminConsentURL != "" {
		t.Errorf("provision after consent: %d link %q, want 200 and no link", got, again.AdminConsentURL)
	}
	if n := a.tenant.Stats().Op(emulator.OpAssignAppRole).Requests; n != 0 {
		t.Errorf("%d requests to appRoleAssignedTo over the whole test, want 0", n)
	}
	checkExact(t, a.tenant, 1, 1)
}
