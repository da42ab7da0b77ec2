package emulator

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// GraphRoot is the Microsoft Graph v1.0 base URL.
const GraphRoot = "https://graph.microsoft.com/v1.0"

const graphContentType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

// Graph error codes and messages the fake answers with.
const (
	codeResourceNotFound   = "Request_ResourceNotFound"
	codeBadRequest         = "Request_BadRequest"
	codeODataBadRequest    = "BadRequest"
	codeDuplicateKey       = "Request_MultipleObjectsWithSameKeyValue"
	codeDenied             = "Authorization_RequestDenied"
	codeConcurrency        = "Directory_ConcurrencyViolation"
	codeLifetimePolicy     = "CredentialInvalidLifetimeAsPerAppPolicy"
	msgDenied              = "Insufficient privileges to complete the operation."
	msgConcurrency         = "Error due to concurrent requests being made to the tenant. Please wait briefly and retry."
	msgUniqueNameTaken     = "Another object with the same value for property uniqueName already exists."
	msgAssignmentDuplicate = "Permission being assigned already exists on the object."
	defaultSignInAudience  = "AzureADandPersonalMicrosoftAccount"
	defaultPasswordYears   = 2
	lifetimePolicySlack    = time.Minute // clock difference tolerated between a client and the policy check
	defaultPolicyID        = "00000000-0000-0000-0000-000000000000"
)

// Role sets of the permission checks.
var (
	graphReadRoles  = []string{RoleApplicationReadAll, RoleApplicationReadWriteAll, RoleDirectoryReadAll, RoleDirectoryReadWriteAll}
	graphWriteRoles = []string{RoleApplicationReadWriteAll, RoleDirectoryReadWriteAll}
)

var signInAudiences = []string{"AzureADMyOrg", "AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"}

// graphError builds an OData error answer.
func graphError(req *request, status int, code, message string) answer {
	return graphErrorDetails(req, status, code, message, nil)
}

// graphErrorDetails builds an OData error answer with error.details (none when nil).
func graphErrorDetails(req *request, status int, code, message string, details []map[string]any) answer {
	e := map[string]any{
		"code":    code,
		"message": message,
		"innerError": map[string]any{
			"date":              time.Now().UTC().Format(time.RFC3339),
			"request-id":        req.requestID,
			"client-request-id": clientRequestID(req),
		},
	}
	if details != nil {
		e["details"] = details
	}
	ans := jsonAnswer(status, map[string]any{"error": e}, graphContentType)
	setGraphHeaders(req, ans.header)
	return ans
}

func clientRequestID(req *request) string {
	if id := req.header.Get("client-request-id"); id != "" {
		return id
	}
	return req.requestID
}

func setGraphHeaders(req *request, h http.Header) {
	h.Set("request-id", req.requestID)
	h.Set("client-request-id", clientRequestID(req))
}

// graphJSON builds a JSON answer with Graph's headers.
func graphJSON(req *request, status int, v map[string]any) answer {
	ans := jsonAnswer(status, v, graphContentType)
	setGraphHeaders(req, ans.header)
	return ans
}

func graphNoContent(req *request) answer {
	ans := emptyAnswer(http.StatusNoContent)
	setGraphHeaders(req, ans.header)
	return ans
}

func denied(req *request) answer { return graphError(req, http.StatusForbidden, codeDenied, msgDenied) }

func notFound(req *request, id string) answer {
	return graphError(req, http.StatusNotFound, codeResourceNotFound,
		fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id))
}

func badRequest(req *request, code, message string) answer {
	return graphError(req, http.StatusBadRequest, code, message)
}

