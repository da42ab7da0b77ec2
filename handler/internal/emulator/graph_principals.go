package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// ---- service principals ----

// findSP looks a service principal up by key; invisible ones only when all is set.
func (t *Tenant) findSP(key entityKey, all bool) *ServicePrincipal {
	return find(t.state.ServicePrincipals, all, func(sp *ServicePrincipal) (bool, time.Time) {
		switch key.prop {
		case "id":
			return strings.EqualFold(sp.ID, key.value), sp.VisibleAt
		case "appId":
			return strings.EqualFold(sp.AppID, key.value), sp.VisibleAt
		}
		return false, sp.VisibleAt
	})
}

func (t *Tenant) getServicePrincipal(req *request, key entityKey) answer {
	if ans := t.checkQuery(req, "$select"); ans != nil {
		return *ans
	}
	c := req.claims
	readAll := c.hasRole(graphReadRoles...)
	if !readAll && !c.hasRole(RoleApplicationReadWriteOwnedBy) {
		return denied(req)
	}
	sp := t.findSP(key, false)
	if sp == nil || !t.readReplica().shows(sp.ID) {
		return notFound(req, key.value)
	}
	if !readAll && !owns(sp.Owners, c.Oid) {
		return denied(req)
	}
	return t.graphEntity(req, http.StatusOK, spJSON(sp), "servicePrincipals/$entity", "microsoft.graph.servicePrincipal")
}

// spPatch is a parsed service principal write.
type spPatch struct {
	set            map[string]bool
	appID          string
	accountEnabled bool
	tags           []string
	notes          string
}

func (p spPatch) apply(sp *ServicePrincipal) {
	if p.set["accountEnabled"] {
		sp.AccountEnabled = p.accountEnabled
	}
	if p.set["tags"] {
		sp.Tags = p.tags
	}
	if p.set["notes"] {
		sp.Notes = p.notes
	}
}

func (t *Tenant) parseSPPatch(req *request, allowEmpty bool) (spPatch, *answer) {
	p := spPatch{set: map[string]bool{}, accountEnabled: true}
	if allowEmpty && len(strings.TrimSpace(string(req.body))) == 0 {
		return p, nil
	}
	obj, bad := parseJSONBody(req)
	if bad != nil {
		return p, bad
	}
	for k, raw := range obj {
		if isAnnotation(k) {
			continue
		}
		var err error
		switch k {
		case "appId":
			err = json.Unmarshal(raw, &p.appID)
			if err == nil && !isGUID(p.appID) {
				return p, invalidProperty(req, k, "ServicePrincipal")
			}
		case "accountEnabled":
			err = json.Unmarshal(raw, &p.accountEnabled)
		case "tags":
			err = json.Unmarshal(raw, &p.tags)
		case "notes":
			var s *string
			if err = json.Unmarshal(raw, &s); err == nil && s != nil {
				p.notes = *s
			}
		case "id", "appRoles", "servicePrincipalType", "appOwnerOrganizationId", "displayName":
			return p, invalidProperty(req, k, "ServicePrincipal")
		default:
			return p, t.unknownProperty(req, k, "microsoft.graph.servicePrincipal")
		}
		if err != nil {
			return p, invalidProperty(req, k, "ServicePrincipal")
		}
		p.set[k] = true
	}
	return p, nil
}

// newServicePrincipal creates the service principal of an application (checks done by the caller).
func (t *Tenant) newServicePrincipal(req *request, app *Application, p spPatch) answer {
	sp := ServicePrincipal{
		ID: NewGUID(), AppID: app.AppID, DisplayName: app.DisplayName, ServicePrincipalType: "Application",
		AppOwnerOrganizationID: t.dirID, AccountEnabled: true, Owners: []string{req.claims.Oid},
		VisibleAt: t.visibleAt(),
	}
	p.apply(&sp)
	t.state.ServicePrincipals = append(t.state.ServicePrincipals, sp)
	t.noteCreated(req, sp.ID)
	req.applied = true
	return t.graphEntity(req, http.StatusCreated, spJSON(&sp), "servicePrincipals/$entity", "microsoft.graph.servicePrincipal")
}

