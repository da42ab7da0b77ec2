// Package arm is the thin Azure Resource Manager adapter: it asks App Services to re-read their Key Vault
// references after a rotation (POST {siteId}/config/configreferences/appsettings/refresh), with the
// managed identity's token for ARM. It implements appreg.Refresher.
package arm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/azure"
)

// Endpoint is Azure Resource Manager in the public cloud: the default of APPREG_ARM_ENDPOINT, whose value
// run.go passes to New.
const Endpoint = "https://management.azure.com"

const serviceARM = "Azure Resource Manager"

// APIVersion of the refresh call (reference section 1).
const APIVersion = "2022-03-01"

// Client refreshes App Service Key Vault references.
type Client struct {
	endpoint string
	pipeline runtime.Pipeline
}

var _ appreg.Refresher = (*Client)(nil)

// New builds a client for ARM at endpoint (Endpoint for the public cloud).
func New(endpoint string, cred azcore.TokenCredential, hc *http.Client) *Client {
	endpoint = strings.TrimRight(endpoint, "/")
	pl := runtime.NewPipeline("appreg", "v1", runtime.PipelineOptions{
		PerRetry: []policy.Policy{runtime.NewBearerTokenPolicy(cred, []string{endpoint + "/.default"}, nil)},
	}, &policy.ClientOptions{Transport: hc})
	return &Client{endpoint: endpoint, pipeline: pl}
}

// RefreshKeyVaultReferences asks the site (or slot) to re-read its Key Vault references at once.
func (c *Client) RefreshKeyVaultReferences(ctx context.Context, siteID string) (int, error) {
	u := c.endpoint + siteID + "/config/configreferences/appsettings/refresh?api-version=" + APIVersion
	req, err := runtime.NewRequest(ctx, http.MethodPost, u)
	if err != nil {
		return 0, fmt.Errorf("refreshing the Key Vault references of %s: %w", siteID, err)
	}
	resp, err := c.pipeline.Do(req)
	if err != nil {
		se, ok := azure.ClassifyFailure(ctx, serviceARM, err)
		if !ok {
			return 0, err
		}
		return se.Status, fmt.Errorf("refreshing the Key Vault references of %s: %w", siteID, se)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, nil
	}
	rerr := runtime.NewResponseError(resp) // reads the body for the error code
	se := &appreg.ServiceError{Service: serviceARM, Status: resp.StatusCode, Kind: classify(resp.StatusCode)}
	var re *azcore.ResponseError
	if errors.As(rerr, &re) {
		se.Code = re.ErrorCode
	}
	if resp.StatusCode == http.StatusForbidden {
		se.Need = "the Website Contributor role on " + siteID
	}
	return resp.StatusCode, fmt.Errorf("refreshing the Key Vault references of %s: %w", siteID, se)
}

func classify(status int) error {
	switch {
	case status == http.StatusNotFound:
		return appreg.ErrNotFound
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		return appreg.ErrForbidden
	case status == http.StatusTooManyRequests:
		return appreg.ErrThrottled
	case status >= 500:
		return appreg.ErrUnavailable
	}
	return appreg.ErrRejected
}