// graphAuth checks the bearer token of a Graph request.
func (t *Tenant) graphAuth(req *request) *answer {
	c, err := verifyToken(bearerToken(req.header.Get("Authorization")), t.tenantID, AudienceGraph, time.Now())
	if err == nil {
		req.claims = c
		return nil
	}
	var msg string
	switch {
	case errors.Is(err, errTokenMissing):
		msg = "Access token is empty."
	case errors.Is(err, errTokenMalformed):
		msg = "IDX14100: JWT is not well formed, there are no dots (.)."
	case errors.Is(err, errTokenExpired):
		msg = "Lifetime validation failed, the token is expired."
	case errors.Is(err, errTokenAudience):
		msg = "Access token validation failure. Invalid audience."
	default:
		msg = "Access token validation failure. Invalid issuer or signature."
	}
	t.logf("emulator: graph rejects the token of %s: %v", req.target(), err)
	ans := graphError(req, http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
	ans.header.Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
	return &ans
}

// entityKey addresses one application or service principal.
type entityKey struct {
	prop  string // "id", "uniqueName" or "appId"
	value string
}

var keySegmentRE = regexp.MustCompile(`^([A-Za-z]+)\(([A-Za-z]+)=(.*)\)$`)

// parseEntity parses the entity part of a Graph path: "applications/{id}",
// "applications(uniqueName='…')", "servicePrincipals(appId='…')" or a bare collection.
func parseEntity(segs []string) (set string, key *entityKey, rest []string, ok bool) {
	if m := keySegmentRE.FindStringSubmatch(segs[0]); m != nil {
		set = canonicalSet(m[1])
		v := m[3]
		if len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
			return "", nil, nil, false
		}
		v = strings.ReplaceAll(v[1:len(v)-1], "''", "'")
		var prop string
		switch {
		case strings.EqualFold(m[2], "uniqueName") && set == "applications":
			prop = "uniqueName"
		case strings.EqualFold(m[2], "appId"):
			prop = "appId"
		default:
			return "", nil, nil, false
		}
		return set, &entityKey{prop: prop, value: v}, segs[1:], set != ""
	}
	set = canonicalSet(segs[0])
	if set == "" {
		return "", nil, nil, false
	}
	if len(segs) == 1 {
		return set, nil, nil, true
	}
	return set, &entityKey{prop: "id", value: segs[1]}, segs[2:], true
}

func canonicalSet(s string) string {
	switch {
	case strings.EqualFold(s, "applications"):
		return "applications"
	case strings.EqualFold(s, "servicePrincipals"):
		return "servicePrincipals"
	}
	return ""
}

// graphRoute maps a Graph request to its operation.
func (t *Tenant) graphRoute(req *request) (route, bool) {
	segs := req.segs
	if !req.batched {
		if len(segs) == 0 || segs[0] != "v1.0" {
			return route{}, false
		}
		segs = segs[1:]
		req.path = strings.TrimPrefix(req.path, "/v1.0")
	}
	if n := len(segs); n > 0 && segs[n-1] == "" {
		segs = segs[:n-1]
	}
	if len(segs) == 0 {
		return route{}, false
	}
	m := req.method
	if len(segs) == 1 && segs[0] == "$batch" {
		if m == http.MethodPost && !req.batched {
			return route{op: OpBatch, handle: t.graphBatch, unlocked: true}, true
		}
		return route{}, false
	}
	if len(segs) == 2 && strings.EqualFold(segs[0], "policies") && strings.EqualFold(segs[1], "defaultAppManagementPolicy") {
		if m == http.MethodGet {
			return route{op: OpGetAppManagementPolicy, handle: t.getAppManagementPolicy}, true
		}
		return route{}, false
	}
	set, key, rest, ok := parseEntity(segs)
	if !ok {
		return route{}, false
	}
	is := func(method string, path ...string) bool {
		if m != method || len(rest) != len(path) {
			return false
		}
		for i, p := range path {
			if !strings.EqualFold(rest[i], p) {
				return false
			}
		}
		return true
	}
	with := func(h func(*request, entityKey) answer) func(*request) answer {
		return func(r *request) answer { return h(r, *key) }
	}
	switch set {
	case "applications":
		switch {
		case key == nil:
		case is(http.MethodGet):
			return route{op: OpGetApplication, handle: with(t.getApplication)}, true
		case is(http.MethodPatch) && key.prop == "uniqueName":
			return route{op: OpUpsertApplication, write: true, handle: with(t.upsertApplication)}, true
		case is(http.MethodPatch):
			return route{op: OpUpdateApplication, write: true, handle: with(t.updateApplication)}, true
		case is(http.MethodPost, "addPassword"):
			return route{op: OpAddPassword, write: true, handle: with(t.addPassword)}, true
		case is(http.MethodPost, "removePassword"):
			return route{op: OpRemovePassword, write: true, handle: with(t.removePassword)}, true
		}
	case "servicePrincipals":
		switch {
		case key == nil:
			if is(http.MethodPost) {
				return route{op: OpCreateServicePrincipal, write: true, handle: t.createServicePrincipal}, true
			}
		case is(http.MethodGet):
			return route{op: OpGetServicePrincipal, handle: with(t.getServicePrincipal)}, true
		case is(http.MethodPatch) && key.prop == "appId":
			return route{op: OpUpsertServicePrincipal, write: true, handle: with(t.upsertServicePrincipal)}, true
		case is(http.MethodGet, "appRoleAssignments"):
			return route{op: OpListAppRoleAssignments, handle: with(t.listAppRoleAssignments)}, true
		case is(http.MethodGet, "appRoleAssignedTo"):
			return route{op: OpListAppRoleAssignedTo, handle: with(t.listAppRoleAssignedTo)}, true
		case is(http.MethodPost, "appRoleAssignedTo"):
			return route{op: OpAssignAppRole, write: true, handle: with(t.assignAppRole)}, true
		case m == http.MethodDelete && len(rest) == 2 && rest[1] != "" &&
			(strings.EqualFold(rest[0], "appRoleAssignedTo") || strings.EqualFold(rest[0], "appRoleAssignments")):
			assignmentID, byResource := rest[1], strings.EqualFold(rest[0], "appRoleAssignedTo")
			return route{op: OpRemoveAppRoleAssignment, write: true, handle: func(r *request) answer {
				return t.removeAppRoleAssignment(r, *key, assignmentID, byResource)
			}}, true
		}
	}
	return route{}, false
}

