package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
)

// TokenExchangeScope is the scope of the managed identity's token that a federated identity credential
// accepts as a client assertion.
const TokenExchangeScope = "api://AzureADTokenExchange/.default"

// EnvFederatedAppID names the setting a tenant other than the identity's own needs.
const EnvFederatedAppID = "APPREG_FEDERATED_APP_ID"

// Federation gives the credential of each tenant an instance lives in: the managed identity itself in its
// own tenant; in any other, the multi-tenant application appID, signed in with a client assertion that is
// the managed identity's token for api://AzureADTokenExchange (a federated identity credential of that
// application trusts the identity). The application needs no secret of its own. One credential per tenant
// is built, once, and shared by the instances of that tenant; azidentity lets one token request of a
// credential out at a time and keeps its token, so the instances of a tenant share one exchange.
type Federation struct {
	mi        azcore.TokenCredential
	appID     string // "" when APPREG_FEDERATED_APP_ID is unset
	authority string
	hc        *http.Client
	graph     string // the Graph scope, to learn the identity's own tenant

	mu    sync.Mutex
	home  string
	creds map[string]*azidentity.ClientAssertionCredential
}

// NewFederation returns the credentials of the tenants, from the managed identity mi. appID may be empty:
// then only the identity's own tenant can be reached. authorityHost is AZURE_AUTHORITY_HOST; graphScope
// the Graph root's .default scope.
func NewFederation(mi azcore.TokenCredential, appID, authorityHost, graphScope string, hc *http.Client) *Federation {
	return &Federation{mi: mi, appID: appID, authority: strings.TrimRight(authorityHost, "/") + "/", hc: hc, graph: graphScope,
		creds: map[string]*azidentity.ClientAssertionCredential{}}
}

// Credential is the credential for tenantID ("" for the identity's own tenant).
func (f *Federation) Credential(tenantID string) azcore.TokenCredential {
	if tenantID == "" {
		return f.mi
	}
	return &tenantCredential{f: f, tenant: tenantID}
}

// Home is the identity's own tenant: the tid of its Graph token, read once.
func (f *Federation) Home(ctx context.Context) (string, error) {
	f.mu.Lock()
	home := f.home
	f.mu.Unlock()
	if home != "" {
		return home, nil
	}
	tok, err := f.mi.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{f.graph}})
	if err != nil {
		return "", err
	}
	if home, err = TenantIDFromToken(tok.Token); err != nil {
		return "", fmt.Errorf("reading the managed identity's tenant: %w", err)
	}
	f.mu.Lock()
	f.home = home
	f.mu.Unlock()
	return home, nil
}

// ConsentURL is where an administrator of tenantID consents to the federated application.
func (f *Federation) ConsentURL(tenantID string) string {
	return f.authority + tenantID + "/adminconsent?client_id=" + f.appID
}

// assertion is the managed identity's token for the token exchange.
func (f *Federation) assertion(ctx context.Context) (string, error) {
	tok, err := f.mi.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{TokenExchangeScope}})
	if err != nil {
		return "", err
	}
	return tok.Token, nil
}

func (f *Federation) credential(tenantID string) (*azidentity.ClientAssertionCredential, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := strings.ToLower(tenantID)
	if c, ok := f.creds[key]; ok {
		return c, nil
	}
	c, err := azidentity.NewClientAssertionCredential(tenantID, f.appID, f.assertion, &azidentity.ClientAssertionCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: f.hc, Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: f.authority}},
		// The authority is known (AZURE_AUTHORITY_HOST): no instance discovery request.
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		return nil, err
	}
	f.creds[key] = c
	return c, nil
}

// tenantCredential is the credential of one tenant, decided at its first token: the managed identity when
// the tenant is the identity's own, the federated application otherwise.
type tenantCredential struct {
	f      *Federation
	tenant string
}

// GetToken returns a token for the tenant. In another tenant without APPREG_FEDERATED_APP_ID, or where the
// federated application has not been consented, it fails with a *appreg.ServiceError that says what to do.
func (c *tenantCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f := c.f
	home, err := f.Home(ctx)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	if strings.EqualFold(home, c.tenant) {
		return f.mi.GetToken(ctx, opts)
	}
	if f.appID == "" {
		return azcore.AccessToken{}, &appreg.ServiceError{Service: appreg.ServiceIdentity, Kind: appreg.ErrNeedsFederation,
			Message: fmt.Sprintf("tenant %s is not the managed identity's own (%s), and %s is not set", c.tenant, home, EnvFederatedAppID),
			Advice: EnvFederatedAppID + " must name the multi-tenant application whose federated identity credential trusts the function's " +
				"managed identity, consented in that tenant; nothing was written there"}
	}
	cred, err := f.credential(c.tenant)
	if err != nil {
		return azcore.AccessToken{}, err
	}
	tok, err := cred.GetToken(ctx, opts)
	if err != nil {
		return azcore.AccessToken{}, f.classify(ctx, c.tenant, err)
	}
	return tok, nil
}

// Federation refusals that mean the application is not consented in the tenant: AADSTS700016 (no such
// application in the directory) and AADSTS7000229 (no service principal).
var notConsented = []string{"AADSTS700016", "AADSTS7000229"}

// classify turns a refused token exchange into a *appreg.ServiceError. A tenant that has not consented
// to the federated application is ErrForbidden, with the link an administrator of that tenant opens.
func (f *Federation) classify(ctx context.Context, tenantID string, err error) error {
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) && afe.RawResponse != nil && afe.RawResponse.StatusCode < 500 && afe.RawResponse.StatusCode != http.StatusTooManyRequests {
		msg := endpointMessage(afe.RawResponse)
		se := &appreg.ServiceError{Service: appreg.ServiceSignIn, Kind: appreg.ErrRejected, Status: afe.RawResponse.StatusCode,
			Message: fmt.Sprintf("signing in to tenant %s as the federated application %s: %s", tenantID, f.appID, msg)}
		for _, code := range notConsented {
			if strings.Contains(msg, code) {
				se.Kind, se.Code = appreg.ErrForbidden, code
				se.Advice = fmt.Sprintf("the federated application %s has not been consented in tenant %s: an administrator of that tenant opens %s once",
					f.appID, tenantID, f.ConsentURL(tenantID))
			}
		}
		return se
	}
	se, ok := ClassifyFailure(ctx, appreg.ServiceSignIn, err)
	if !ok {
		return err
	}
	return se
}
