package emulator

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// wantError checks an error answer's status, code and message (wantMsg "" skips the message).
func wantError(t *testing.T, what string, r reply, status int, code, wantMsg string) {
	t.Helper()
	if r.status != status || r.errorCode(t) != code || (wantMsg != "" && r.errorMessage(t) != wantMsg) {
		t.Errorf("%s: %d %q %q, want %d %q %q", what, r.status, r.errorCode(t), r.errorMessage(t), status, code, wantMsg)
		return
	}
	assertODataError(t, r)
}

// seedApp adds an application as if made long ago (Mutate: never lagging), owned by the identity, with
// one credential; it returns the application's object id, appId and the credential's keyId.
func seedApp(h *harness, uniqueName string) (id, appID, keyID string) {
	h.t.Helper()
	id, appID, keyID = NewGUID(), NewGUID(), NewGUID()
	h.tenant.Mutate(func(s *State) {
		s.Applications = append(s.Applications, Application{
			ID: id, AppID: appID, DisplayName: uniqueName, UniqueName: uniqueName, SignInAudience: "AzureADMyOrg",
			Owners:              []string{h.tenant.IdentityObjectID()},
			PasswordCredentials: []PasswordCredential{{KeyID: keyID, SecretText: "old-secret-text"}},
		})
	})
	return id, appID, keyID
}

// keyIDs returns the keyIds of an application answer.
func keyIDs(t *testing.T, r reply) []string {
	t.Helper()
	var out []string
	creds, _ := r.json(t)["passwordCredentials"].([]any)
	for _, c := range creds {
		out = append(out, str(c.(map[string]any), "keyId"))
	}
	return out
}

func TestRealismSPCreateForbidden(t *testing.T) {
	const wantMsg = "When using this permission, the backing application of the service principal being created must in the local tenant."
	tests := []struct {
		name       string
		realism    GraphRealism
		delay      time.Duration // replication delay while the application is created
		roles      []string      // nil: the default roles (Application.ReadWrite.OwnedBy)
		unknownApp bool          // an appId that exists nowhere
		upsert     bool          // PATCH /servicePrincipals(appId='…') instead of POST
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"off", GraphRealism{}, time.Hour, nil, false, false, 400, "Request_BadRequest", "does not reference a valid application object."},
		{"post", GraphRealism{SPCreateForbidden: true}, time.Hour, nil, false, false, 403, "Authorization_RequestDenied", wantMsg},
		{"upsert", GraphRealism{SPCreateForbidden: true}, time.Hour, nil, false, true, 403, "Authorization_RequestDenied", wantMsg},
		{"with Application.ReadWrite.All", GraphRealism{SPCreateForbidden: true}, time.Hour,
			[]string{RoleApplicationReadWriteAll}, false, false, 400, "Request_BadRequest", "does not reference a valid application object."},
		{"unknown application", GraphRealism{SPCreateForbidden: true}, 0, nil, true, false, 400, "Request_BadRequest", "does not reference a valid application object."},
		{"replicated", GraphRealism{SPCreateForbidden: true}, 0, nil, false, false, 201, "", ""},
		{"lagging replica", GraphRealism{SPCreateForbidden: true, LagWindow: time.Hour, LagProbability: 1}, 0, nil, false, false,
			403, "Authorization_RequestDenied", wantMsg},
		{"lag without the switch", GraphRealism{LagWindow: time.Hour, LagProbability: 1}, 0, nil, false, false, 201, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{})
			if tc.roles != nil {
				h.tenant.SetGraphRoles(tc.roles...)
			}
			tok := h.graphToken()
			h.tenant.SetGraphRealism(tc.realism)
			h.tenant.SetReplicationDelay(tc.delay)
			r := h.upsertApp(tok, "fresh")
			if r.status != 201 {
				t.Fatalf("creating the application: %d %s", r.status, r.body)
			}
			appID := str(r.json(t), "appId")
			if tc.unknownApp {
				appID = NewGUID()
			}
			if tc.upsert {
				r = h.graph(http.MethodPatch, "/servicePrincipals(appId='"+appID+"')", tok, []byte(`{}`), createIfMissing)
			} else {
				r = h.graph(http.MethodPost, "/servicePrincipals", tok, mustJSON(t, map[string]string{"appId": appID}), nil)
			}
			if tc.wantStatus == 201 {
				if r.status != 201 {
					t.Errorf("service principal: %d %s, want 201", r.status, r.body)
				}
				return
			}
			if r.status != tc.wantStatus || r.errorCode(t) != tc.wantCode || !strings.HasSuffix(r.errorMessage(t), tc.wantMsg) {
				t.Fatalf("service principal: %d %q %q, want %d %q ending in %q", r.status, r.errorCode(t), r.errorMessage(t),
					tc.wantStatus, tc.wantCode, tc.wantMsg)
			}
			assertODataError(t, r)
		})
	}
}