// checkNewServicePrincipal applies Graph's checks to creating the service principal of appID.
func (t *Tenant) checkNewServicePrincipal(req *request, appID string) (*Application, *answer) {
	if t.findSP(entityKey{prop: "appId", value: appID}, true) != nil {
		ans := graphError(req, http.StatusConflict, codeDuplicateKey, fmt.Sprintf(
			"The service principal cannot be created, updated, or restored because the service principal name %s is already in use.", appID))
		return nil, &ans
	}
	app := t.findApp(entityKey{prop: "appId", value: appID}, false)
	if ans := t.spAppNotLocal(req, appID, app); ans != nil {
		return nil, ans
	}
	if app == nil {
		ans := badRequest(req, codeBadRequest, fmt.Sprintf(
			"The appId '%s' of the service principal does not reference a valid application object.", appID))
		return nil, &ans
	}
	c := req.claims
	if !c.hasRole(graphWriteRoles...) && !owns(app.Owners, c.Oid) {
		ans := denied(req)
		return nil, &ans
	}
	return app, nil
}

func (t *Tenant) createServicePrincipal(req *request) answer {
	c := req.claims
	if !c.hasRole(graphWriteRoles...) && !c.hasRole(RoleApplicationReadWriteOwnedBy) {
		return denied(req)
	}
	if ans := t.checkQuery(req); ans != nil {
		return *ans
	}
	p, bad := t.parseSPPatch(req, false)
	if bad != nil {
		return *bad
	}
	if p.appID == "" {
		return *invalidProperty(req, "appId", "ServicePrincipal")
	}
	app, bad := t.checkNewServicePrincipal(req, p.appID)
	if bad != nil {
		return *bad
	}
	return t.newServicePrincipal(req, app, p)
}

func (t *Tenant) upsertServicePrincipal(req *request, key entityKey) answer {
	c := req.claims
	if !c.hasRole(graphWriteRoles...) && !c.hasRole(RoleApplicationReadWriteOwnedBy) {
		return denied(req)
	}
	if ans := t.checkQuery(req); ans != nil {
		return *ans
	}
	p, bad := t.parseSPPatch(req, true)
	if bad != nil {
		return *bad
	}
	if p.set["appId"] && !strings.EqualFold(p.appID, key.value) {
		return badRequest(req, codeBadRequest, "The appId of a service principal cannot be changed.")
	}
	if sp := t.findSP(key, true); sp != nil {
		if !c.hasRole(graphWriteRoles...) && !owns(sp.Owners, c.Oid) {
			return denied(req)
		}
		p.apply(sp)
		req.applied = true
		return graphNoContent(req)
	}
	if !preferCreateIfMissing(req.header) {
		return notFound(req, key.value)
	}
	app, bad := t.checkNewServicePrincipal(req, key.value)
	if bad != nil {
		return *bad
	}
	return t.newServicePrincipal(req, app, p)
}

// ---- app role assignments ----

func (t *Tenant) listAssignments(req *request, key entityKey, byResource bool) answer {
	if ans := t.checkQuery(req, "$select", "$top", "$skiptoken"); ans != nil {
		return *ans
	}
	c := req.claims
	readAll := c.hasRole(graphReadRoles...) || c.hasRole(RoleAppRoleAssignmentReadWriteAll)
	if !readAll && !c.hasRole(RoleApplicationReadWriteOwnedBy) {
		return denied(req)
	}
	sp := t.findSP(key, false)
	rep := t.readReplica()
	if sp == nil || !rep.shows(sp.ID) {
		return notFound(req, key.value)
	}
	if !readAll && !owns(sp.Owners, c.Oid) {
		return denied(req)
	}
	var items []map[string]any
	for _, a := range rep.assignments(t.state.AppRoleAssignments, sp.ID, byResource) {
		items = append(items, assignmentJSON(a))
	}
	nav := "appRoleAssignments"
	if byResource {
		nav = "appRoleAssignedTo"
	}
	return t.graphPage(req, items, "servicePrincipals('"+sp.ID+"')/"+nav, "microsoft.graph.appRoleAssignment")
}