// The handlers below run under t.mu.

// unsupported records (under t.mu) and answers something real Graph may serve but the emulator does not.
func (t *Tenant) unsupported(req *request, what string) answer {
	desc := fmt.Sprintf("%s: %s", req.target(), what)
	t.unknown = append(t.unknown, desc)
	t.logf("EMULATOR: UNSUPPORTED (answered 400): %s", desc)
	return badRequest(req, codeODataBadRequest, "The emulated tenant does not support "+what+".")
}

// checkQuery rejects OData query options other than allowed.
func (t *Tenant) checkQuery(req *request, allowed ...string) *answer {
	for k := range req.query {
		if !strings.HasPrefix(k, "$") {
			continue
		}
		if !slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, k) }) {
			ans := t.unsupported(req, fmt.Sprintf("query option %s", k))
			return &ans
		}
	}
	return nil
}

// selectProps applies $select to an entity; bad is a property that does not exist.
func selectProps(obj map[string]any, sel string) (out map[string]any, bad string) {
	if strings.TrimSpace(sel) == "" {
		return obj, ""
	}
	out = map[string]any{}
	for _, p := range strings.Split(sel, ",") {
		p = strings.TrimSpace(p)
		found := false
		for k, v := range obj {
			if strings.EqualFold(k, p) {
				out[k], found = v, true
			}
		}
		if !found {
			return nil, p
		}
	}
	return out, ""
}

// graphEntity answers one entity, applying $select.
func (t *Tenant) graphEntity(req *request, status int, obj map[string]any, context, typeName string) answer {
	obj, bad := selectProps(obj, req.query.Get("$select"))
	if bad != "" {
		return t.unsupported(req, fmt.Sprintf("$select of property '%s' on type '%s'", bad, typeName))
	}
	obj["@odata.context"] = GraphRoot + "/$metadata#" + context
	return graphJSON(req, status, obj)
}

// graphPage answers one page of a collection, with an absolute @odata.nextLink when more follow.
func (t *Tenant) graphPage(req *request, items []map[string]any, context, typeName string) answer {
	size := t.pageSize
	if s := req.query.Get("$top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 999 {
			return badRequest(req, codeODataBadRequest, fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and 999 inclusive.", s))
		}
		size = min(size, n)
	}
	offset := 0
	if tok := req.query.Get("$skiptoken"); tok != "" {
		n, err := decodeSkipToken(tok)
		if err != nil {
			return badRequest(req, codeBadRequest, "Invalid $skiptoken value.")
		}
		offset = min(n, len(items))
	}
	end := min(offset+size, len(items))
	page := make([]map[string]any, 0, end-offset)
	for _, it := range items[offset:end] {
		sel, bad := selectProps(it, req.query.Get("$select"))
		if bad != "" {
			return t.unsupported(req, fmt.Sprintf("$select of property '%s' on type '%s'", bad, typeName))
		}
		page = append(page, sel)
	}
	body := map[string]any{"@odata.context": GraphRoot + "/$metadata#" + context, "value": page}
	if end < len(items) {
		q := url.Values{}
		for k, v := range req.query {
			if k != "$skiptoken" {
				q[k] = v
			}
		}
		q.Set("$skiptoken", encodeSkipToken(end))
		body["@odata.nextLink"] = GraphRoot + req.path + "?" + q.Encode()
	}
	return graphJSON(req, http.StatusOK, body)
}

func encodeSkipToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("emulated-offset:" + strconv.Itoa(offset)))
}

func decodeSkipToken(tok string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, err
	}
	s, ok := strings.CutPrefix(string(b), "emulated-offset:")
	if !ok {
		return 0, errors.New("not an emulator skip token")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errors.New("bad offset")
	}
	return n, nil
}

func owns(owners []string, oid string) bool {
	return slices.ContainsFunc(owners, func(o string) bool { return strings.EqualFold(o, oid) })
}

// findApp looks an application up by key; invisible ones only when all is set.
func (t *Tenant) findApp(key entityKey, all bool) *Application {
	for i := range t.state.Applications {
		a := &t.state.Applications[i]
		var match bool
		switch key.prop {
		case "id":
			match = strings.EqualFold(a.ID, key.value)
		case "appId":
			match = strings.EqualFold(a.AppID, key.value)
		case "uniqueName":
			match = strings.EqualFold(a.UniqueName, key.value)
		}
		if match && (all || visible(a.VisibleAt)) {
			return a
		}
	}
	return nil
}

// findSP looks a service principal up by key; invisible ones only when all is set.
func (t *Tenant) findSP(key entityKey, all bool) *ServicePrincipal {
	for i := range t.state.ServicePrincipals {
		sp := &t.state.ServicePrincipals[i]
		var match bool
		switch key.prop {
		case "id":
			match = strings.EqualFold(sp.ID, key.value)
		case "appId":
			match = strings.EqualFold(sp.AppID, key.value)
		}
		if match && (all || visible(sp.VisibleAt)) {
			return sp
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

// ---- applications ----

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

func preferCreateIfMissing(h http.Header) bool {
	for _, v := range h.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "create-if-missing") {
				return true
			}
		}
	}
	return false
}

func (t *Tenant) upsertApplication(req *request, key entityKey) answer {
	c := req.claims
	if !c.hasRole(graphWriteRoles...) && !c.hasRole(RoleApplicationReadWriteOwnedBy) {
		return denied(req)
	}
	if ans := t.checkQuery(req); ans != nil {
		return *ans
	}
	p, bad := t.parseAppPatch(req)
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
	if !c.hasRole(graphWriteRoles...) && !c.hasRole(RoleApplicationReadWriteOwnedBy) {
		return denied(req)
	}
	if ans := t.checkQuery(req); ans != nil {
		return *ans
	}
	p, bad := t.parseAppPatch(req)
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

// invalidProperty answers a property whose value Graph would refuse.
func invalidProperty(req *request, prop, typeName string) *answer {
	ans := badRequest(req, codeBadRequest, fmt.Sprintf("Invalid value specified for property '%s' of resource '%s'.", prop, typeName))
	return &ans
}

// malformedBody answers a body that is not the JSON Graph expects.
func malformedBody(req *request, err error) *answer {
	ans := badRequest(req, codeODataBadRequest, "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format. ("+err.Error()+")")
	return &ans
}

// parseJSONBody checks the Content-Type and parses a JSON object body.
func parseJSONBody(req *request) (map[string]json.RawMessage, *answer) {
	if ct := req.header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/json") {
		ans := badRequest(req, codeODataBadRequest, fmt.Sprintf("The request has a body with Content-Type '%s'; Graph expects application/json.", ct))
		return nil, &ans
	}
	obj, err := parseObject(req.body)
	if err != nil {
		return nil, malformedBody(req, err)
	}
	return obj, nil
}

