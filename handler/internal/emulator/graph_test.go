package emulator

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const directoryReadAll = "7ab1d382-f21e-4acd-a863-ba3e13f7da61"

func TestGraphUpsertApplication(t *testing.T) {
	h := start(t, Options{})
	tok := h.graphToken()

	r := h.upsertApp(tok, "scepman")
	if r.status != http.StatusCreated {
		t.Fatalf("create: status %d, want 201: %s", r.status, r.body)
	}
	app := r.json(t)
	if str(app, "uniqueName") != "scepman" || str(app, "displayName") != "SCEPman" || str(app, "signInAudience") != "AzureADMyOrg" ||
		str(app, "id") == "" || str(app, "appId") == "" {
		t.Errorf("created application %v", app)
	}
	if rra, _ := app["requiredResourceAccess"].([]any); len(rra) != 2 {
		t.Errorf("requiredResourceAccess %v, want the two of the fixture", app["requiredResourceAccess"])
	}
	if _, err := time.Parse(time.RFC3339, str(app, "createdDateTime")); err != nil || !strings.HasSuffix(str(app, "createdDateTime"), "Z") {
		t.Errorf("createdDateTime %q is not RFC 3339 UTC", app["createdDateTime"])
	}

	r = h.graph(http.MethodPatch, "/applications(uniqueName='scepman')", tok, []byte(`{"displayName":"SCEPman 2"}`), createIfMissing)
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("update: status %d body %q, want 204 without body", r.status, r.body)
	}
	snap := h.tenant.Snapshot()
	got := snap.Application("scepman")
	if got == nil || got.DisplayName != "SCEPman 2" || len(snap.Applications) != 1 || !slices.Equal(got.Owners, []string{h.tenant.IdentityObjectID()}) {
		t.Fatalf("snapshot %+v: want one application, renamed, owned by the identity", snap.Applications)
	}

	for _, path := range []string{"/applications(uniqueName='scepman')", "/applications(uniqueName=%27scepman%27)", "/applications/" + got.ID, "/applications(appId='" + got.AppID + "')"} {
		if r := h.graph(http.MethodGet, path, tok, nil, nil); r.status != 200 || str(r.json(t), "id") != got.ID {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
	}
	r = h.graph(http.MethodGet, "/applications(uniqueName='scepman')?$select=id,appId,passwordCredentials", tok, nil, nil)
	if body := r.json(t); r.status != 200 || len(body) != 4 || body["displayName"] != nil {
		t.Errorf("$select: %d %v, want id, appId, passwordCredentials and @odata.context", r.status, body)
	}
}

func TestGraphUpsertApplicationErrors(t *testing.T) {
	h := start(t, Options{})
	h.unknownOK.Store(true) // the unsupported property is recorded
	tok := h.graphToken()
	h.tenant.SoftDeleteApplication("deleted-name")
	if r := h.upsertApp(tok, "existing"); r.status != 201 {
		t.Fatalf("seeding: %d %s", r.status, r.body)
	}
	tests := []struct {
		name       string
		path       string
		body       string
		headers    map[string]string
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"missing without Prefer", "/applications(uniqueName='other')", `{"displayName":"x"}`, nil, 404, "Request_ResourceNotFound", ""},
		{"no displayName on create", "/applications(uniqueName='other')", `{"signInAudience":"AzureADMyOrg"}`, createIfMissing, 400, "Request_BadRequest", "displayName"},
		{"name of a deleted app", "/applications(uniqueName='deleted-name')", `{"displayName":"x"}`, createIfMissing, 400, "Request_MultipleObjectsWithSameKeyValue", "Another object with the same value for property uniqueName already exists."},
		{"uniqueName change", "/applications(uniqueName='existing')", `{"uniqueName":"renamed"}`, createIfMissing, 400, "Request_BadRequest", "uniqueName"},
		{"bad audience", "/applications(uniqueName='existing')", `{"signInAudience":"Everyone"}`, createIfMissing, 400, "Request_BadRequest", "signInAudience"},
		{"bad access type", "/applications(uniqueName='existing')", `{"requiredResourceAccess":[{"resourceAppId":"` + GraphAppID + `","resourceAccess":[{"id":"` + directoryReadAll + `","type":"Application"}]}]}`, createIfMissing, 400, "Request_BadRequest", ""},
		{"not json", "/applications(uniqueName='existing')", `{"displayName":`, createIfMissing, 400, "BadRequest", ""},
		{"unsupported property", "/applications(uniqueName='existing')", `{"web":{"redirectUris":[]}}`, createIfMissing, 400, "BadRequest", "web"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.graph(http.MethodPatch, tc.path, tok, []byte(tc.body), tc.headers)
			if r.status != tc.wantStatus || r.errorCode(t) != tc.wantCode || !strings.Contains(r.errorMessage(t), tc.wantMsg) {
				t.Errorf("status %d code %q message %q, want %d %q containing %q", r.status, r.errorCode(t), r.errorMessage(t), tc.wantStatus, tc.wantCode, tc.wantMsg)
			}
			assertODataError(t, r)
		})
	}
	if got := h.tenant.Unknown(); len(got) != 1 || !strings.Contains(got[0], "'web'") {
		t.Errorf("Unknown() = %q, want the unsupported property only", got)
	}
	if n := len(h.tenant.Snapshot().Applications); n != 1 {
		t.Errorf("%d applications, want 1", n)
	}
}

