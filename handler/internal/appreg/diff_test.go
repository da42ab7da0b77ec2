package appreg

import (
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 3, 30, 0, 0, time.UTC)

var settings = Settings{
	DisplayName: "SCEPman", UniqueName: "scepman", SecretName: "AppConfig--AuthConfig--ApplicationKey",
	SecretLifetime: 180 * 24 * time.Hour, RenewBefore: 30 * 24 * time.Hour, Overlap: 48 * time.Hour,
}

func version(id, keyID string, created time.Time) SecretVersion {
	return SecretVersion{ID: "https://kv.vault.azure.net/secrets/s/" + id, Version: id, Enabled: true, Created: created,
		Tags: map[string]string{TagKeyID: keyID, TagAppID: "app"}}
}

// compliantObservation is a tenant in the desired state of level 0.
func compliantObservation() *Observation {
	graph := &ServicePrincipal{ID: "sp-graph", AppID: GraphAppID}
	intune := &ServicePrincipal{ID: "sp-intune", AppID: IntuneAPIAppID}
	cur := version("v1", "k1", t0.Add(-24*time.Hour))
	return &Observation{
		TenantID: "tenant",
		App: &Application{ObjectID: "obj", AppID: "app", DisplayName: "SCEPman", UniqueName: "scepman", SignInAudience: AudienceMyOrg,
			RequiredResourceAccess: RequiredResourceAccess(PermissionsFor(0)),
			Passwords:              []PasswordCredential{{KeyID: "k1", Start: t0.Add(-24 * time.Hour), End: t0.Add(100 * 24 * time.Hour)}}},
		SP:       &ServicePrincipal{ID: "sp", AppID: "app"},
		Resource: map[string]*ServicePrincipal{GraphAppID: graph, IntuneAPIAppID: intune},
		Assigned: []AppRoleAssignment{
			{ID: "a1", PrincipalID: "sp", ResourceID: "sp-graph", AppRoleID: "7ab1d382-f21e-4acd-a863-ba3e13f7da61"},
			{ID: "a2", PrincipalID: "sp", ResourceID: "sp-intune", AppRoleID: "39d724e8-6a34-4930-9a36-364082c35716"},
		},
		Current:  &cur,
		Versions: []SecretVersion{cur},
	}
}