func TestRealismAssignmentReferenceErrors(t *testing.T) {
	const today = "does not exist or one of its queried reference-property objects are not present."
	h := start(t, Options{})
	tok := h.graphToken()
	fresh := NewGUID() // a service principal that has not replicated
	h.tenant.Mutate(func(s *State) {
		s.ServicePrincipals = append(s.ServicePrincipals, ServicePrincipal{ID: fresh, AppID: NewGUID(), DisplayName: "fresh",
			ServicePrincipalType: "Application", AccountEnabled: true, VisibleAt: time.Now().Add(time.Hour)})
	})
	graphSP := h.tenant.Snapshot().ServicePrincipalByAppID(GraphAppID).ID
	unknown := NewGUID()
	assign := func(resource, principal string) reply {
		return h.graph(http.MethodPost, "/servicePrincipals/"+resource+"/appRoleAssignedTo", tok,
			mustJSON(t, map[string]string{"principalId": principal, "resourceId": resource, "appRoleId": directoryReadAll}), nil)
	}
	// The steps run in order on one tenant: the answers alternate.
	tests := []struct {
		name                string
		on                  bool
		resource, principal string
		wantStatus          int
		wantCode            string
		wantMsg             string // suffix
	}{
		{"off: fresh principal", false, graphSP, fresh, 404, "Request_ResourceNotFound", "Resource '" + fresh + "' " + today},
		{"fresh principal", true, graphSP, fresh, 400, "Request_BadRequest", "Not a valid reference update."},
		{"fresh principal again", true, graphSP, fresh, 404, "Request_ResourceNotFound", "Resource '" + fresh + "' does not exist."},
		{"fresh resource", true, fresh, h.tenant.IdentityObjectID(), 400, "Request_BadRequest", "Not a valid reference update."},
		{"fresh resource again", true, fresh, h.tenant.IdentityObjectID(), 404, "Request_ResourceNotFound", "Resource '" + fresh + "' does not exist."},
		{"unknown principal", true, graphSP, unknown, 404, "Request_ResourceNotFound", "Resource '" + unknown + "' " + today},
		{"third time", true, graphSP, fresh, 400, "Request_BadRequest", "Not a valid reference update."},
	}
	on := false
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.on != on { // SetGraphRealism starts the alternation over
				h.tenant.SetGraphRealism(GraphRealism{AssignmentReferenceErrors: tc.on})
				on = tc.on
			}
			r := assign(tc.resource, tc.principal)
			if r.status != tc.wantStatus || r.errorCode(t) != tc.wantCode || !strings.HasSuffix(r.errorMessage(t), tc.wantMsg) {
				t.Fatalf("assignment: %d %q %q, want %d %q ending in %q", r.status, r.errorCode(t), r.errorMessage(t),
					tc.wantStatus, tc.wantCode, tc.wantMsg)
			}
			if tc.on && tc.principal == fresh && strings.Contains(r.errorMessage(t), today) {
				t.Errorf("message %q contains %q", r.errorMessage(t), today)
			}
			assertODataError(t, r)
		})
	}
}

