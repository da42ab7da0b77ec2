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
	c, err := t.verifyDirectoryToken(bearerToken(req.header.Get("Authorization")), AudienceGraph, time.Now())
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
