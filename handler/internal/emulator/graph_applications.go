package emulator

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// ---- applications ----

// findApp looks an application up by key; invisible ones only when all is set.
func (t *Tenant) findApp(key entityKey, all bool) *Application {
	return find(t.state.Applications, all, func(a *Application) (bool, time.Time) {
		switch key.prop {
		case "id":
			return strings.EqualFold(a.ID, key.value), a.VisibleAt
		case "appId":
			return strings.EqualFold(a.AppID, key.value), a.VisibleAt
		case "uniqueName":
			return strings.EqualFold(a.UniqueName, key.value), a.VisibleAt
		}
		return false, a.VisibleAt
	})
}

// find returns the first of items that match accepts and that has replicated (see visible), or any that
// match accepts when all is set; nil when none.
func find[T any](items []T, all bool, match func(*T) (ok bool, visibleAt time.Time)) *T {
	for i := range items {
		if ok, at := match(&items[i]); ok && (all || visible(at)) {
			return &items[i]
		}
	}
	return nil
}

func (t *Tenant) deletedAppWithUniqueName(name string) bool {
	return slices.ContainsFunc(t.state.DeletedApplications, func(a Application) bool {
		return a.UniqueName != "" && strings.EqualFold(a.UniqueName, name)
	})
}

func (t *Tenant) uniqueNameTaken(name, exceptID string) bool {
	if t.deletedAppWithUniqueName(name) {
		return true
	}
	return slices.ContainsFunc(t.state.Applications, func(a Application) bool {
		return a.ID != exceptID && strings.EqualFold(a.UniqueName, name)
	})
}

func (t *Tenant) getApplication(req *request, key entityKey) answer {
	if ans := t.checkQuery(req, "$select"); ans != nil {
		return *ans
	}
	c := req.claims
	readAll := c.hasRole(graphReadRoles...)
	if !readAll && !c.hasRole(RoleApplicationReadWriteOwnedBy) {
		return denied(req)
	}
	app := t.findApp(key, false)
	rep := t.readReplica()
	if app == nil || !rep.shows(app.ID) {
		return notFound(req, key.value)
	}
	if !readAll && !owns(app.Owners, c.Oid) {
		return denied(req)
	}
	return t.graphEntity(req, http.StatusOK, appJSON(rep.application(app)), "applications/$entity", "microsoft.graph.application")
}

// appWrite checks what every write to an application needs (a role that may write applications, no
// query options) and parses its body.
func (t *Tenant) appWrite(req *request) (appPatch, *answer) {
	c := req.claims
	if !c.hasRole(graphWriteRoles...) && !c.hasRole(RoleApplicationReadWriteOwnedBy) {
		ans := denied(req)
		return appPatch{}, &ans
	}
	if ans := t.checkQuery(req); ans != nil {
		return appPatch{}, ans
	}
	return t.parseAppPatch(req)
}

func (t *Tenant) upsertApplication(req *request, key entityKey) answer {
	c := req.claims
	p, bad := t.appWrite(req)
	if bad != nil {
		return *bad
	}
	if p.has("uniqueName") && !strings.EqualFold(p.uniqueName, key.value) {
		return badRequest(req, codeBadRequest, "The uniqueName of an application cannot be changed.")
	}
	app := t.findApp(key, true) // the alternate key is consistent: uniqueness is enforced at write
	if app != nil {
		if !c.hasRole(graphWriteRoles...) && !owns(app.Owners, c.Oid) {
			return denied(req)
		}
		if p.has("displayName") && strings.TrimSpace(p.displayName) == "" {
			return *invalidProperty(req, "displayName", "Application")
		}
		if ans := t.uniqueNameRace(req, app); ans != nil {
			return *ans
		}
		p.apply(app)
		req.applied = true
		return graphNoContent(req)
	}
	if !preferCreateIfMissing(req.header) {
		return notFound(req, key.value)
	}
	if t.deletedAppWithUniqueName(key.value) {
		return badRequest(req, codeDuplicateKey, msgUniqueNameTaken)
	}
	if strings.TrimSpace(key.value) == "" {
		return badRequest(req, codeBadRequest, "Invalid value specified for property 'uniqueName' of resource 'Application'.")
	}
	if strings.TrimSpace(p.displayName) == "" {
		return badRequest(req, codeBadRequest, "Invalid value specified for property 'displayName' of resource 'Application'.")
	}
	t.state.Applications = append(t.state.Applications, Application{
		ID: NewGUID(), AppID: NewGUID(), UniqueName: key.value, SignInAudience: defaultSignInAudience,
		CreatedDateTime: t.now(), Owners: []string{c.Oid}, VisibleAt: t.visibleAt(),
	})
	app = &t.state.Applications[len(t.state.Applications)-1]
	p.apply(app)
	t.noteCreated(req, app.ID)
	req.applied = true
	return t.graphEntity(req, http.StatusCreated, appJSON(app), "applications/$entity", "microsoft.graph.application")
}