func codes(fs []Finding) []string {
	var cs []string
	for _, f := range fs {
		cs = append(cs, f.Code)
	}
	return cs
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name      string
		level     int
		drift     func(o *Observation)
		now       time.Time
		want      []string
		compliant bool
	}{
		{"compliant", 0, func(*Observation) {}, t0, nil, true},
		{"app missing", 0, func(o *Observation) { o.App, o.SP, o.Assigned, o.Current, o.Versions = nil, nil, nil, nil, nil },
			t0, []string{CodeAppMissing, CodeSecretMissing}, false},
		{"audience wrong", 0, func(o *Observation) { o.App.SignInAudience = "AzureADandPersonalMicrosoftAccount" }, t0, []string{CodeAudienceWrong}, false},
		{"permission missing", 0, func(o *Observation) { o.App.RequiredResourceAccess = o.App.RequiredResourceAccess[:1] }, t0, []string{CodePermissionMissing}, false},
		{"User.Read back", 0, func(o *Observation) {
			o.App.RequiredResourceAccess[0].Access = append(o.App.RequiredResourceAccess[0].Access, Access{ID: UserReadID, Type: AccessScope})
		}, t0, []string{CodePermissionUnexpected}, false},
		{"delegated instead of application", 0, func(o *Observation) { o.App.RequiredResourceAccess[0].Access[0].Type = AccessScope },
			t0, []string{CodePermissionMissing, CodePermissionUnexpected}, false},
		{"service principal missing", 0, func(o *Observation) { o.SP, o.Assigned = nil, nil },
			t0, []string{CodeServicePrincipalMissing, CodeConsentMissing, CodeConsentMissing}, false},
		{"consent revoked", 0, func(o *Observation) { o.Assigned = o.Assigned[1:] }, t0, []string{CodeConsentMissing}, false},
		{"no Intune in the tenant", 0, func(o *Observation) {
			o.Resource[IntuneAPIAppID] = nil
			o.Assigned = o.Assigned[:1]
		}, t0, []string{CodeResourceUnavailable}, true},
		{"level 1 needs more", 1, func(*Observation) {}, t0,
			[]string{CodePermissionMissing, CodePermissionMissing, CodeConsentMissing, CodeConsentMissing}, false},
		{"secret missing", 0, func(o *Observation) { o.Current, o.Versions = nil, nil }, t0,
			[]string{CodeSecretMissing, CodeCredentialStale}, false},
		{"secret not on app", 0, func(o *Observation) { o.App.Passwords = nil }, t0, []string{CodeSecretNotOnApp}, false},
		{"secret expiring at the window's edge", 0, func(*Observation) {}, t0.Add(70 * 24 * time.Hour), []string{CodeSecretExpiring}, true},
		{"secret just outside the window", 0, func(*Observation) {}, t0.Add(70*24*time.Hour - time.Second), nil, true},
		{"secret expired", 0, func(*Observation) {}, t0.Add(100 * 24 * time.Hour), []string{CodeSecretExpired}, false},
		{"stale credential", 0, func(o *Observation) {
			o.App.Passwords = append(o.App.Passwords, PasswordCredential{KeyID: "k0", Start: t0.Add(-200 * 24 * time.Hour), End: t0.Add(time.Hour)})
			o.Current.Created = t0.Add(-48 * time.Hour) // the successor was stored exactly one overlap ago
			o.Versions = []SecretVersion{version("v0", "k0", t0.Add(-200*24*time.Hour)), *o.Current}
		}, t0, []string{CodeCredentialStale}, true},
		{"secret deleted but recoverable", 0, func(o *Observation) {
			o.Current, o.Versions = nil, nil
			o.Deleted = &DeletedSecret{DeletedOn: t0.Add(-time.Hour), ScheduledPurge: t0.Add(90 * 24 * time.Hour)}
			o.App.Passwords = nil
		}, t0, []string{CodeSecretDeleted}, false},
		{"current version disabled", 0, func(o *Observation) { o.Disabled = true }, t0, []string{CodeSecretDisabled}, false},
		{"signs in with every role", 0, func(o *Observation) {
			o.SignIn = &SignInResult{State: SignInAccepted, Roles: map[string][]string{
				GraphAppID: {"Directory.Read.All"}, IntuneAPIAppID: {"scep_challenge_provider"}}}
		}, t0, nil, true},
		{"secret rejected", 0, func(o *Observation) {
			o.SignIn = &SignInResult{State: SignInRejected, Code: "AADSTS7000215", Message: "Invalid client secret provided."}
		}, t0, []string{CodeSecretRejected}, false},
		{"secret pending", 0, func(o *Observation) {
			o.SignIn = &SignInResult{State: SignInPending, Code: "AADSTS7000215", Message: "Invalid client secret provided."}
		}, t0, []string{CodeSecretPending}, true},
		{"expired wins over the refusal it causes", 0, func(o *Observation) {
			o.SignIn = &SignInResult{State: SignInRejected, Code: "AADSTS7000222"}
		}, t0.Add(100 * 24 * time.Hour), []string{CodeSecretExpired}, false},
		{"consent revoked: the token lacks the role", 0, func(o *Observation) {
			o.SignIn = &SignInResult{State: SignInAccepted, Roles: map[string][]string{GraphAppID: nil, IntuneAPIAppID: {"scep_challenge_provider"}}}
		}, t0, []string{CodeRoleNotInToken}, true},
		{"an assignment outside the level", 0, func(o *Observation) {
			o.Assigned = append(o.Assigned, AppRoleAssignment{ID: "a3", PrincipalID: "sp", ResourceID: "sp-graph", AppRoleID: "2f51be20-0bb4-4fed-bf7b-db946066c75e"})
		}, t0, []string{CodeConsentUnexpected}, false},
		{"a role in the token outside the level", 0, func(o *Observation) {
			o.SignIn = &SignInResult{State: SignInAccepted, Roles: map[string][]string{
				GraphAppID: {"Directory.Read.All", "Mail.Read"}, IntuneAPIAppID: {"scep_challenge_provider"}}}
		}, t0, []string{CodeConsentUnexpected}, false},
		{"replaced credential inside its overlap", 0, func(o *Observation) {
			o.App.Passwords = append(o.App.Passwords, PasswordCredential{KeyID: "k0", Start: t0.Add(-200 * 24 * time.Hour), End: t0.Add(time.Hour)})
			o.Current.Created = t0.Add(-48*time.Hour + time.Second)
			o.Versions = []SecretVersion{version("v0", "k0", t0.Add(-200*24*time.Hour)), *o.Current}
		}, t0, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := compliantObservation()
			tt.drift(o)
			s := settings
			s.PermissionLevel = tt.level
			fs := s.Diff(o, tt.now)
			if got := codes(fs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Diff codes = %v, want %v (findings %+v)", got, tt.want, fs)
			}
			if got := Compliant(fs); got != tt.compliant {
				t.Errorf("Compliant = %v, want %v", got, tt.compliant)
			}
		})
	}
}

