package emulator_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
)

// TestClientAssertionCredentialAcrossTenants drives the real azidentity credentials the product uses
// for a tenant other than the managed identity's own: ClientAssertionCredential for the federated
// application, its assertion the ManagedIdentityCredential's token for api://AzureADTokenExchange.
func TestClientAssertionCredentialAcrossTenants(t *testing.T) {
	ten := emulatortest.Start(t, emulator.Options{})
	customer, unconsented := emulator.NewGUID(), emulator.NewGUID()
	for _, tid := range []string{customer, unconsented} {
		if err := ten.AddTenant(tid, false); err != nil {
			t.Fatal(err)
		}
	}
	appID := ten.RegisterFederatedApp("appreg federation")
	if err := ten.ConsentFederatedApp(customer, appID, emulator.DefaultGraphRoles()...); err != nil {
		t.Fatal(err)
	}
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: ten.HTTPClient()},
		ID:            azidentity.ClientID(ten.IdentityClientID()),
	})
	if err != nil {
		t.Fatalf("NewManagedIdentityCredential: %v", err)
	}
	assertions := 0
	getAssertion := func(ctx context.Context) (string, error) {
		assertions++
		tok, err := mi.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"api://AzureADTokenExchange/.default"}})
		return tok.Token, err
	}
	newCred := func(t *testing.T, tenant string) *azidentity.ClientAssertionCredential {
		t.Helper()
		c, err := azidentity.NewClientAssertionCredential(tenant, appID, getAssertion, &azidentity.ClientAssertionCredentialOptions{
			ClientOptions: azcore.ClientOptions{
				Transport: ten.HTTPClient(),
				Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: "https://login.microsoftonline.com/"},
				Retry:     policy.RetryOptions{MaxRetries: -1},
			},
			DisableInstanceDiscovery: true,
		})
		if err != nil {
			t.Fatalf("NewClientAssertionCredential: %v", err)
		}
		return c
	}
	graphScope := []string{"https://graph.microsoft.com/.default"}

	t.Run("consented tenant", func(t *testing.T) {
		ten.ResetStats()
		cred := newCred(t, customer)
		tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: graphScope})
		if err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		c := payload(t, tok.Token)
		sp := ten.SnapshotOf(customer).ServicePrincipalByAppID(appID)
		if c["tid"] != customer || c["oid"] != sp.ID || c["appid"] != appID {
			t.Errorf("claims tid %v oid %v appid %v, want %s %s %s", c["tid"], c["oid"], c["appid"], customer, sp.ID, appID)
		}
		var roles []string
		for _, r := range c["roles"].([]any) {
			roles = append(roles, r.(string))
		}
		if slices.Sort(roles); !slices.Equal(roles, slices.Sorted(slices.Values(emulator.DefaultGraphRoles()))) {
			t.Errorf("roles %v, want %v", roles, emulator.DefaultGraphRoles())
		}
		req, _ := http.NewRequest(http.MethodGet, emulator.GraphRoot+"/servicePrincipals(appId='"+emulator.GraphAppID+"')", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := ten.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("Graph with the customer's token: %d, want 200", resp.StatusCode)
		}
		s := ten.Stats()
		if o, c, d := s.Op(emulator.OpLoginToken).Requests, s.Op(emulator.OpLoginOpenIDConfiguration).Requests, s.Op(emulator.OpLoginInstanceDiscovery).Requests; o != 1 || c != 1 || d != 0 {
			t.Errorf("token %d, OpenID configuration %d, instance discovery %d requests; want 1, 1, 0", o, c, d)
		}
		if s.ByTenant[customer] != 3 || s.ByTenant[ten.TenantID()] != 0 {
			t.Errorf("ByTenant = %v, want 3 requests of the customer (configuration, token, Graph)", s.ByTenant)
		}
		if s.Op(emulator.OpIdentityToken).Requests != 1 {
			t.Errorf("%d managed identity requests, want 1 (the assertion)", s.Op(emulator.OpIdentityToken).Requests)
		}
	})
	t.Run("not consented", func(t *testing.T) {
		_, err := newCred(t, unconsented).GetToken(context.Background(), policy.TokenRequestOptions{Scopes: graphScope})
		if err == nil || !strings.Contains(err.Error(), "AADSTS700016") || !strings.Contains(err.Error(), unconsented) {
			t.Fatalf("GetToken: %v, want AADSTS700016 naming the tenant", err)
		}
		var afe *azidentity.AuthenticationFailedError
		if !errors.As(err, &afe) || afe.RawResponse == nil || afe.RawResponse.StatusCode != http.StatusBadRequest {
			t.Errorf("error %T, want an AuthenticationFailedError with the 400", err)
		}
	})
	t.Run("tenant down", func(t *testing.T) {
		ten.SetTenantDown(customer, true)
		t.Cleanup(func() { ten.SetTenantDown(customer, false) })
		_, err := newCred(t, customer).GetToken(context.Background(), policy.TokenRequestOptions{Scopes: graphScope})
		if err == nil {
			t.Fatal("GetToken in a tenant that is down succeeded")
		}
	})
	if assertions == 0 {
		t.Errorf("the assertion callback was never called")
	}
}

// payload decodes a JWT's claims without verifying them.
func payload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