func TestRealismLaggingReplicas(t *testing.T) {
	const reads = 24
	t.Run("within the window reads disagree", func(t *testing.T) {
		h := start(t, Options{Seed: 42})
		tok := h.graphToken()
		id, appID, oldKey := seedApp(h, "lag")
		graphSP := h.tenant.Snapshot().ServicePrincipalByAppID(GraphAppID).ID
		oldAssignment := newAssignmentID()
		h.tenant.Mutate(func(s *State) {
			s.AppRoleAssignments = append(s.AppRoleAssignments, AppRoleAssignment{ID: oldAssignment, AppRoleID: directoryReadAll,
				PrincipalID: h.tenant.IdentityObjectID(), ResourceID: graphSP, PrincipalType: "ServicePrincipal"})
		})
		h.tenant.SetGraphRealism(GraphRealism{LagWindow: time.Minute})

		r := h.graph(http.MethodPost, "/applications/"+id+"/addPassword", tok, []byte(`{}`), nil)
		if r.status != 200 {
			t.Fatalf("addPassword: %d %s", r.status, r.body)
		}
		newKey := str(r.json(t), "keyId")
		if r := h.graph(http.MethodPost, "/applications/"+id+"/removePassword", tok, mustJSON(t, map[string]string{"keyId": oldKey}), nil); r.status != 204 {
			t.Fatalf("removePassword: %d %s", r.status, r.body)
		}
		var missingNew, withNew, withOld, withoutOld int
		for range reads {
			r := h.graph(http.MethodGet, "/applications/"+id, tok, nil, nil)
			if r.status != 200 {
				t.Fatalf("GET of an old application: %d %s", r.status, r.body)
			}
			keys := keyIDs(t, r)
			if slices.Contains(keys, newKey) {
				withNew++
			} else {
				missingNew++
			}
			if slices.Contains(keys, oldKey) {
				withOld++
			} else {
				withoutOld++
			}
		}
		if missingNew == 0 || withNew == 0 || withOld == 0 || withoutOld == 0 {
			t.Errorf("credentials in %d reads: new one missing %d, shown %d; removed one shown %d, gone %d; want each > 0",
				reads, missingNew, withNew, withOld, withoutOld)
		}
		if app := h.tenant.Snapshot().ApplicationByID(id); app.PasswordCredential(oldKey) != nil || app.PasswordCredential(newKey) == nil {
			t.Errorf("Snapshot credentials %+v, want the truth: only %s", app.PasswordCredentials, newKey)
		}

		// A new service principal and assignment come and go; a removed assignment lingers.
		r = h.graph(http.MethodPost, "/servicePrincipals", tok, mustJSON(t, map[string]string{"appId": appID}), nil)
		if r.status != 201 {
			t.Fatalf("service principal: %d %s", r.status, r.body)
		}
		sp := str(r.json(t), "id")
		r = h.graph(http.MethodPost, "/servicePrincipals/"+graphSP+"/appRoleAssignedTo", tok,
			mustJSON(t, map[string]string{"principalId": sp, "resourceId": graphSP, "appRoleId": directoryReadAll}), nil)
		if r.status != 201 {
			t.Fatalf("assignment: %d %s", r.status, r.body)
		}
		newAssignment := str(r.json(t), "id")
		if r := h.graph(http.MethodDelete, "/servicePrincipals/"+graphSP+"/appRoleAssignedTo/"+oldAssignment, tok, nil, nil); r.status != 204 {
			t.Fatalf("removing the old assignment: %d %s", r.status, r.body)
		}
		statuses := map[int]int{}
		lists := map[string]int{}
		for range reads {
			statuses[h.graph(http.MethodGet, "/servicePrincipals/"+sp, tok, nil, nil).status]++
			r := h.graph(http.MethodGet, "/servicePrincipals/"+graphSP+"/appRoleAssignedTo?$top=999", tok, nil, nil)
			for _, v := range r.json(t)["value"].([]any) {
				lists[str(v.(map[string]any), "id")]++
			}
		}
		if statuses[200] == 0 || statuses[404] == 0 || len(statuses) != 2 {
			t.Errorf("GET of a new service principal: statuses %v, want both 200 and 404", statuses)
		}
		if n := lists[newAssignment]; n == 0 || n == reads {
			t.Errorf("new assignment listed in %d of %d reads, want some", n, reads)
		}
		if n := lists[oldAssignment]; n == 0 || n == reads {
			t.Errorf("removed assignment listed in %d of %d reads, want some", n, reads)
		}
		if got := h.tenant.Snapshot().AssignmentsOf(h.tenant.IdentityObjectID()); len(got) != 0 {
			t.Errorf("Snapshot lists the removed assignment: %+v", got)
		}

		// Each request of a $batch is served on its own.
		var items []string
		for i := range 10 {
			items = append(items, fmt.Sprintf(`{"id":"%d","method":"GET","url":"/servicePrincipals/%s"}`, i, sp))
		}
		r = h.graph(http.MethodPost, "/$batch", tok, []byte(`{"requests":[`+strings.Join(items, ",")+`]}`), nil)
		batched := map[int]int{}
		for _, v := range r.json(t)["responses"].([]any) {
			batched[int(v.(map[string]any)["status"].(float64))]++
		}
		if batched[200] == 0 || batched[404] == 0 {
			t.Errorf("batched GETs of a new service principal: statuses %v, want both 200 and 404", batched)
		}
	})

	t.Run("writes see the truth", func(t *testing.T) {
		h := start(t, Options{Seed: 42})
		tok := h.graphToken()
		h.tenant.SetGraphRealism(GraphRealism{LagWindow: time.Minute, LagProbability: 1}) // every read lags
		r := h.upsertApp(tok, "fresh")
		if r.status != 201 {
			t.Fatalf("creating the application: %d %s", r.status, r.body)
		}
		id, appID := str(r.json(t), "id"), str(r.json(t), "appId")
		if r := h.graph(http.MethodGet, "/applications/"+id, tok, nil, nil); r.status != 404 {
			t.Errorf("lagging GET of a new application: %d, want 404", r.status)
		}
		steps := []struct {
			name, method, path string
			body               []byte
			headers            map[string]string
			want               int
		}{
			{"upsert", http.MethodPatch, "/applications(uniqueName='fresh')", []byte(`{"notes":"x"}`), createIfMissing, 204},
			{"update", http.MethodPatch, "/applications/" + id, []byte(`{"notes":"y"}`), nil, 204},
			{"addPassword", http.MethodPost, "/applications/" + id + "/addPassword", []byte(`{}`), nil, 200},
			{"service principal", http.MethodPost, "/servicePrincipals", mustJSON(t, map[string]string{"appId": appID}), nil, 201},
		}
		for _, s := range steps {
			if r := h.graph(s.method, s.path, tok, s.body, s.headers); r.status != s.want {
				t.Errorf("%s: %d %s, want %d", s.name, r.status, r.body, s.want)
			}
		}
		app := h.tenant.Snapshot().ApplicationByID(id)
		keyID := app.PasswordCredentials[0].KeyID
		if r := h.graph(http.MethodPost, "/applications/"+id+"/removePassword", tok, mustJSON(t, map[string]string{"keyId": keyID}), nil); r.status != 204 {
			t.Errorf("removePassword of a credential no read shows: %d %s, want 204", r.status, r.body)
		}
		sp := h.tenant.Snapshot().ServicePrincipalByAppID(appID).ID
		graphSP := h.tenant.Snapshot().ServicePrincipalByAppID(GraphAppID).ID
		r = h.graph(http.MethodPost, "/servicePrincipals/"+graphSP+"/appRoleAssignedTo", tok,
			mustJSON(t, map[string]string{"principalId": sp, "resourceId": graphSP, "appRoleId": directoryReadAll}), nil)
		if r.status != 201 {
			t.Errorf("assignment to a service principal no read shows: %d %s, want 201", r.status, r.body)
		}
		if r := h.graph(http.MethodGet, "/servicePrincipals/"+sp+"/appRoleAssignments", tok, nil, nil); r.status != 404 {
			t.Errorf("lagging list of a new service principal: %d, want 404", r.status)
		}
	})

	t.Run("after the window reads agree", func(t *testing.T) {
		const window = 200 * time.Millisecond
		h := start(t, Options{Seed: 42})
		tok := h.graphToken()
		id, _, oldKey := seedApp(h, "lag")
		h.tenant.SetGraphRealism(GraphRealism{LagWindow: window, LagProbability: 1})
		r := h.graph(http.MethodPost, "/applications/"+id+"/addPassword", tok, []byte(`{}`), nil)
		newKey := str(r.json(t), "keyId")
		if r := h.graph(http.MethodPost, "/applications/"+id+"/removePassword", tok, mustJSON(t, map[string]string{"keyId": oldKey}), nil); r.status != 204 {
			t.Fatalf("removePassword: %d %s", r.status, r.body)
		}
		time.Sleep(window)
		for i := range reads {
			if keys := keyIDs(t, h.graph(http.MethodGet, "/applications/"+id, tok, nil, nil)); !slices.Equal(keys, []string{newKey}) {
				t.Fatalf("read %d after the window: keyIds %v, want only %s", i, keys, newKey)
			}
		}
	})

	t.Run("off", func(t *testing.T) {
		h := start(t, Options{Seed: 42})
		tok := h.graphToken()
		id, _, _ := seedApp(h, "lag")
		newKey := str(h.graph(http.MethodPost, "/applications/"+id+"/addPassword", tok, []byte(`{}`), nil).json(t), "keyId")
		for i := range reads {
			if keys := keyIDs(t, h.graph(http.MethodGet, "/applications/"+id, tok, nil, nil)); !slices.Contains(keys, newKey) {
				t.Fatalf("read %d: keyIds %v lack the new %s", i, keys, newKey)
			}
		}
	})
}