// unknownProperty records and answers a property the emulator does not model.
func (t *Tenant) unknownProperty(req *request, prop, typeName string) *answer {
	desc := fmt.Sprintf("%s: property '%s' of type '%s' is not supported by the emulator", req.target(), prop, typeName)
	t.unknown = append(t.unknown, desc)
	t.logf("EMULATOR: UNSUPPORTED (answered 400): %s", desc)
	ans := badRequest(req, codeODataBadRequest, fmt.Sprintf("Property '%s' does not exist on type '%s'.", prop, typeName))
	return &ans
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

// ---- password credentials ----

// concurrencyViolation answers a credential change too soon after the previous one, when switched on.
func (t *Tenant) concurrencyViolation(req *request, app *Application) *answer {
	if t.concurrencyWindow <= 0 {
		return nil
	}
	if last, ok := t.lastCredChange[app.ID]; ok && time.Since(last) < t.concurrencyWindow {
		ans := graphError(req, http.StatusConflict, codeConcurrency, msgConcurrency)
		return &ans
	}
	return nil
}

// credentialApp resolves and authorizes the application of a credential change.
func (t *Tenant) credentialApp(req *request, key entityKey) (*Application, *answer) {
	c := req.claims
	if !c.hasRole(graphWriteRoles...) && !c.hasRole(RoleApplicationReadWriteOwnedBy) {
		ans := denied(req)
		return nil, &ans
	}
	if ans := t.checkQuery(req); ans != nil {
		return nil, ans
	}
	app := t.findApp(key, false)
	if app == nil {
		ans := notFound(req, key.value)
		return nil, &ans
	}
	if !c.hasRole(graphWriteRoles...) && !owns(app.Owners, c.Oid) {
		ans := denied(req)
		return nil, &ans
	}
	return app, nil
}

func parseTimeProp(raw json.RawMessage) (time.Time, bool, error) {
	var s *string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, false, err
	}
	if s == nil {
		return time.Time{}, false, nil
	}
	tm, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		return time.Time{}, false, err
	}
	return utcSeconds(tm), true, nil
}

func (t *Tenant) addPassword(req *request, key entityKey) answer {
	app, bad := t.credentialApp(req, key)
	if bad != nil {
		return *bad
	}
	var displayName string
	start, end := t.now(), time.Time{}
	if len(strings.TrimSpace(string(req.body))) > 0 {
		obj, bad := parseJSONBody(req)
		if bad != nil {
			return *bad
		}
		for k, raw := range obj {
			switch {
			case isAnnotation(k):
			case k == "passwordCredential":
				if isNull(raw) {
					continue
				}
				var cred map[string]json.RawMessage
				if err := json.Unmarshal(raw, &cred); err != nil {
					return *invalidProperty(req, k, "addPassword")
				}
				for ck, cv := range cred {
					switch ck {
					case "displayName":
						var s *string
						if json.Unmarshal(cv, &s) != nil {
							return *invalidProperty(req, ck, "PasswordCredential")
						}
						if s != nil {
							displayName = *s
						}
					case "startDateTime", "endDateTime":
						tm, ok, err := parseTimeProp(cv)
						if err != nil {
							return *invalidProperty(req, ck, "PasswordCredential")
						}
						if ok && ck == "startDateTime" {
							start = tm
						} else if ok {
							end = tm
						}
					case "keyId", "hint", "secretText", "customKeyIdentifier":
						// generated by the service; Graph ignores them here
					default:
						if !isAnnotation(ck) {
							return *t.unknownProperty(req, ck, "microsoft.graph.passwordCredential")
						}
					}
				}
			default:
				return *t.unknownProperty(req, k, "microsoft.graph.addPassword")
			}
		}
	}
	if end.IsZero() {
		end = start.AddDate(defaultPasswordYears, 0, 0)
	}
	if !end.After(start) {
		return badRequest(req, codeBadRequest, "Invalid value specified for property 'endDateTime' of resource 'PasswordCredential': it must be after startDateTime.")
	}
	if ans := t.passwordsForbidden(req); ans != nil {
		return *ans
	}
	if max := t.maxPasswordLifetime; max > 0 && end.Sub(start) > max+lifetimePolicySlack {
		return badRequest(req, codeLifetimePolicy, fmt.Sprintf(
			"Credential lifetime exceeds the max value allowed as per assigned policy '%s'.", defaultPolicyID))
	}
	if ans := t.concurrencyViolation(req, app); ans != nil {
		return *ans
	}
	secret := newSecretText()
	cred := PasswordCredential{
		KeyID: NewGUID(), DisplayName: displayName, Hint: secret[:3], SecretText: secret,
		StartDateTime: start, EndDateTime: end, VisibleAt: t.visibleAt(), AddedAt: time.Now(),
	}
	app.PasswordCredentials = append(app.PasswordCredentials, cred)
	t.noteCreated(req, cred.KeyID)
	t.issue(secret)
	t.lastCredChange[app.ID] = time.Now()
	req.applied = true
	return t.graphEntity(req, http.StatusOK, passwordJSON(cred, true), "microsoft.graph.passwordCredential", "microsoft.graph.passwordCredential")
}