// assertODataError checks Graph's error envelope and content type.
func assertODataError(t *testing.T, r reply) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	e, _ := r.json(t)["error"].(map[string]any)
	inner, _ := e["innerError"].(map[string]any)
	if str(e, "code") == "" || str(e, "message") == "" || str(inner, "request-id") == "" || str(inner, "client-request-id") == "" {
		t.Errorf("error %s lacks code, message or innerError ids", r.body)
	}
	if _, err := time.Parse(time.RFC3339, str(inner, "date")); err != nil {
		t.Errorf("innerError.date %q: %v", inner["date"], err)
	}
}

func TestGraphGzipBodies(t *testing.T) {
	h := start(t, Options{})
	tok := h.graphToken()
	body := fixture(t, "app_create.json")
	gz := map[string]string{"Prefer": "create-if-missing", "Content-Encoding": "gzip"}

	r := h.graph(http.MethodPatch, "/applications(uniqueName='zipped')", tok, gzipped(t, body), gz)
	if r.status != http.StatusCreated {
		t.Fatalf("gzip body: status %d, want 201: %s", r.status, r.body)
	}
	// kiota bug #183: a retry that says gzip over a plain body.
	r = h.graph(http.MethodPatch, "/applications(uniqueName='plain-but-says-gzip')", tok, body, gz)
	if r.status != http.StatusBadRequest {
		t.Fatalf("plain body labelled gzip: status %d, want 400: %s", r.status, r.body)
	}
	assertODataError(t, r)
	r = h.graph(http.MethodPatch, "/applications(uniqueName='truncated')", tok, gzipped(t, body)[:20], gz)
	if r.status != http.StatusBadRequest {
		t.Errorf("truncated gzip body: status %d, want 400: %s", r.status, r.body)
	}
	if apps := h.tenant.Snapshot().Applications; len(apps) != 1 {
		t.Errorf("%d applications, want only the gzip one", len(apps))
	}
	if st := h.tenant.Stats().Op(OpUpsertApplication); st.Requests != 3 || st.Applied != 1 || st.Statuses[400] != 2 {
		t.Errorf("upsert stats %+v, want 3 requests, 1 applied, two 400", st)
	}
}

func TestGraphTokenValidation(t *testing.T) {
	h := start(t, Options{})
	graphTok := h.graphToken()
	expired := signToken(claims{Aud: AudienceGraph, Iss: issuer(h.tenant.TenantID()), Tid: h.tenant.TenantID(),
		Oid: h.tenant.IdentityObjectID(), Roles: DefaultGraphRoles(), Iat: 1, Nbf: 1, Exp: time.Now().Add(-time.Minute).Unix()})
	otherTenant := signToken(claims{Aud: AudienceGraph, Iss: issuer(NewGUID()), Tid: NewGUID(),
		Oid: h.tenant.IdentityObjectID(), Roles: DefaultGraphRoles(), Nbf: 1, Exp: time.Now().Add(time.Hour).Unix()})
	tests := []struct {
		name  string
		token string
	}{
		{"none", ""},
		{"vault audience", h.token(AudienceVault)},
		{"expired", expired},
		{"other tenant", otherTenant},
		{"bad signature", graphTok[:len(graphTok)-3] + "abc"},
		{"garbage", "not-a-jwt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.graph(http.MethodGet, "/servicePrincipals(appId='"+GraphAppID+"')", tc.token, nil, nil)
			if r.status != http.StatusUnauthorized || r.errorCode(t) != "InvalidAuthenticationToken" {
				t.Errorf("status %d code %q, want 401 InvalidAuthenticationToken", r.status, r.errorCode(t))
			}
			assertODataError(t, r)
		})
	}
	if got := h.tenant.Stats().Service(ServiceGraph).Challenges; got != len(tests) {
		t.Errorf("graph challenges %d, want %d", got, len(tests))
	}
}