func TestRealismUniqueNameRace(t *testing.T) {
	const msg = "Another object with the same value for property uniqueName already exists."
	tests := []struct {
		name       string
		realism    GraphRealism
		sameClient bool // the second upsert carries the creator's client-request-id
		noPrefer   bool
		wait       time.Duration
		wantStatus int
	}{
		{"off", GraphRealism{}, false, false, 0, 204},
		{"another request", GraphRealism{UniqueNameRace: true}, false, false, 0, 400},
		{"the same request again", GraphRealism{UniqueNameRace: true}, true, false, 0, 204},
		{"without create-if-missing", GraphRealism{UniqueNameRace: true}, false, true, 0, 204},
		{"after the window", GraphRealism{UniqueNameRace: true, RaceWindow: 100 * time.Millisecond}, false, false, 100 * time.Millisecond, 204},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{})
			tok := h.graphToken()
			h.tenant.SetGraphRealism(tc.realism)
			creator := map[string]string{"Prefer": "create-if-missing", "client-request-id": NewGUID()}
			if r := h.graph(http.MethodPatch, "/applications(uniqueName='racy')", tok, fixture(t, "app_create.json"), creator); r.status != 201 {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			time.Sleep(tc.wait)
			headers := map[string]string{"Prefer": "create-if-missing"}
			switch {
			case tc.sameClient:
				headers = creator
			case tc.noPrefer:
				headers = nil
			}
			r := h.graph(http.MethodPatch, "/applications(uniqueName='racy')", tok, fixture(t, "app_create.json"), headers)
			if tc.wantStatus != 400 {
				if r.status != tc.wantStatus {
					t.Errorf("second upsert: %d %s, want %d", r.status, r.body, tc.wantStatus)
				}
				return
			}
			wantError(t, "second upsert", r, 400, "Request_BadRequest", msg)
			e, _ := r.json(t)["error"].(map[string]any)
			details, _ := e["details"].([]any)
			if len(details) != 1 || str(details[0].(map[string]any), "code") != "ObjectConflict" || str(details[0].(map[string]any), "target") != "uniqueName" {
				t.Errorf("error.details %v, want one ObjectConflict on uniqueName", e["details"])
			}
			if n := len(h.tenant.Snapshot().Applications); n != 1 {
				t.Errorf("%d applications, want 1", n)
			}
		})
	}
}

