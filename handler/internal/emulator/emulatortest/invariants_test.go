package emulatortest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

var t0 = time.Date(2026, 1, 1, 3, 30, 0, 0, time.UTC)

const (
	secret = "AppConfig--AuthConfig--ApplicationKey"
	keyA   = "aaaaaaaa-0000-4000-8000-000000000001"
	keyB   = "bbbbbbbb-0000-4000-8000-000000000002"
	keyC   = "cccccccc-0000-4000-8000-000000000003"
)

// converged is a tenant in the desired state of level 0: one application with credential keyA, stored
// as the only version.
func converged(t *testing.T) emulator.State {
	t.Helper()
	tenant := NewTenant(t, emulator.Options{})
	tenant.Mutate(func(s *emulator.State) {
		graph := s.ServicePrincipalByAppID(emulator.GraphAppID).ID
		intune := s.ServicePrincipalByAppID(emulator.IntuneAPIAppID).ID
		s.Applications = append(s.Applications, emulator.Application{ID: "app-object", AppID: "app-client", UniqueName: "scepman",
			DisplayName: "SCEPman", SignInAudience: "AzureADMyOrg",
			RequiredResourceAccess: []emulator.RequiredResourceAccess{
				{ResourceAppID: emulator.GraphAppID, ResourceAccess: []emulator.ResourceAccess{{ID: "7ab1d382-f21e-4acd-a863-ba3e13f7da61", Type: "Role"}}},
				{ResourceAppID: emulator.IntuneAPIAppID, ResourceAccess: []emulator.ResourceAccess{{ID: "39d724e8-6a34-4930-9a36-364082c35716", Type: "Role"}}},
			},
			PasswordCredentials: []emulator.PasswordCredential{cred(keyA, t0)},
		})
		s.ServicePrincipals = append(s.ServicePrincipals, emulator.ServicePrincipal{ID: "app-sp", AppID: "app-client"})
		s.AppRoleAssignments = append(s.AppRoleAssignments,
			emulator.AppRoleAssignment{AppRoleID: "7ab1d382-f21e-4acd-a863-ba3e13f7da61", PrincipalID: "app-sp", ResourceID: graph},
			emulator.AppRoleAssignment{AppRoleID: "39d724e8-6a34-4930-9a36-364082c35716", PrincipalID: "app-sp", ResourceID: intune})
		s.Secrets = append(s.Secrets, emulator.Secret{Name: secret, Versions: []emulator.SecretVersion{version(keyA, t0)}})
	})
	return tenant.Snapshot()
}

// softDelete moves the secret to the deleted secrets, as Key Vault's soft delete does.
func softDelete(s *emulator.State) {
	s.DeletedSecrets = append(s.DeletedSecrets, emulator.DeletedSecret{Name: s.Secrets[0].Name, Versions: s.Secrets[0].Versions, DeletedDate: t0})
	s.Secrets = nil
}

func cred(keyID string, start time.Time) emulator.PasswordCredential {
	return emulator.PasswordCredential{KeyID: keyID, SecretText: "text-of-" + keyID, StartDateTime: start, EndDateTime: start.Add(180 * 24 * time.Hour)}
}