func (t *Tenant) removePassword(req *request, key entityKey) answer {
	app, bad := t.credentialApp(req, key)
	if bad != nil {
		return *bad
	}
	obj, bad := parseJSONBody(req)
	if bad != nil {
		return *bad
	}
	var keyID string
	for k, raw := range obj {
		switch {
		case isAnnotation(k):
		case k == "keyId":
			if json.Unmarshal(raw, &keyID) != nil || !isGUID(keyID) {
				return *invalidProperty(req, k, "removePassword")
			}
		default:
			return *t.unknownProperty(req, k, "microsoft.graph.removePassword")
		}
	}
	if keyID == "" {
		return *invalidProperty(req, "keyId", "removePassword")
	}
	if ans := t.concurrencyViolation(req, app); ans != nil {
		return *ans
	}
	i := slices.IndexFunc(app.PasswordCredentials, func(p PasswordCredential) bool {
		return strings.EqualFold(p.KeyID, keyID) && visible(p.VisibleAt)
	})
	if i < 0 {
		return t.unknownKeyID(req, app, keyID)
	}
	removed := app.PasswordCredentials[i]
	app.PasswordCredentials = slices.Delete(app.PasswordCredentials, i, i+1)
	t.noteRemovedCredential(app, removed)
	t.lastCredChange[app.ID] = time.Now()
	req.applied = true
	return graphNoContent(req)
}

// ---- service principals ----

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
		AppOwnerOrganizationID: t.tenantID, AccountEnabled: true, Owners: []string{req.claims.Oid},
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
	if principal == nil {
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

// ---- policy ----

func (t *Tenant) getAppManagementPolicy(req *request) answer {
	if ans := t.checkQuery(req, "$select"); ans != nil {
		return *ans
	}
	if !req.claims.hasRole(RolePolicyReadAll, "Policy.ReadWrite.ApplicationConfiguration", RoleApplicationReadWriteAll, RoleDirectoryReadWriteAll) {
		return denied(req)
	}
	passwords := []any{}
	forbidden := t.graphRealism.cfg.PasswordsForbidden
	if forbidden {
		passwords = append(passwords, map[string]any{
			"restrictionType":                     "passwordAddition",
			"state":                               "enabled",
			"maxLifetime":                         nil,
			"restrictForAppsCreatedAfterDateTime": "2019-01-01T00:00:00Z",
		})
	}
	if t.maxPasswordLifetime > 0 {
		passwords = append(passwords, map[string]any{
			"restrictionType":                     "passwordLifetime",
			"state":                               "enabled",
			"maxLifetime":                         isoDuration(t.maxPasswordLifetime),
			"restrictForAppsCreatedAfterDateTime": "2019-01-01T00:00:00Z",
		})
	}
	obj := map[string]any{
		"id":          defaultPolicyID,
		"displayName": "Default app management tenant policy",
		"description": "Default tenant policy that enforces app management restrictions on applications and service principals.",
		"isEnabled":   t.maxPasswordLifetime > 0 || forbidden,
		"applicationRestrictions": map[string]any{
			"passwordCredentials": passwords,
			"keyCredentials":      []any{},
		},
		"servicePrincipalRestrictions": map[string]any{
			"passwordCredentials": []any{},
			"keyCredentials":      []any{},
		},
	}
	return t.graphEntity(req, http.StatusOK, obj, "policies/defaultAppManagementPolicy/$entity", "microsoft.graph.tenantAppManagementPolicy")
}

// isoDuration formats d as an ISO 8601 duration (P90D, PT36H, P1DT2H3M4S).
func isoDuration(d time.Duration) string {
	d = d.Round(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h := d / time.Hour
	d -= h * time.Hour
	m := d / time.Minute
	d -= m * time.Minute
	s := d / time.Second
	out := "P"
	if days > 0 {
		out += strconv.Itoa(int(days)) + "D"
	}
	if h > 0 || m > 0 || s > 0 {
		out += "T"
		if h > 0 {
			out += strconv.Itoa(int(h)) + "H"
		}
		if m > 0 {
			out += strconv.Itoa(int(m)) + "M"
		}
		if s > 0 {
			out += strconv.Itoa(int(s)) + "S"
		}
	}
	if out == "P" {
		out = "PT0S"
	}
	return out
}

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