func TestRealismRemovePasswordUnknown400(t *testing.T) {
	tests := []struct {
		name       string
		on         bool
		known      bool
		wantStatus int
		wantCode   string
	}{
		{"off", false, false, 404, "Request_ResourceNotFound"},
		{"on", true, false, 400, "Request_BadRequest"},
		{"on, a keyId the application holds", true, true, 204, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{})
			tok := h.graphToken()
			h.tenant.SetGraphRealism(GraphRealism{RemovePasswordUnknown400: tc.on})
			id, _, keyID := seedApp(h, "app")
			if !tc.known {
				keyID = NewGUID()
			}
			r := h.graph(http.MethodPost, "/applications/"+id+"/removePassword", tok, mustJSON(t, map[string]string{"keyId": keyID}), nil)
			if tc.wantStatus == 204 {
				if r.status != 204 {
					t.Errorf("removePassword: %d %s, want 204", r.status, r.body)
				}
				return
			}
			wantError(t, "removePassword", r, tc.wantStatus, tc.wantCode,
				"No password credential found with keyId '"+keyID+"' on application '"+id+"'.")
		})
	}
}

func TestRealismPasswordsForbidden(t *testing.T) {
	tests := []struct {
		name         string
		on           bool
		wantStatus   int
		wantPolicies int // password restrictions the default policy lists
	}{
		{"off", false, 200, 0},
		{"on", true, 400, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{})
			h.tenant.SetGraphRoles(append(DefaultGraphRoles(), RolePolicyReadAll)...)
			tok := h.graphToken()
			h.tenant.SetGraphRealism(GraphRealism{PasswordsForbidden: tc.on})
			id, _, _ := seedApp(h, "app")
			r := h.graph(http.MethodPost, "/applications/"+id+"/addPassword", tok, []byte(`{"passwordCredential":{"displayName":"x"}}`), nil)
			if tc.wantStatus == 200 && r.status != 200 {
				t.Errorf("addPassword: %d %s, want 200", r.status, r.body)
			}
			if tc.wantStatus == 400 {
				wantError(t, "addPassword", r, 400, "CredentialTypeNotAllowedAsPerAppPolicy",
					"Credential type not allowed as per assigned policy '"+defaultPolicyID+"'.")
				if n := len(h.tenant.Snapshot().ApplicationByID(id).PasswordCredentials); n != 1 {
					t.Errorf("%d credentials after a refused addPassword, want 1", n)
				}
			}
			policy := h.graph(http.MethodGet, "/policies/defaultAppManagementPolicy", tok, nil, nil).json(t)
			restrictions, _ := policy["applicationRestrictions"].(map[string]any)
			passwords, _ := restrictions["passwordCredentials"].([]any)
			if len(passwords) != tc.wantPolicies || policy["isEnabled"] != tc.on ||
				(tc.on && str(passwords[0].(map[string]any), "restrictionType") != "passwordAddition") {
				t.Errorf("policy isEnabled %v, password restrictions %v, want %v and %d passwordAddition", policy["isEnabled"], passwords, tc.on, tc.wantPolicies)
			}
		})
	}
}

