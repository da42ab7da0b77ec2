package emulator

// ---- JSON ----

func appJSON(a *Application) map[string]any {
	creds := []map[string]any{}
	for _, p := range a.PasswordCredentials {
		if visible(p.VisibleAt) {
			creds = append(creds, passwordJSON(p, false))
		}
	}
	rra := []map[string]any{}
	for _, r := range a.RequiredResourceAccess {
		acc := []map[string]any{}
		for _, x := range r.ResourceAccess {
			acc = append(acc, map[string]any{"id": x.ID, "type": x.Type})
		}
		rra = append(rra, map[string]any{"resourceAppId": r.ResourceAppID, "resourceAccess": acc})
	}
	return map[string]any{
		"id":                     a.ID,
		"deletedDateTime":        jsonTime(a.DeletedDateTime),
		"appId":                  a.AppID,
		"displayName":            nullable(a.DisplayName),
		"uniqueName":             nullable(a.UniqueName),
		"signInAudience":         a.SignInAudience,
		"createdDateTime":        jsonTime(a.CreatedDateTime),
		"description":            nullable(a.Description),
		"notes":                  nullable(a.Notes),
		"tags":                   nonNil(a.Tags),
		"identifierUris":         nonNil(a.IdentifierURIs),
		"requiredResourceAccess": rra,
		"passwordCredentials":    creds,
		"keyCredentials":         []any{},
		"appRoles":               []any{},
	}
}

func passwordJSON(p PasswordCredential, withSecret bool) map[string]any {
	var secret any
	if withSecret {
		secret = p.SecretText
	}
	return map[string]any{
		"customKeyIdentifier": nil,
		"displayName":         nullable(p.DisplayName),
		"endDateTime":         jsonTime(p.EndDateTime),
		"hint":                nullable(p.Hint),
		"keyId":               p.KeyID,
		"secretText":          secret,
		"startDateTime":       jsonTime(p.StartDateTime),
	}
}

func spJSON(sp *ServicePrincipal) map[string]any {
	roles := []map[string]any{}
	for _, r := range sp.AppRoles {
		roles = append(roles, map[string]any{
			"allowedMemberTypes": nonNil(r.AllowedMemberTypes),
			"description":        nullable(r.Description),
			"displayName":        nullable(r.DisplayName),
			"id":                 r.ID,
			"isEnabled":          r.IsEnabled,
			"origin":             "Application",
			"value":              nullable(r.Value),
		})
	}
	return map[string]any{
		"id":                     sp.ID,
		"deletedDateTime":        nil,
		"accountEnabled":         sp.AccountEnabled,
		"appId":                  sp.AppID,
		"appDisplayName":         nullable(sp.DisplayName),
		"appOwnerOrganizationId": nullable(sp.AppOwnerOrganizationID),
		"displayName":            nullable(sp.DisplayName),
		"servicePrincipalType":   nullable(sp.ServicePrincipalType),
		"servicePrincipalNames":  []string{sp.AppID},
		"tags":                   nonNil(sp.Tags),
		"notes":                  nullable(sp.Notes),
		"appRoles":               roles,
	}
}

func assignmentJSON(a AppRoleAssignment) map[string]any {
	return map[string]any{
		"id":                   a.ID,
		"deletedDateTime":      nil,
		"appRoleId":            a.AppRoleID,
		"createdDateTime":      jsonTime(a.CreatedDateTime),
		"principalDisplayName": nullable(a.PrincipalDisplayName),
		"principalId":          a.PrincipalID,
		"principalType":        nullable(a.PrincipalType),
		"resourceDisplayName":  nullable(a.ResourceDisplayName),
		"resourceId":           a.ResourceID,
	}
}