func TestGraphPermissions(t *testing.T) {
	h := start(t, Options{})
	me := h.tenant.IdentityObjectID()
	var graphSP, ownedSP string
	h.tenant.Mutate(func(s *State) {
		s.Applications = append(s.Applications,
			Application{ID: NewGUID(), AppID: NewGUID(), DisplayName: "owned", UniqueName: "owned", SignInAudience: "AzureADMyOrg", Owners: []string{me}},
			Application{ID: NewGUID(), AppID: NewGUID(), DisplayName: "other", UniqueName: "other", SignInAudience: "AzureADMyOrg", Owners: []string{NewGUID()}},
		)
		ownedSP = NewGUID()
		s.ServicePrincipals = append(s.ServicePrincipals, ServicePrincipal{ID: ownedSP, AppID: s.Application("owned").AppID, DisplayName: "owned", Owners: []string{me}})
		graphSP = s.ServicePrincipalByAppID(GraphAppID).ID
	})
	ok, created, forbidden := 200, 201, 403
	tests := []struct {
		name  string
		roles []string
		// expected statuses: get owned app, get other app, create app, add password, get Graph SP,
		// assign a role, list assignments, read the policy
		want [8]int
	}{
		{"default three", DefaultGraphRoles(), [8]int{ok, ok, created, ok, ok, created, ok, forbidden}},
		{"none", []string{}, [8]int{forbidden, forbidden, forbidden, forbidden, forbidden, forbidden, forbidden, forbidden}},
		{"Application.Read.All", []string{RoleApplicationReadAll}, [8]int{ok, ok, forbidden, forbidden, ok, forbidden, ok, forbidden}},
		{"Application.ReadWrite.OwnedBy", []string{RoleApplicationReadWriteOwnedBy}, [8]int{ok, forbidden, created, ok, forbidden, forbidden, ok, forbidden}},
		{"AppRoleAssignment.ReadWrite.All", []string{RoleAppRoleAssignmentReadWriteAll}, [8]int{forbidden, forbidden, forbidden, forbidden, forbidden, created, ok, forbidden}},
		{"Policy.Read.All", []string{RolePolicyReadAll}, [8]int{forbidden, forbidden, forbidden, forbidden, forbidden, forbidden, forbidden, ok}},
		{"Application.ReadWrite.All", []string{RoleApplicationReadWriteAll}, [8]int{ok, ok, created, ok, ok, created, ok, ok}},
		{"Directory.ReadWrite.All", []string{RoleDirectoryReadWriteAll}, [8]int{ok, ok, created, ok, ok, created, ok, ok}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.tenant.SetGraphRoles(tc.roles...)
			tok := h.graphToken()
			var principal string
			h.tenant.Mutate(func(s *State) {
				principal = NewGUID()
				s.ServicePrincipals = append(s.ServicePrincipals, ServicePrincipal{ID: principal, AppID: NewGUID(), DisplayName: tc.name})
			})
			owned := h.tenant.Snapshot().Application("owned")
			got := [8]int{
				h.graph(http.MethodGet, "/applications(uniqueName='owned')", tok, nil, nil).status,
				h.graph(http.MethodGet, "/applications(uniqueName='other')", tok, nil, nil).status,
				h.upsertApp(tok, "new-"+strings.ToLower(strings.ReplaceAll(tc.name, " ", "-"))).status,
				h.graph(http.MethodPost, "/applications/"+owned.ID+"/addPassword", tok, []byte(`{"passwordCredential":{"displayName":"t"}}`), nil).status,
				h.graph(http.MethodGet, "/servicePrincipals(appId='"+GraphAppID+"')?$select=id,appRoles", tok, nil, nil).status,
				h.graph(http.MethodPost, "/servicePrincipals/"+graphSP+"/appRoleAssignedTo", tok,
					mustJSON(t, map[string]string{"principalId": principal, "resourceId": graphSP, "appRoleId": directoryReadAll}), nil).status,
				h.graph(http.MethodGet, "/servicePrincipals/"+ownedSP+"/appRoleAssignments", tok, nil, nil).status,
				h.graph(http.MethodGet, "/policies/defaultAppManagementPolicy", tok, nil, nil).status,
			}
			if got != tc.want {
				t.Errorf("statuses %v, want %v", got, tc.want)
			}
		})
	}
}