func TestOwnershipWrites(t *testing.T) {
	const msg = "Insufficient privileges to complete the operation."
	h := start(t, Options{}) // the default roles: writes only through Application.ReadWrite.OwnedBy
	tok := h.graphToken()
	var ids [2]map[string]any
	for i, name := range []string{"owned", "owned-no-sp"} {
		r := h.upsertApp(tok, name)
		if r.status != 201 {
			t.Fatalf("creating %s: %d %s", name, r.status, r.body)
		}
		ids[i] = r.json(t)
	}
	id, appID, noSPAppID := str(ids[0], "id"), str(ids[0], "appId"), str(ids[1], "appId")
	r := h.graph(http.MethodPost, "/applications/"+id+"/addPassword", tok, []byte(`{}`), nil)
	keyID := str(r.json(t), "keyId")
	if r := h.graph(http.MethodPost, "/servicePrincipals", tok, mustJSON(t, map[string]string{"appId": appID}), nil); r.status != 201 {
		t.Fatalf("service principal: %d %s", r.status, r.body)
	}
	h.tenant.SetOwners("owned")       // a recreated identity owns nothing
	h.tenant.SetOwners("owned-no-sp") // idem

	steps := []struct {
		name, method, path string
		body               []byte
		headers            map[string]string
	}{
		{"upsert", http.MethodPatch, "/applications(uniqueName='owned')", []byte(`{"notes":"x"}`), createIfMissing},
		{"update", http.MethodPatch, "/applications/" + id, []byte(`{"notes":"x"}`), nil},
		{"addPassword", http.MethodPost, "/applications/" + id + "/addPassword", []byte(`{}`), nil},
		{"removePassword", http.MethodPost, "/applications/" + id + "/removePassword", mustJSON(t, map[string]string{"keyId": keyID}), nil},
		{"update its service principal", http.MethodPatch, "/servicePrincipals(appId='" + appID + "')", []byte(`{"notes":"x"}`), createIfMissing},
		{"create a service principal", http.MethodPost, "/servicePrincipals", mustJSON(t, map[string]string{"appId": noSPAppID}), nil},
		{"upsert a service principal", http.MethodPatch, "/servicePrincipals(appId='" + noSPAppID + "')", []byte(`{}`), createIfMissing},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			wantError(t, s.name, h.graph(s.method, s.path, tok, s.body, s.headers), 403, "Authorization_RequestDenied", msg)
		})
	}
	if st := h.tenant.Stats(); st.Service(ServiceGraph).Applied != 4 {
		t.Errorf("%d applied writes, want the 4 before SetOwners", st.Service(ServiceGraph).Applied)
	}

	h.tenant.SetOwners("owned", h.tenant.IdentityObjectID())
	if r := h.graph(http.MethodPatch, "/applications(uniqueName='owned')", tok, []byte(`{"notes":"x"}`), createIfMissing); r.status != 204 {
		t.Errorf("upsert after SetOwners gave it back: %d %s, want 204", r.status, r.body)
	}
	if r := h.graph(http.MethodPatch, "/servicePrincipals(appId='"+appID+"')", tok, []byte(`{"notes":"x"}`), nil); r.status != 204 {
		t.Errorf("service principal update after SetOwners gave it back: %d %s, want 204", r.status, r.body)
	}
}