func TestRemovable(t *testing.T) {
	old := PasswordCredential{KeyID: "k0", Start: t0.Add(-100 * 24 * time.Hour)}
	cur := version("v1", "k1", t0)
	versions := []SecretVersion{version("v0", "k0", t0.Add(-100*24*time.Hour)), cur}
	tests := []struct {
		name string
		cred PasswordCredential
		now  time.Time
		want bool
	}{
		{"current is never removed", PasswordCredential{KeyID: "k1", Start: t0.Add(-1000 * time.Hour)}, t0.Add(10000 * time.Hour), false},
		{"replaced, overlap not passed", old, t0.Add(48*time.Hour - time.Second), false},
		{"replaced, overlap passed exactly", old, t0.Add(48 * time.Hour), true},
		{"orphan younger than an hour", PasswordCredential{KeyID: "kx", Start: t0}, t0.Add(time.Hour - time.Second), false},
		{"orphan an hour old", PasswordCredential{KeyID: "kx", Start: t0}, t0.Add(time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := Removable(tt.cred, &cur, versions, 48*time.Hour, tt.now)
			if got != tt.want {
				t.Errorf("Removable(%s, now=%s) = %v (%s), want %v", tt.cred.KeyID, tt.now, got, why, tt.want)
			}
		})
	}
	t.Run("same-second successor", func(t *testing.T) {
		vs := []SecretVersion{version("a", "ka", t0), version("b", "kb", t0)}
		cur := vs[1]
		if got, why := Removable(PasswordCredential{KeyID: "ka", Start: t0}, &cur, vs, time.Hour, t0.Add(time.Hour)); !got {
			t.Errorf("Removable(ka) = false (%s), want true once the overlap passed since its same-second successor", why)
		}
	})
}

func TestRequiredResourceAccess(t *testing.T) {
	got := RequiredResourceAccess(PermissionsFor(2))
	want := []ResourceAccess{
		{GraphAppID, []Access{{"7ab1d382-f21e-4acd-a863-ba3e13f7da61", AccessRole}, {"2f51be20-0bb4-4fed-bf7b-db946066c75e", AccessRole},
			{"dc377aa6-52d8-4e23-b271-2a7ae04cedf3", AccessRole}, {"dc5007c0-2d7d-4c42-879c-2dab87571379", AccessRole}}},
		{IntuneAPIAppID, []Access{{"39d724e8-6a34-4930-9a36-364082c35716", AccessRole}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RequiredResourceAccess(level 2) =\n %v\nwant\n %v", got, want)
	}
	for level, n := range []int{2, 4, 5} {
		if got := len(PermissionsFor(level)); got != n {
			t.Errorf("len(PermissionsFor(%d)) = %d, want %d", level, got, n)
		}
	}
}