func TestGraphPasswords(t *testing.T) {
	now := time.Date(2026, 5, 27, 3, 30, 0, 0, time.UTC)
	h := start(t, Options{Now: func() time.Time { return now }})
	tok := h.graphToken()
	app := h.upsertApp(tok, "scepman").json(t)
	path := "/applications/" + str(app, "id")

	r := h.graph(http.MethodPost, path+"/addPassword", tok, []byte(`{"passwordCredential":{"@odata.type":"#microsoft.graph.passwordCredential","displayName":"appreg"}}`), nil)
	if r.status != http.StatusOK {
		t.Fatalf("addPassword: %d %s", r.status, r.body)
	}
	cred := r.json(t)
	secret := str(cred, "secretText")
	if len(secret) != 40 || str(cred, "hint") != secret[:3] || str(cred, "keyId") == "" || str(cred, "displayName") != "appreg" {
		t.Errorf("credential %v: want a 40-character secretText, its hint, a keyId and the display name", cred)
	}
	if str(cred, "startDateTime") != "2026-05-27T03:30:00Z" || str(cred, "endDateTime") != "2028-05-27T03:30:00Z" {
		t.Errorf("start %v end %v, want now and two years later", cred["startDateTime"], cred["endDateTime"])
	}
	if !slices.Contains(h.tenant.IssuedSecrets(), secret) {
		t.Error("secretText is not in IssuedSecrets")
	}
	got := h.graph(http.MethodGet, path, tok, nil, nil).json(t)
	creds, _ := got["passwordCredentials"].([]any)
	if len(creds) != 1 || creds[0].(map[string]any)["secretText"] != nil {
		t.Errorf("passwordCredentials %v: want one, without secretText", creds)
	}

	// The policy caps lifetimes.
	h.tenant.SetMaxPasswordLifetime(90 * 24 * time.Hour)
	end := func(d time.Duration) []byte {
		return mustJSON(t, map[string]any{"passwordCredential": map[string]any{"endDateTime": now.Add(d).Format(time.RFC3339)}})
	}
	if r := h.graph(http.MethodPost, path+"/addPassword", tok, end(91*24*time.Hour), nil); r.status != 400 || r.errorCode(t) != "CredentialInvalidLifetimeAsPerAppPolicy" {
		t.Errorf("91 days under a 90-day policy: %d %q, want 400 CredentialInvalidLifetimeAsPerAppPolicy", r.status, r.errorCode(t))
	}
	r = h.graph(http.MethodPost, path+"/addPassword", tok, end(90*24*time.Hour), nil)
	if r.status != 200 {
		t.Fatalf("90 days under a 90-day policy: %d %s", r.status, r.body)
	}
	second := str(r.json(t), "keyId")

	if r := h.graph(http.MethodGet, "/policies/defaultAppManagementPolicy", tok, nil, nil); r.status != 403 || r.errorCode(t) != "Authorization_RequestDenied" ||
		r.errorMessage(t) != "Insufficient privileges to complete the operation." {
		t.Errorf("policy with the default roles: %d %s, want 403 Authorization_RequestDenied", r.status, r.body)
	}
	h.tenant.SetGraphRoles(append(DefaultGraphRoles(), RolePolicyReadAll)...)
	policy := h.graph(http.MethodGet, "/policies/defaultAppManagementPolicy", h.graphToken(), nil, nil).json(t)
	restr := policy["applicationRestrictions"].(map[string]any)["passwordCredentials"].([]any)
	if len(restr) != 1 || str(restr[0].(map[string]any), "maxLifetime") != "P90D" || str(restr[0].(map[string]any), "restrictionType") != "passwordLifetime" {
		t.Errorf("policy %v, want one passwordLifetime restriction of P90D", policy)
	}

	removeBody := func(keyID string) []byte { return mustJSON(t, map[string]string{"keyId": keyID}) }
	if r := h.graph(http.MethodPost, path+"/removePassword", tok, removeBody(second), nil); r.status != 204 {
		t.Errorf("removePassword: %d %s, want 204", r.status, r.body)
	}
	if r := h.graph(http.MethodPost, path+"/removePassword", tok, removeBody(second), nil); r.status != 404 || r.errorCode(t) != "Request_ResourceNotFound" {
		t.Errorf("removePassword of a removed key: %d %s, want 404", r.status, r.body)
	}
	if r := h.graph(http.MethodPost, path+"/removePassword", tok, []byte(`{"keyId":"nope"}`), nil); r.status != 400 {
		t.Errorf("removePassword with a malformed keyId: %d, want 400", r.status)
	}
	if n := len(h.tenant.Snapshot().Application("scepman").PasswordCredentials); n != 1 {
		t.Errorf("%d credentials left, want 1", n)
	}
}