func TestRemoveAppRoleAssignment(t *testing.T) {
	h := start(t, Options{})
	tok := h.graphToken()
	graphSP := h.tenant.Snapshot().ServicePrincipalByAppID(GraphAppID).ID
	me := h.tenant.IdentityObjectID()
	r := h.graph(http.MethodPost, "/servicePrincipals/"+graphSP+"/appRoleAssignedTo", tok,
		mustJSON(t, map[string]string{"principalId": me, "resourceId": graphSP, "appRoleId": directoryReadAll}), nil)
	if r.status != 201 {
		t.Fatalf("assignment: %d %s", r.status, r.body)
	}
	aid := str(r.json(t), "id")
	tests := []struct {
		name, path string
		want       int
	}{
		{"wrong side", "/servicePrincipals/" + graphSP + "/appRoleAssignments/" + aid, 404},
		{"unknown id", "/servicePrincipals/" + me + "/appRoleAssignments/" + newAssignmentID(), 404},
		{"principal side", "/servicePrincipals/" + me + "/appRoleAssignments/" + aid, 204},
		{"again", "/servicePrincipals/" + graphSP + "/appRoleAssignedTo/" + aid, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := h.graph(http.MethodDelete, tc.path, tok, nil, nil); r.status != tc.want {
				t.Errorf("DELETE %s: %d %s, want %d", tc.path, r.status, r.body, tc.want)
			}
		})
	}
	if got := h.tenant.Snapshot().AssignmentsOf(me); len(got) != 0 {
		t.Errorf("assignments left: %+v", got)
	}
	if st := h.tenant.Stats().Op(OpRemoveAppRoleAssignment); st.Requests != 4 || st.Applied != 1 {
		t.Errorf("stats %+v, want 4 requests, 1 applied", st)
	}
}
