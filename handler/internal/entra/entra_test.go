package entra_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
	"github.com/scepman-appreg/appreg/handler/internal/entra"
)

// registered adds an application with one password credential, its service principal and an assignment
// of Directory.Read.All, as a provision leaves them, and returns its appId.
func registered(t *testing.T, ten *emulator.Tenant, secret string, end time.Time) string {
	t.Helper()
	appID, spID := emulator.NewGUID(), emulator.NewGUID()
	ten.Mutate(func(s *emulator.State) {
		s.Applications = append(s.Applications, emulator.Application{AppID: appID, DisplayName: "SCEPman", UniqueName: "scepman",
			SignInAudience: "AzureADMyOrg", PasswordCredentials: []emulator.PasswordCredential{
				{SecretText: secret, StartDateTime: time.Now().Add(-time.Hour), EndDateTime: end}}})
		s.ServicePrincipals = append(s.ServicePrincipals, emulator.ServicePrincipal{ID: spID, AppID: appID, DisplayName: "SCEPman",
			ServicePrincipalType: "Application", AccountEnabled: true})
		graph := s.ServicePrincipalByAppID(appreg.GraphAppID)
		s.AppRoleAssignments = append(s.AppRoleAssignments, emulator.AppRoleAssignment{
			AppRoleID: "7ab1d382-f21e-4acd-a863-ba3e13f7da61", PrincipalID: spID, ResourceID: graph.ID})
	})
	return appID
}

func TestSignIn(t *testing.T) {
	ten := emulatortest.Start(t, emulator.Options{})
	c := entra.New("https://login.microsoftonline.com", ten.HTTPClient())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const secret = "Qx7~a-client-secret-value-of-forty-chars"
	appID := registered(t, ten, secret, time.Now().Add(30*24*time.Hour))

	// Three sign-ins at once, as the engine's check signs in to every resource at once: the tenant's
	// metadata is still fetched once, by the first, and the others wait for it.
	ten.SetLatency(20 * time.Millisecond)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			roles, err := c.SignIn(ctx, ten.TenantID(), appID, appreg.NewSecretValue(secret), appreg.GraphAppID)
			if err != nil || !slices.Equal(roles, []string{"Directory.Read.All"}) {
				t.Errorf("SignIn = %v, %v; want the roles [Directory.Read.All]", roles, err)
			}
		})
	}
	wg.Wait()
	ten.SetLatency(0)
	st := ten.Stats()
	if got := st.Op(emulator.OpLoginToken).Requests; got != 3 {
		t.Errorf("token requests of three sign-ins = %d, want 3 (no token cache: each check asks)", got)
	}
	if got := st.Op(emulator.OpLoginOpenIDConfiguration).Requests; got != 1 {
		t.Errorf("OpenID configuration requests of three sign-ins = %d, want 1 (kept)", got)
	}
	if got := st.Op(emulator.OpLoginInstanceDiscovery).Requests; got != 0 {
		t.Errorf("instance discovery requests = %d, want 0 (the authority is known)", got)
	}

	tests := []struct {
		name   string
		appID  string
		secret string
		code   string
	}{
		{"wrong secret", appID, "not-the-secret", "AADSTS7000215"},
		{"unknown application", emulator.NewGUID(), secret, "AADSTS700016"},
		{"expired secret", registered(t, ten, "an-expired-secret-value", time.Now().Add(-time.Minute)), "an-expired-secret-value", "AADSTS7000222"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.SignIn(ctx, ten.TenantID(), tt.appID, appreg.NewSecretValue(tt.secret), appreg.GraphAppID)
			var se *appreg.ServiceError
			if !errors.Is(err, appreg.ErrSignInRefused) || !errors.As(err, &se) || se.Code != tt.code {
				t.Fatalf("err = %v, want ErrSignInRefused with %s", err, tt.code)
			}
			if strings.HasPrefix(se.Message, tt.code) || strings.Contains(se.Message, "Trace ID") {
				t.Errorf("message %q repeats the code or carries trace ids", se.Message)
			}
			for _, s := range ten.IssuedSecrets() {
				if strings.Contains(err.Error(), s) {
					t.Error("the error holds a secret or token the tenant issued")
				}
			}
		})
	}
}