func TestConcurrencyViolationSwitch(t *testing.T) {
	tests := []struct {
		name       string
		window     time.Duration
		wantSecond int
	}{
		{"off by default", 0, 200},
		{"on", time.Hour, 409},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{})
			h.tenant.SetConcurrencyViolationWindow(tc.window)
			tok := h.graphToken()
			path := "/applications/" + str(h.upsertApp(tok, "scepman").json(t), "id") + "/addPassword"
			if r := h.graph(http.MethodPost, path, tok, []byte(`{}`), nil); r.status != 200 {
				t.Fatalf("first addPassword: %d %s", r.status, r.body)
			}
			r := h.graph(http.MethodPost, path, tok, []byte(`{}`), nil)
			if r.status != tc.wantSecond {
				t.Fatalf("second addPassword: %d %s, want %d", r.status, r.body, tc.wantSecond)
			}
			if r.status == 409 && r.errorCode(t) != "Directory_ConcurrencyViolation" {
				t.Errorf("code %q, want Directory_ConcurrencyViolation", r.errorCode(t))
			}
		})
	}
}

func TestServicePrincipalsAndAssignments(t *testing.T) {
	h := start(t, Options{})
	tok := h.graphToken()
	appID := str(h.upsertApp(tok, "scepman").json(t), "appId")

	r := h.graph(http.MethodPost, "/servicePrincipals", tok, mustJSON(t, map[string]string{"appId": appID}), nil)
	if r.status != http.StatusCreated {
		t.Fatalf("create SP: %d %s", r.status, r.body)
	}
	sp := str(r.json(t), "id")
	r = h.graph(http.MethodPost, "/servicePrincipals", tok, mustJSON(t, map[string]string{"appId": appID}), nil)
	if r.status != http.StatusConflict || r.errorCode(t) != "Request_MultipleObjectsWithSameKeyValue" {
		t.Errorf("duplicate SP: %d %s, want 409 Request_MultipleObjectsWithSameKeyValue", r.status, r.body)
	}
	r = h.graph(http.MethodPost, "/servicePrincipals", tok, mustJSON(t, map[string]string{"appId": NewGUID()}), nil)
	if r.status != 400 || !strings.Contains(r.errorMessage(t), "does not reference a valid application object") {
		t.Errorf("SP of an unknown app: %d %s, want 400", r.status, r.body)
	}
	if r := h.graph(http.MethodPatch, "/servicePrincipals(appId='"+appID+"')", tok, []byte(`{}`), createIfMissing); r.status != 204 {
		t.Errorf("SP upsert of an existing SP: %d %s, want 204", r.status, r.body)
	}

	st := h.tenant.Snapshot()
	graphSP := st.ServicePrincipalByAppID(GraphAppID).ID
	intuneSP := st.ServicePrincipalByAppID(IntuneAPIAppID).ID
	assign := func(resource, role string) reply {
		return h.graph(http.MethodPost, "/servicePrincipals/"+resource+"/appRoleAssignedTo", tok,
			mustJSON(t, map[string]string{"principalId": sp, "resourceId": resource, "appRoleId": role}), nil)
	}
	for _, role := range []struct{ resource, id string }{
		{graphSP, directoryReadAll},
		{intuneSP, IntuneSCEPChallengeRoleID},
		{graphSP, "2f51be20-0bb4-4fed-bf7b-db946066c75e"},
	} {
		r := assign(role.resource, role.id)
		if r.status != http.StatusCreated {
			t.Fatalf("assign %s: %d %s", role.id, r.status, r.body)
		}
		if a := r.json(t); str(a, "principalId") != sp || str(a, "resourceId") != role.resource || str(a, "appRoleId") != role.id {
			t.Errorf("assignment %v", a)
		}
	}
	if r := assign(graphSP, directoryReadAll); r.status != 400 || r.errorMessage(t) != "Permission being assigned already exists on the object." {
		t.Errorf("duplicate assignment: %d %s", r.status, r.body)
	}
	if r := assign(graphSP, IntuneSCEPChallengeRoleID); r.status != 400 || !strings.HasPrefix(r.errorMessage(t), "Permission being assigned was not found on application") {
		t.Errorf("role of another resource: %d %s", r.status, r.body)
	}

	// Paging: three assignments, page size 2.
	next := GraphRoot + "/servicePrincipals/" + sp + "/appRoleAssignments"
	var roles []string
	pages := 0
	for next != "" {
		pages++
		r := h.call(http.MethodGet, next, tok, nil, nil)
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", next, r.status, r.body)
		}
		body := r.json(t)
		for _, v := range body["value"].([]any) {
			roles = append(roles, str(v.(map[string]any), "appRoleId"))
		}
		next = str(body, "@odata.nextLink")
		if next != "" && !strings.HasPrefix(next, GraphRoot+"/servicePrincipals/"+sp+"/appRoleAssignments?") {
			t.Fatalf("nextLink %q is not absolute", next)
		}
	}
	if pages != 2 || len(roles) != 3 {
		t.Errorf("%d pages with %v, want 2 pages with 3 assignments", pages, roles)
	}
	r = h.graph(http.MethodGet, "/servicePrincipals/"+intuneSP+"/appRoleAssignedTo", tok, nil, nil)
	if items := r.json(t)["value"].([]any); r.status != 200 || len(items) != 1 {
		t.Errorf("appRoleAssignedTo of Intune: %d %s, want one", r.status, r.body)
	}
}

