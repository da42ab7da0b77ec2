package arm_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/arm"
	"github.com/scepman-appreg/appreg/handler/internal/azure"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
)

const site = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/scepman/providers/Microsoft.Web/sites/scepman"

// newClient builds the production ARM client for endpoint on the tenant, with the real credential.
func newClient(t *testing.T, ten *emulator.Tenant, endpoint string) *arm.Client {
	t.Helper()
	getenv := emulatortest.Getenv(t, ten)
	hc, err := azure.NewHTTPClient(getenv)
	if err != nil {
		t.Fatalf("NewHTTPClient: %v", err)
	}
	cred, err := azure.NewCredential(getenv, hc)
	if err != nil {
		t.Fatalf("NewCredential: %v", err)
	}
	return arm.New(endpoint, cred, hc)
}

// TestRefreshReachesTheEndpointsCloud: the refresh goes to the ARM host of the endpoint it was built
// with, with a token for that cloud's ARM.
func TestRefreshReachesTheEndpointsCloud(t *testing.T) {
	tests := []struct {
		endpoint, host string
	}{
		{arm.Endpoint, emulator.ARMHost},
		{"https://management.usgovcloudapi.net/", emulator.ARMHostUSGov},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			ten := emulatortest.Start(t, emulator.Options{})
			ten.SetSite(site, http.StatusOK)
			c := newClient(t, ten, tt.endpoint)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			status, err := c.RefreshKeyVaultReferences(ctx, site)
			if err != nil || status != http.StatusOK {
				t.Fatalf("RefreshKeyVaultReferences = %d, %v; want 200", status, err)
			}
			if got := ten.ARMRequestsByHost(); got[tt.host] != 1 || len(got) != 1 {
				t.Errorf("ARM requests by host = %v, want one to %s", got, tt.host)
			}
			if got := ten.Stats().SiteRefreshes[site]; got != 1 {
				t.Errorf("site refreshes = %d, want 1", got)
			}
		})
	}
}

// TestRefreshWithoutIdentity: a managed identity that gets no token is named as such, not as ARM.
func TestRefreshWithoutIdentity(t *testing.T) {
	ten := emulatortest.Start(t, emulator.Options{})
	ten.SetSite(site, http.StatusOK)
	const msg = "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId."
	ten.SetIdentityFailure(http.StatusBadRequest, msg)
	c := newClient(t, ten, arm.Endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	status, err := c.RefreshKeyVaultReferences(ctx, site)
	var se *appreg.ServiceError
	if !errors.As(err, &se) || se.Service != appreg.ServiceIdentity || !errors.Is(err, appreg.ErrIdentity) || status != http.StatusBadRequest {
		t.Fatalf("RefreshKeyVaultReferences = %d, %v; want 400 from the managed identity (ErrIdentity)", status, err)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q lacks the endpoint's message", err)
	}
	if got := ten.Stats().Service(emulator.ServiceARM).Requests; got != 0 {
		t.Errorf("ARM requests = %d, want 0", got)
	}
}
