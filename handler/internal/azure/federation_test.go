package azure_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/scepman-appreg/appreg/handler/internal/azure"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
)

// TestFederationTokensPerTenant: the instances of a customer tenant that start together share one token
// exchange; the identity's own tenant is reached with the identity itself, without any exchange.
func TestFederationTokensPerTenant(t *testing.T) {
	const customer = "c0c0c0c0-0000-4000-8000-00000000000c"
	ten := emulatortest.Start(t, emulator.Options{IdentityClientID: emulator.NewGUID()})
	appID := emulatortest.Customer(t, ten, customer, emulator.RoleApplicationReadAll)
	getenv := emulatortest.Getenv(t, ten)
	hc, err := azure.NewHTTPClient(getenv)
	if err != nil {
		t.Fatalf("NewHTTPClient: %v", err)
	}
	mi, err := azure.NewCredential(getenv, hc)
	if err != nil {
		t.Fatalf("NewCredential: %v", err)
	}
	const graph = "https://graph.microsoft.com/.default"
	fed := azure.NewFederation(mi, appID, "https://login.microsoftonline.com", graph, hc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if _, err := fed.Home(ctx); err != nil {
		t.Fatalf("Home: %v", err)
	}

	ten.SetLatency(20 * time.Millisecond) // so that the instances' first requests overlap
	ten.ResetStats()
	var wg sync.WaitGroup
	for range 10 {
		for _, tid := range []string{customer, ten.TenantID()} {
			cred := fed.Credential(tid) // each instance holds its own, as run.go builds them
			wg.Go(func() {
				tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{graph}})
				if err != nil {
					t.Errorf("GetToken in %s: %v", tid, err)
					return
				}
				if got, err := azure.TenantIDFromToken(tok.Token); err != nil || got != tid {
					t.Errorf("token of tenant %q (%v), want %s", got, err, tid)
				}
			})
		}
	}
	wg.Wait()
	st := ten.Stats()
	if got := st.Op(emulator.OpLoginToken).Requests; got != 1 {
		t.Errorf("token service token requests of 10 instances of one customer = %d, want 1 (shared per tenant)", got)
	}
	if got := st.Op(emulator.OpLoginOpenIDConfiguration).Requests; got > 1 {
		t.Errorf("OpenID configuration requests = %d, want at most 1", got)
	}
}
