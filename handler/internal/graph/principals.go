package graph

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/serviceprincipals"
	"github.com/microsoftgraph/msgraph-sdk-go/serviceprincipalswithappid"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
)

// Service principals and app role assignments.

// ServicePrincipal reads the service principal of an appId, with its app roles.
func (d *Directory) ServicePrincipal(ctx context.Context, appID string) (appreg.ServicePrincipal, error) {
	o := op{what: fmt.Sprintf("reading the service principal of %s", appID), need: NeedApplicationReadAll}
	ctx, a := d.start(ctx)
	key := quoteKey(appID)
	res, err := d.client.ServicePrincipalsWithAppId(&key).Get(ctx, &serviceprincipalswithappid.ServicePrincipalsWithAppIdRequestBuilderGetRequestConfiguration{
		QueryParameters: &serviceprincipalswithappid.ServicePrincipalsWithAppIdRequestBuilderGetQueryParameters{Select: spSelect},
	})
	if err != nil {
		return appreg.ServicePrincipal{}, fmt.Errorf("%s: %w", o.what, d.classify(ctx, o, a, err))
	}
	if res == nil {
		return appreg.ServicePrincipal{}, fmt.Errorf("%s: %w", o.what, noObject(a))
	}
	return fromServicePrincipal(res), nil
}

// CreateServicePrincipal creates the service principal of an appId.
func (d *Directory) CreateServicePrincipal(ctx context.Context, appID string) (appreg.ServicePrincipal, error) {
	o := op{what: fmt.Sprintf("creating the service principal of %s", appID), need: NeedApplicationOwnedBy, write: true, owned: true, spCreate: true}
	body := models.NewServicePrincipal()
	id := appID
	body.SetAppId(&id)
	ctx, a := d.start(ctx)
	res, err := d.client.ServicePrincipals().Post(ctx, body, nil)
	if err != nil {
		return appreg.ServicePrincipal{}, fmt.Errorf("%s: %w", o.what, d.classify(ctx, o, a, err))
	}
	if res == nil {
		return appreg.ServicePrincipal{}, fmt.Errorf("%s: %w", o.what, noObject(a))
	}
	return fromServicePrincipal(res), nil
}

// AppRoleAssignments lists the app role assignments granted to a service principal, following
// @odata.nextLink through every page.
func (d *Directory) AppRoleAssignments(ctx context.Context, principalID string) ([]appreg.AppRoleAssignment, error) {
	o := op{what: fmt.Sprintf("listing the app role assignments of service principal %s", principalID), need: NeedApplicationReadAll}
	builder := d.client.ServicePrincipals().ByServicePrincipalId(principalID).AppRoleAssignments()
	cfg := &serviceprincipals.ItemAppRoleAssignmentsRequestBuilderGetRequestConfiguration{
		QueryParameters: &serviceprincipals.ItemAppRoleAssignmentsRequestBuilderGetQueryParameters{Select: assignmentSelect},
	}
	return d.assignmentPages(ctx, o, builder, cfg, 0)
}

// assignmentPages reads the pages of an assignment list from builder on; page counts the pages read
// before (maxPages bounds them all).
func (d *Directory) assignmentPages(ctx context.Context, o op, builder *serviceprincipals.ItemAppRoleAssignmentsRequestBuilder,
	cfg *serviceprincipals.ItemAppRoleAssignmentsRequestBuilderGetRequestConfiguration, page int) ([]appreg.AppRoleAssignment, error) {
	var out []appreg.AppRoleAssignment
	for ; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("%s: %w", o.what, rejected(fmt.Sprintf("more than %d pages", maxPages)))
		}
		pctx, a := d.start(ctx)
		res, err := builder.Get(pctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.what, d.classify(pctx, o, a, err))
		}
		if res == nil {
			return nil, fmt.Errorf("%s: %w", o.what, noObject(a))
		}
		for _, v := range res.GetValue() {
			if v != nil {
				out = append(out, fromAssignment(v))
			}
		}
		next := res.GetOdataNextLink()
		if next == nil || *next == "" {
			return out, nil
		}
		// The next link carries the query of the first request; no configuration is added to it.
		builder = builder.WithUrl(*next)
		cfg = nil
	}
}

// AssignAppRole grants an app role to principalID on the resource service principal resourceID.
func (d *Directory) AssignAppRole(ctx context.Context, principalID, resourceID, appRoleID string) (appreg.AppRoleAssignment, error) {
	o := op{what: fmt.Sprintf("assigning app role %s of %s to %s", appRoleID, resourceID, principalID), need: NeedAppRoleAssignmentRW, write: true, assign: true}
	ids := make([]uuid.UUID, 3)
	for i, s := range []string{principalID, resourceID, appRoleID} {
		id, err := uuid.Parse(s)
		if err != nil {
			return appreg.AppRoleAssignment{}, fmt.Errorf("%s: %w", o.what, rejected(fmt.Sprintf("%q is not a GUID", s)))
		}
		ids[i] = id
	}
	body := models.NewAppRoleAssignment()
	body.SetPrincipalId(&ids[0])
	body.SetResourceId(&ids[1])
	body.SetAppRoleId(&ids[2])
	ctx, a := d.start(ctx)
	res, err := d.client.ServicePrincipals().ByServicePrincipalId(resourceID).AppRoleAssignedTo().Post(ctx, body, nil)
	if err != nil {
		return appreg.AppRoleAssignment{}, fmt.Errorf("%s: %w", o.what, d.classify(ctx, o, a, err))
	}
	if res == nil {
		return appreg.AppRoleAssignment{}, fmt.Errorf("%s: %w", o.what, noObject(a))
	}
	return fromAssignment(res), nil
}

// RemoveAppRoleAssignment revokes an app role assignment granted to principalID.
func (d *Directory) RemoveAppRoleAssignment(ctx context.Context, principalID, assignmentID string) error {
	o := op{what: fmt.Sprintf("removing app role assignment %s of service principal %s", assignmentID, principalID), need: NeedAppRoleAssignmentRW}
	ctx, a := d.start(ctx)
	err := d.client.ServicePrincipals().ByServicePrincipalId(principalID).AppRoleAssignments().ByAppRoleAssignmentId(assignmentID).Delete(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", o.what, d.classify(ctx, o, a, err))
	}
	return nil
}