func TestNoIntune(t *testing.T) {
	h := start(t, Options{NoIntune: true})
	r := h.graph(http.MethodGet, "/servicePrincipals(appId='"+IntuneAPIAppID+"')", h.graphToken(), nil, nil)
	if r.status != 404 || r.errorCode(t) != "Request_ResourceNotFound" {
		t.Errorf("Intune API SP without Intune: %d %s, want 404", r.status, r.body)
	}
}

func TestReplicationDelay(t *testing.T) {
	const delay = 150 * time.Millisecond
	h := start(t, Options{})
	tok := h.graphToken()
	h.tenant.SetReplicationDelay(delay)

	app := h.upsertApp(tok, "fresh").json(t)
	id, appID := str(app, "id"), str(app, "appId")
	if r := h.graph(http.MethodGet, "/applications(uniqueName='fresh')", tok, nil, nil); r.status != 404 {
		t.Errorf("GET of a fresh app: %d, want 404", r.status)
	}
	if r := h.graph(http.MethodPost, "/applications/"+id+"/addPassword", tok, []byte(`{}`), nil); r.status != 404 {
		t.Errorf("addPassword on a fresh app: %d, want 404", r.status)
	}
	r := h.graph(http.MethodPost, "/servicePrincipals", tok, mustJSON(t, map[string]string{"appId": appID}), nil)
	if want := "The appId '" + appID + "' of the service principal does not reference a valid application object."; r.status != 400 || r.errorMessage(t) != want {
		t.Errorf("SP of a fresh app: %d %q, want 400 %q", r.status, r.errorMessage(t), want)
	}
	if r := h.upsertApp(tok, "fresh"); r.status != 204 {
		t.Errorf("second upsert during the delay: %d, want 204", r.status)
	}
	if n := len(h.tenant.Snapshot().Applications); n != 1 {
		t.Fatalf("%d applications, want 1", n)
	}

	time.Sleep(delay)
	if r := h.graph(http.MethodGet, "/applications(uniqueName='fresh')", tok, nil, nil); r.status != 200 {
		t.Fatalf("GET after the delay: %d", r.status)
	}
	r = h.graph(http.MethodPost, "/servicePrincipals", tok, mustJSON(t, map[string]string{"appId": appID}), nil)
	if r.status != 201 {
		t.Fatalf("SP after the delay: %d %s", r.status, r.body)
	}
	sp := str(r.json(t), "id")
	graphSP := h.tenant.Snapshot().ServicePrincipalByAppID(GraphAppID).ID
	assign := mustJSON(t, map[string]string{"principalId": sp, "resourceId": graphSP, "appRoleId": directoryReadAll})
	r = h.graph(http.MethodPost, "/servicePrincipals/"+graphSP+"/appRoleAssignedTo", tok, assign, nil)
	if r.status != 404 || r.errorCode(t) != "Request_ResourceNotFound" ||
		!strings.HasSuffix(r.errorMessage(t), "does not exist or one of its queried reference-property objects are not present.") {
		t.Errorf("assignment to a fresh SP: %d %s, want 404 Request_ResourceNotFound", r.status, r.body)
	}
	if r := h.graph(http.MethodGet, "/servicePrincipals(appId='"+appID+"')", tok, nil, nil); r.status != 404 {
		t.Errorf("GET of a fresh SP: %d, want 404", r.status)
	}

	time.Sleep(delay)
	if r := h.graph(http.MethodPost, "/servicePrincipals/"+graphSP+"/appRoleAssignedTo", tok, assign, nil); r.status != 201 {
		t.Fatalf("assignment after the delay: %d %s", r.status, r.body)
	}
	list := func() int {
		r := h.graph(http.MethodGet, "/servicePrincipals/"+sp+"/appRoleAssignments", tok, nil, nil)
		return len(r.json(t)["value"].([]any))
	}
	if n := list(); n != 0 {
		t.Errorf("a fresh assignment is listed (%d)", n)
	}
	r = h.graph(http.MethodPost, "/applications/"+id+"/addPassword", tok, []byte(`{}`), nil)
	keyID := str(r.json(t), "keyId")
	if creds := h.graph(http.MethodGet, "/applications/"+id, tok, nil, nil).json(t)["passwordCredentials"].([]any); len(creds) != 0 {
		t.Errorf("a fresh credential is listed: %v", creds)
	}
	if r := h.graph(http.MethodPost, "/applications/"+id+"/removePassword", tok, mustJSON(t, map[string]string{"keyId": keyID}), nil); r.status != 404 {
		t.Errorf("removePassword of a fresh credential: %d, want 404", r.status)
	}

	time.Sleep(delay)
	if n := list(); n != 1 {
		t.Errorf("%d assignments after the delay, want 1", n)
	}
}