func version(keyID string, created time.Time) emulator.SecretVersion {
	return emulator.SecretVersion{Value: "text-of-" + keyID, Enabled: true, Created: created, Updated: created,
		Expires: created.Add(180 * 24 * time.Hour), Tags: map[string]string{"keyId": keyID, "appId": "app-client"}}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *emulator.State)
		now    time.Time
		phase  Phase
		want   []string // substrings, one per violation, in order; none: it holds
	}{
		{"converged and cleaned", func(*emulator.State) {}, t0.Add(time.Hour), Cleaned, nil},
		{"empty tenant, always", func(s *emulator.State) { s.Applications, s.Secrets = nil, nil }, t0, Always,
			[]string{"holds no secret", "no application"}},
		{"empty tenant, converged", func(s *emulator.State) { s.Applications, s.Secrets = nil, nil }, t0, Converged,
			[]string{"0 applications", "no secret"}},
		{"current version names a missing credential", func(s *emulator.State) {
			s.Applications[0].PasswordCredentials = nil
		}, t0, Always, []string{"names keyId " + keyA + ", which the application lacks"}},
		{"current version holds another value", func(s *emulator.State) {
			s.Secrets[0].Versions[0].Value = "other"
		}, t0, Always, []string{"does not hold the secretText"}},
		{"exp differs", func(s *emulator.State) {
			s.Secrets[0].Versions[0].Expires = t0
		}, t0, Always, []string{"exp"}},
		{"secret but no application", func(s *emulator.State) { s.Applications = nil }, t0, Always, []string{"no application"}},
		{"application but no secret", func(s *emulator.State) { s.Secrets = nil }, t0, Always, []string{"holds no secret"}},
		{"no secret, cleaned", func(s *emulator.State) { s.Secrets = nil }, t0, Cleaned, []string{"holds no secret"}},
		{"soft-deleted secret, always", func(s *emulator.State) { softDelete(s) }, t0, Always, nil},
		{"soft-deleted secret whose credential is gone", func(s *emulator.State) {
			softDelete(s)
			s.Applications[0].PasswordCredentials = nil
		}, t0, Always, []string{"current version of the deleted secret names keyId " + keyA + ", which the application lacks"}},
		{"soft-deleted secret, converged", func(s *emulator.State) { softDelete(s) }, t0, Converged,
			[]string{"deleted (soft delete) and was not recovered"}},
		{"replaced credential removed inside its overlap", func(s *emulator.State) {
			s.Applications[0].PasswordCredentials = []emulator.PasswordCredential{cred(keyC, t0.Add(time.Hour))}
			s.Secrets[0].Versions = append(s.Secrets[0].Versions, version(keyC, t0.Add(time.Hour)))
		}, t0.Add(48*time.Hour + 59*time.Minute), Always, []string{"credential " + keyA + " was removed inside its overlap"}},
		{"replaced credential removed after its overlap", func(s *emulator.State) {
			s.Applications[0].PasswordCredentials = []emulator.PasswordCredential{cred(keyC, t0.Add(time.Hour))}
			s.Secrets[0].Versions = append(s.Secrets[0].Versions, version(keyC, t0.Add(time.Hour)))
		}, t0.Add(49 * time.Hour), Cleaned, nil},
		{"disabled version's credential removed inside its overlap", func(s *emulator.State) {
			s.Secrets[0].Versions[0].Enabled = false
			s.Applications[0].PasswordCredentials = []emulator.PasswordCredential{cred(keyC, t0.Add(time.Hour))}
			s.Secrets[0].Versions = append(s.Secrets[0].Versions, version(keyC, t0.Add(time.Hour)))
		}, t0.Add(2 * time.Hour), Always, []string{"credential " + keyA + " was removed inside its overlap"}},
		{"disabled current version, always", func(s *emulator.State) { s.Secrets[0].Versions[0].Enabled = false }, t0, Always, nil},
		{"disabled current version, converged", func(s *emulator.State) { s.Secrets[0].Versions[0].Enabled = false }, t0, Converged,
			[]string{"disabled"}},
		{"User.Read left", func(s *emulator.State) {
			rra := &s.Applications[0].RequiredResourceAccess[0]
			rra.ResourceAccess = append(rra.ResourceAccess, emulator.ResourceAccess{ID: "e1fe6dd8-ba31-4d61-89e7-88639da4683d", Type: "Scope"})
		}, t0, Converged, []string{"requiredResourceAccess"}},
		{"duplicate assignment", func(s *emulator.State) {
			s.AppRoleAssignments = append(s.AppRoleAssignments, s.AppRoleAssignments[len(s.AppRoleAssignments)-1])
			s.AppRoleAssignments[len(s.AppRoleAssignments)-1].ID = ""
		}, t0, Converged, []string{"2 app role assignments of scep_challenge_provider"}},
		{"second service principal", func(s *emulator.State) {
			s.ServicePrincipals = append(s.ServicePrincipals, emulator.ServicePrincipal{ID: "sp-2", AppID: "app-client"})
		}, t0, Converged, []string{"2 service principals"}},
		{"young orphan", func(s *emulator.State) {
			s.Applications[0].PasswordCredentials = append(s.Applications[0].PasswordCredentials, cred(keyB, t0))
		}, t0.Add(59 * time.Minute), Cleaned, nil},
		{"orphan past the orphan rule", func(s *emulator.State) {
			s.Applications[0].PasswordCredentials = append(s.Applications[0].PasswordCredentials, cred(keyB, t0))
		}, t0.Add(time.Hour), Cleaned, []string{"credential " + keyB + ", which no version names, is older than 1h0m0s"}},
		{"replaced inside its overlap", func(s *emulator.State) {
			s.Applications[0].PasswordCredentials = append(s.Applications[0].PasswordCredentials, cred(keyC, t0.Add(time.Hour)))
			s.Secrets[0].Versions = append(s.Secrets[0].Versions, version(keyC, t0.Add(time.Hour)))
		}, t0.Add(49*time.Hour - time.Second), Cleaned, nil},
		{"replaced past its overlap", func(s *emulator.State) {
			s.Applications[0].PasswordCredentials = append(s.Applications[0].PasswordCredentials, cred(keyC, t0.Add(time.Hour)))
			s.Secrets[0].Versions = append(s.Secrets[0].Versions, version(keyC, t0.Add(time.Hour)))
		}, t0.Add(49 * time.Hour), Cleaned, []string{"credential " + keyA + " outlived its overlap"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := converged(t)
			tt.change(&s)
			wantViolations(t, Check(s, Want{Now: tt.now, OrphanAge: time.Hour}, tt.phase), tt.want)
		})
	}
}

// wantViolations fails the test unless got holds one violation per substring of says, in order.
func wantViolations(t *testing.T, got, says []string) {
	t.Helper()
	if len(got) != len(says) {
		t.Fatalf("Check = %q, want %d violations like %q", got, len(says), says)
	}
	for i, w := range says {
		if !strings.Contains(got[i], w) {
			t.Errorf("violation %d = %q, want it to say %q", i, got[i], w)
		}
	}
}