func (t *Tenant) listAppRoleAssignments(req *request, key entityKey) answer {
	return t.listAssignments(req, key, false)
}

func (t *Tenant) listAppRoleAssignedTo(req *request, key entityKey) answer {
	return t.listAssignments(req, key, true)
}

func (t *Tenant) assignAppRole(req *request, key entityKey) answer {
	c := req.claims
	if !c.hasRole(RoleAppRoleAssignmentReadWriteAll) && !c.hasRole(graphWriteRoles...) {
		return denied(req)
	}
	if ans := t.checkQuery(req); ans != nil {
		return *ans
	}
	obj, bad := parseJSONBody(req)
	if bad != nil {
		return *bad
	}
	var principalID, resourceID, appRoleID string
	for k, raw := range obj {
		var target *string
		switch {
		case isAnnotation(k):
			continue
		case k == "principalId":
			target = &principalID
		case k == "resourceId":
			target = &resourceID
		case k == "appRoleId":
			target = &appRoleID
		case k == "principalType" || k == "principalDisplayName" || k == "resourceDisplayName" || k == "createdDateTime":
			continue // read-only, ignored
		default:
			return *t.unknownProperty(req, k, "microsoft.graph.appRoleAssignment")
		}
		if json.Unmarshal(raw, target) != nil || !isGUID(*target) {
			return *invalidProperty(req, k, "AppRoleAssignment")
		}
	}
	for prop, v := range map[string]string{"principalId": principalID, "resourceId": resourceID, "appRoleId": appRoleID} {
		if v == "" {
			return *invalidProperty(req, prop, "AppRoleAssignment")
		}
	}
	resource := t.findSP(key, false)
	if resource == nil {
		if ans := t.referenceError(req, key.value); ans != nil {
			return *ans
		}
		return notFound(req, key.value)
	}
	if !strings.EqualFold(resource.ID, resourceID) {
		return badRequest(req, codeBadRequest, "The resourceId of the assignment must be the service principal it is posted to.")
	}
	principal := t.findSP(entityKey{prop: "id", value: principalID}, false)
	// A write is checked on a replica too: a lagging one may not know the fresh principal yet.
	if principal == nil || (t.graphRealism.cfg.AssignmentReferenceErrors && !t.readReplica().shows(principal.ID)) {
		if ans := t.referenceError(req, principalID); ans != nil {
			return *ans
		}
		return notFound(req, principalID)
	}
	if !slices.ContainsFunc(resource.AppRoles, func(r AppRole) bool {
		return strings.EqualFold(r.ID, appRoleID) && r.IsEnabled && slices.Contains(r.AllowedMemberTypes, "Application")
	}) {
		return badRequest(req, codeBadRequest, fmt.Sprintf("Permission being assigned was not found on application '%s'.", resource.AppID))
	}
	if slices.ContainsFunc(t.state.AppRoleAssignments, func(a AppRoleAssignment) bool {
		return strings.EqualFold(a.PrincipalID, principal.ID) && strings.EqualFold(a.ResourceID, resource.ID) &&
			strings.EqualFold(a.AppRoleID, appRoleID)
	}) {
		return badRequest(req, codeBadRequest, msgAssignmentDuplicate)
	}
	a := AppRoleAssignment{
		ID: newAssignmentID(), AppRoleID: strings.ToLower(appRoleID), PrincipalID: principal.ID,
		PrincipalDisplayName: principal.DisplayName, PrincipalType: "ServicePrincipal",
		ResourceID: resource.ID, ResourceDisplayName: resource.DisplayName,
		CreatedDateTime: t.now(), VisibleAt: t.visibleAt(),
	}
	t.state.AppRoleAssignments = append(t.state.AppRoleAssignments, a)
	t.noteCreated(req, a.ID)
	req.applied = true
	return t.graphEntity(req, http.StatusCreated, assignmentJSON(a),
		"servicePrincipals('"+resource.ID+"')/appRoleAssignedTo/$entity", "microsoft.graph.appRoleAssignment")
}