func TestUpsertIsConsistentUnderConcurrency(t *testing.T) {
	h := start(t, Options{})
	h.tenant.SetReplicationDelay(time.Hour) // nothing becomes readable: only the alternate key keeps it unique
	tok := h.graphToken()
	const n = 50
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			statuses[i] = doCall(t, h.client, http.MethodPatch, GraphRoot+"/applications(uniqueName='racy')", tok,
				fixture(t, "app_create.json"), createIfMissing).status
		})
	}
	wg.Wait()
	created, updated := 0, 0
	for _, s := range statuses {
		switch s {
		case 201:
			created++
		case 204:
			updated++
		}
	}
	if created != 1 || updated != n-1 {
		t.Errorf("%d created, %d updated, want 1 and %d: %v", created, updated, n-1, statuses)
	}
	if apps := h.tenant.Snapshot().Applications; len(apps) != 1 {
		t.Errorf("%d applications, want 1", len(apps))
	}
}

func TestMutateFillsIDs(t *testing.T) {
	h := start(t, Options{})
	h.tenant.Mutate(func(s *State) {
		s.Applications = append(s.Applications, Application{UniqueName: "drift", PasswordCredentials: []PasswordCredential{{SecretText: "abcdef"}}})
		s.Secrets = append(s.Secrets, Secret{Name: "s", Versions: []SecretVersion{{Value: "v", Enabled: true}}})
	})
	snap := h.tenant.Snapshot()
	app := snap.Application("drift")
	if app == nil || !isGUID(app.ID) || !isGUID(app.AppID) || !isGUID(app.PasswordCredentials[0].KeyID) || app.PasswordCredentials[0].Hint != "abc" {
		t.Errorf("application after Mutate: %+v", app)
	}
	if v := snap.Secret("s").Current(); v == nil || len(v.Version) != 32 {
		t.Errorf("secret version after Mutate: %+v", v)
	}
	// Snapshot is a copy.
	snap.Applications[0].DisplayName = "changed"
	if h.tenant.Snapshot().Application("drift").DisplayName == "changed" {
		t.Error("Snapshot shares memory with the state")
	}
}