func TestUnnamedAndAge(t *testing.T) {
	tenant := NewTenant(t, emulator.Options{})
	tenant.Mutate(func(s *emulator.State) {
		s.Applications = append(s.Applications, emulator.Application{UniqueName: "scepman", PasswordCredentials: []emulator.PasswordCredential{cred(keyA, t0), cred(keyB, t0)}})
		s.Secrets = append(s.Secrets, emulator.Secret{Name: secret, Versions: []emulator.SecretVersion{version(keyA, t0)}})
	})
	if got := Unnamed(tenant.Snapshot(), Want{}); !slices.Equal(got, []string{keyB}) {
		t.Errorf("Unnamed = %v, want [%s]", got, keyB)
	}
	deleted := tenant.Snapshot()
	softDelete(&deleted)
	if got := Unnamed(deleted, Want{}); !slices.Equal(got, []string{keyB}) {
		t.Errorf("Unnamed of a soft-deleted secret = %v, want [%s]: its versions still name their credentials", got, keyB)
	}
	Age(tenant, time.Hour)
	s := tenant.Snapshot()
	if c := s.Application("scepman").PasswordCredentials[0]; !c.StartDateTime.Equal(t0.Add(-time.Hour)) || !c.EndDateTime.Equal(t0.Add(180*24*time.Hour-time.Hour)) {
		t.Errorf("aged credential %+v, want everything an hour earlier", c)
	}
	if v := s.Secret(secret).Versions[0]; !v.Created.Equal(t0.Add(-time.Hour)) || !v.Expires.Equal(t0.Add(180*24*time.Hour-time.Hour)) {
		t.Errorf("aged version %+v, want everything an hour earlier", v)
	}
}

// TestCheckWant: what the caller says in Want beyond the defaults.
func TestCheckWant(t *testing.T) {
	orphan := func(s *emulator.State) {
		s.Applications[0].PasswordCredentials = append(s.Applications[0].PasswordCredentials, cred(keyB, t0))
	}
	empty := func(s *emulator.State) { s.Applications, s.Secrets = nil, nil }
	tests := []struct {
		name   string
		change func(s *emulator.State)
		want   Want
		phase  Phase
		says   []string // substrings, one per violation, in order; none: it holds
	}{
		{name: "nothing yet, as the caller expects", change: empty, want: Want{NoneYet: true}, phase: Always},
		{name: "an application yet no secret, as the caller expects", change: func(s *emulator.State) { s.Secrets = nil },
			want: Want{NoneYet: true}, phase: Always},
		{name: "nothing yet is no converged tenant", change: empty, want: Want{NoneYet: true}, phase: Converged,
			says: []string{"0 applications", "no secret"}},
		{name: "a secret without its application, though none expected yet", change: func(s *emulator.State) { s.Applications = nil },
			want: Want{NoneYet: true}, phase: Always, says: []string{"no application"}},
		{name: "exact counts held", change: orphan, want: Want{Credentials: 2, Versions: 1}, phase: Converged},
		{name: "exact counts broken", change: orphan, want: Want{Credentials: 1, Versions: 2}, phase: Converged,
			says: []string{"2 credentials on the application, want 1", "1 versions of secret " + secret + ", want 2"}},
		{name: "every credential named", change: orphan, want: Want{AllNamed: true}, phase: Converged,
			says: []string{"credentials that no version names: [" + keyB + "]"}},
		{name: "cleaned needs the clock", change: func(*emulator.State) {}, want: Want{}, phase: Cleaned,
			says: []string{"Want.Now and Want.OrphanAge"}},
		{name: "another level", change: func(*emulator.State) {}, want: Want{Permissions: Level0[:1]}, phase: Converged,
			says: []string{"requiredResourceAccess", "app role assignments outside the permissions"}},
		{name: "another uniqueName", change: func(*emulator.State) {}, want: Want{UniqueName: "other"}, phase: Always,
			says: []string{"no application \"other\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := converged(t)
			tt.change(&s)
			wantViolations(t, Check(s, tt.want, tt.phase), tt.says)
		})
	}
}

func TestVerify(t *testing.T) {
	ten := NewTenant(t, emulator.Options{})
	rec := &recorder{TB: t}
	got := Verify(rec, "after the run", ten, Want{}, Converged)
	if len(got) == 0 || len(rec.errors) != len(got) {
		t.Fatalf("Verify on an empty tenant = %q, errors %q; want the violations, each reported", got, rec.errors)
	}
	for i, v := range got {
		if !strings.HasPrefix(v, "after the run: ") || rec.errors[i] != v {
			t.Errorf("violation %q reported as %q, want both prefixed with the step", v, rec.errors[i])
		}
	}
}

// recorder is a testing.TB that keeps its errors instead of failing.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Error(args ...any) { r.errors = append(r.errors, fmt.Sprint(args...)) }

func (r *recorder) Helper() {}
