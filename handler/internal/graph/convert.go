package graph

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/microsoftgraph/msgraph-sdk-go/models"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
)

// From the SDK's models to appreg's types, and back.

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func uuidStr(p *uuid.UUID) string {
	if p == nil {
		return ""
	}
	return p.String()
}

func tm(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return p.UTC()
}

func fromApplication(m models.Applicationable) appreg.Application {
	app := appreg.Application{
		ObjectID:       str(m.GetId()),
		AppID:          str(m.GetAppId()),
		DisplayName:    str(m.GetDisplayName()),
		UniqueName:     str(m.GetUniqueName()),
		SignInAudience: str(m.GetSignInAudience()),
	}
	for _, r := range m.GetRequiredResourceAccess() {
		if r == nil {
			continue
		}
		ra := appreg.ResourceAccess{ResourceAppID: str(r.GetResourceAppId())}
		for _, acc := range r.GetResourceAccess() {
			if acc == nil {
				continue
			}
			ra.Access = append(ra.Access, appreg.Access{ID: uuidStr(acc.GetId()), Type: str(acc.GetTypeEscaped())})
		}
		app.RequiredResourceAccess = append(app.RequiredResourceAccess, ra)
	}
	for _, p := range m.GetPasswordCredentials() {
		if p != nil {
			app.Passwords = append(app.Passwords, fromPassword(p))
		}
	}
	return app
}

func fromPassword(p models.PasswordCredentialable) appreg.PasswordCredential {
	return appreg.PasswordCredential{
		KeyID:       uuidStr(p.GetKeyId()),
		DisplayName: str(p.GetDisplayName()),
		Hint:        str(p.GetHint()),
		Start:       tm(p.GetStartDateTime()),
		End:         tm(p.GetEndDateTime()),
	}
}

func toRequiredResourceAccess(in []appreg.ResourceAccess) ([]models.RequiredResourceAccessable, error) {
	out := make([]models.RequiredResourceAccessable, 0, len(in))
	for _, r := range in {
		m := models.NewRequiredResourceAccess()
		appID := r.ResourceAppID
		m.SetResourceAppId(&appID)
		accs := make([]models.ResourceAccessable, 0, len(r.Access))
		for _, a := range r.Access {
			id, err := uuid.Parse(a.ID)
			if err != nil {
				return nil, rejected(fmt.Sprintf("permission id %q is not a GUID", a.ID))
			}
			acc := models.NewResourceAccess()
			typ := a.Type
			acc.SetId(&id)
			acc.SetTypeEscaped(&typ)
			accs = append(accs, acc)
		}
		m.SetResourceAccess(accs)
		out = append(out, m)
	}
	return out, nil
}

func fromServicePrincipal(m models.ServicePrincipalable) appreg.ServicePrincipal {
	sp := appreg.ServicePrincipal{
		ID:          str(m.GetId()),
		AppID:       str(m.GetAppId()),
		DisplayName: str(m.GetDisplayName()),
	}
	for _, r := range m.GetAppRoles() {
		if r == nil {
			continue
		}
		sp.AppRoles = append(sp.AppRoles, appreg.AppRole{
			ID:                 uuidStr(r.GetId()),
			Value:              str(r.GetValue()),
			Enabled:            r.GetIsEnabled() != nil && *r.GetIsEnabled(),
			AllowedMemberTypes: append([]string(nil), r.GetAllowedMemberTypes()...),
		})
	}
	return sp
}

func fromAssignment(m models.AppRoleAssignmentable) appreg.AppRoleAssignment {
	return appreg.AppRoleAssignment{
		ID:          str(m.GetId()),
		PrincipalID: uuidStr(m.GetPrincipalId()),
		ResourceID:  uuidStr(m.GetResourceId()),
		AppRoleID:   uuidStr(m.GetAppRoleId()),
	}
}