func (t *Tenant) updateApplication(req *request, key entityKey) answer {
	c := req.claims
	p, bad := t.appWrite(req)
	if bad != nil {
		return *bad
	}
	app := t.findApp(key, false)
	if app == nil {
		return notFound(req, key.value)
	}
	if !c.hasRole(graphWriteRoles...) && !owns(app.Owners, c.Oid) {
		return denied(req)
	}
	if p.has("uniqueName") {
		switch {
		case app.UniqueName != "" && !strings.EqualFold(app.UniqueName, p.uniqueName):
			return badRequest(req, codeBadRequest, "The uniqueName of an application cannot be changed.")
		case app.UniqueName == "" && t.uniqueNameTaken(p.uniqueName, app.ID):
			return badRequest(req, codeDuplicateKey, msgUniqueNameTaken)
		}
	}
	if p.has("displayName") && strings.TrimSpace(p.displayName) == "" {
		return badRequest(req, codeBadRequest, "Invalid value specified for property 'displayName' of resource 'Application'.")
	}
	p.apply(app)
	req.applied = true
	return graphNoContent(req)
}

// appPatch is a parsed application write.
type appPatch struct {
	set            map[string]bool
	displayName    string
	uniqueName     string
	signInAudience string
	description    string
	notes          string
	tags           []string
	identifierURIs []string
	rra            []RequiredResourceAccess
}

func (p appPatch) has(prop string) bool { return p.set[prop] }

func (p appPatch) apply(a *Application) {
	if p.has("displayName") {
		a.DisplayName = p.displayName
	}
	if p.has("uniqueName") && a.UniqueName == "" {
		a.UniqueName = p.uniqueName
	}
	if p.has("signInAudience") {
		a.SignInAudience = p.signInAudience
	}
	if p.has("description") {
		a.Description = p.description
	}
	if p.has("notes") {
		a.Notes = p.notes
	}
	if p.has("tags") {
		a.Tags = p.tags
	}
	if p.has("identifierUris") {
		a.IdentifierURIs = p.identifierURIs
	}
	if p.has("requiredResourceAccess") {
		a.RequiredResourceAccess = p.rra
	}
}

func (t *Tenant) parseAppPatch(req *request) (appPatch, *answer) {
	const typeName = "microsoft.graph.application"
	p := appPatch{set: map[string]bool{}}
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
		case "displayName", "uniqueName", "signInAudience":
			var s *string
			err = json.Unmarshal(raw, &s)
			if err == nil && s == nil {
				return p, invalidProperty(req, k, "Application")
			}
			if err == nil {
				switch k {
				case "displayName":
					p.displayName = *s
				case "uniqueName":
					p.uniqueName = *s
				case "signInAudience":
					if !slices.Contains(signInAudiences, *s) {
						return p, invalidProperty(req, k, "Application")
					}
					p.signInAudience = *s
				}
			}
		case "description", "notes":
			var s *string
			if err = json.Unmarshal(raw, &s); err == nil && s != nil {
				if k == "description" {
					p.description = *s
				} else {
					p.notes = *s
				}
			}
		case "tags", "identifierUris":
			var list []string
			if err = json.Unmarshal(raw, &list); err == nil {
				if k == "tags" {
					p.tags = list
				} else {
					p.identifierURIs = list
				}
			}
		case "requiredResourceAccess":
			var bad *answer
			p.rra, bad = t.parseRequiredResourceAccess(req, raw)
			if bad != nil {
				return p, bad
			}
		case "id", "appId", "createdDateTime", "passwordCredentials", "keyCredentials", "deletedDateTime":
			return p, invalidProperty(req, k, "Application") // read-only here (passwords: addPassword)
		default:
			return p, t.unknownProperty(req, k, typeName)
		}
		if err != nil {
			return p, invalidProperty(req, k, "Application")
		}
		p.set[k] = true
	}
	return p, nil
}

func (t *Tenant) parseRequiredResourceAccess(req *request, raw json.RawMessage) ([]RequiredResourceAccess, *answer) {
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, invalidProperty(req, "requiredResourceAccess", "Application")
	}
	out := make([]RequiredResourceAccess, 0, len(items))
	for _, it := range items {
		var r RequiredResourceAccess
		for k, v := range it {
			switch {
			case isAnnotation(k):
			case k == "resourceAppId":
				if json.Unmarshal(v, &r.ResourceAppID) != nil || !isGUID(r.ResourceAppID) {
					return nil, invalidProperty(req, "resourceAppId", "RequiredResourceAccess")
				}
			case k == "resourceAccess":
				var accesses []map[string]json.RawMessage
				if json.Unmarshal(v, &accesses) != nil {
					return nil, invalidProperty(req, "resourceAccess", "RequiredResourceAccess")
				}
				for _, acc := range accesses {
					var ra ResourceAccess
					for ak, av := range acc {
						switch {
						case isAnnotation(ak):
						case ak == "id":
							if json.Unmarshal(av, &ra.ID) != nil || !isGUID(ra.ID) {
								return nil, invalidProperty(req, "id", "ResourceAccess")
							}
						case ak == "type":
							if json.Unmarshal(av, &ra.Type) != nil || (ra.Type != "Role" && ra.Type != "Scope") {
								return nil, invalidProperty(req, "type", "ResourceAccess")
							}
						default:
							return nil, t.unknownProperty(req, ak, "microsoft.graph.resourceAccess")
						}
					}
					if ra.ID == "" || ra.Type == "" {
						return nil, invalidProperty(req, "resourceAccess", "RequiredResourceAccess")
					}
					r.ResourceAccess = append(r.ResourceAccess, ra)
				}
			default:
				return nil, t.unknownProperty(req, k, "microsoft.graph.requiredResourceAccess")
			}
		}
		if r.ResourceAppID == "" {
			return nil, invalidProperty(req, "resourceAppId", "RequiredResourceAccess")
		}
		out = append(out, r)
	}
	return out, nil
}
