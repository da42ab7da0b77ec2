package emulator

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// OpRemoveAppRoleAssignment is DELETE /servicePrincipals/{id}/appRoleAssignedTo/{assignmentId} (or
// .../appRoleAssignments/{assignmentId}): the removal of an app role assignment.
const OpRemoveAppRoleAssignment = "graph.removeAppRoleAssignment"

// Answers of the realism switches (see the sources named on GraphRealism).
const (
	codeCredentialTypeNotAllowed = "CredentialTypeNotAllowedAsPerAppPolicy"
	codeObjectConflict           = "ObjectConflict"
	msgSPAppNotLocal             = "When using this permission, the backing application of the service principal being created must in the local tenant."
	msgNotValidReference         = "Not a valid reference update."
	defaultLagProbability        = 0.5
	defaultRaceWindow            = 5 * time.Second
)

// GraphRealism switches on behaviours of real Microsoft Graph that the default tenant leaves out
// (reference section 8). The zero value is today's behaviour.
type GraphRealism struct {
	// SPCreateForbidden: creating the service principal of an application that has not replicated yet
	// (see SetReplicationDelay; also an application created within LagWindow when a lagging replica
	// serves the check) answers 403 Authorization_RequestDenied "When using this permission, the backing
	// application of the service principal being created must in the local tenant." instead of the 400
	// "does not reference a valid application object". Applies to POST /servicePrincipals and the
	// PATCH /servicePrincipals(appId='…') upsert, for a caller that relies on
	// Application.ReadWrite.OwnedBy (a token without Application.ReadWrite.All or
	// Directory.ReadWrite.All, as the default identity's); an application id that exists nowhere keeps
	// the 400. Sources: hamilton odata ErrorServicePrincipalAppInOtherTenant, azure-cli role/custom.py.
	SPCreateForbidden bool
	// AssignmentReferenceErrors: an app role assignment whose principal (or resource) has not replicated,
	// or (with LagWindow) whose principal the lagging replica serving the write's check does not show yet,
	// answers, alternately, 400 Request_BadRequest "Not a valid reference update." and a plain 404
	// Request_ResourceNotFound "Resource '<id>' does not exist." (which does NOT contain "does not exist
	// or one of its queried reference-property objects are not present"), instead of today's answer.
	// The first such answer after SetGraphRealism is the 400. Sources: terraform-provider-azuread
	// app_role_assignment_resource.go, msgraph-bicep-types#193.
	AssignmentReferenceErrors bool
	// LagWindow > 0 turns on lagging replicas: for LagWindow (wall clock) after a write, every read
	// (GET of an application / service principal / assignment list, each request inside a $batch, the
	// passwordCredentials of an application) is served, with probability LagProbability drawn from the
	// tenant's seeded RNG (Options.Seed), by a replica that does not show the writes of the last
	// LagWindow: objects, credentials and assignments created within it are absent, and credentials and
	// assignments removed within it are still present. Writes always see the truth (uniqueness is
	// enforced at write time). An object once seen can therefore vanish on the next read. Only creations
	// and removals lag (a changed property reads as changed), objects made with Mutate count as old, and
	// a removal is kept for lagging reads only while LagWindow > 0.
	LagWindow      time.Duration
	LagProbability float64 // 0 -> 0.5
	// UniqueNameRace: a PATCH /applications(uniqueName='x') with Prefer: create-if-missing whose
	// application was created less than RaceWindow ago by ANOTHER request (another client-request-id)
	// answers 400 Request_BadRequest "Another object with the same value for property uniqueName already
	// exists." with an ObjectConflict detail targeting uniqueName, although that application is live,
	// instead of 204.
	UniqueNameRace bool
	RaceWindow     time.Duration // 0 -> 5 s
	// RemovePasswordUnknown400: removePassword of a keyId the application does not hold (or does not
	// show yet) answers 400 Request_BadRequest "No password credential found with keyId '<keyId>' on
	// application '<id>'." instead of 404. A public client reports this 400 with this message for a
	// removePassword racing an addPassword that had not replicated; Microsoft documents neither answer.
	RemovePasswordUnknown400 bool
	// PasswordsForbidden: addPassword answers 400 CredentialTypeNotAllowedAsPerAppPolicy "Credential type
	// not allowed as per assigned policy '<policy id>'.", as in a tenant whose app management policy
	// forbids passwords; GET /policies/defaultAppManagementPolicy then lists an enabled passwordAddition
	// restriction.
	PasswordsForbidden bool
}

// SetGraphRealism replaces the Graph realism switches.
func (t *Tenant) SetGraphRealism(r GraphRealism) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r.LagWindow, r.RaceWindow = max(r.LagWindow, 0), max(r.RaceWindow, 0)
	r.LagProbability = min(max(r.LagProbability, 0), 1)
	t.graphRealism.cfg = r
	t.graphRealism.referenceErrors = 0
	t.graphRealism.prune(time.Now())
}

// SetOwners replaces the owners (object ids) of the application with that uniqueName and of its service
// principal: SetOwners(name) with no owners is a recreated identity that owns nothing, so that every
// write to them by an identity holding only Application.ReadWrite.OwnedBy answers 403.
func (t *Tenant) SetOwners(uniqueName string, owners ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	app := t.state.Application(uniqueName)
	if app == nil {
		t.logf("EMULATOR: SetOwners: there is no application with uniqueName %q", uniqueName)
		return
	}
	app.Owners = slices.Clone(owners)
	if sp := t.state.ServicePrincipalByAppID(app.AppID); sp != nil {
		sp.Owners = slices.Clone(owners)
	}
}

// realism is the Tenant's state of the realism switches: the switches, and what lagging replicas and the
// uniqueName race need to know about past writes. It is not part of State, so Snapshot shows the truth.
// Everything below runs under Tenant.mu.
type realism struct {
	cfg GraphRealism
	// writes records the creation of each application, service principal, credential and assignment,
	// keyed by its lower-cased id (object id, keyId or assignment id).
	writes    map[string]write
	lastWrite time.Time // wall clock of the latest creation or removal
	// Tombstones of removals within LagWindow, for lagging replicas.
	removedCreds       []removedCredential
	removedAssignments []removedAssignment
	referenceErrors    int // answers of AssignmentReferenceErrors so far (they alternate)
}

// write is when and by which request something was created.
type write struct {
	at              time.Time // wall clock
	clientRequestID string
}

type removedCredential struct {
	appID            string // object id of the application
	cred             PasswordCredential
	created, removed time.Time
}

type removedAssignment struct {
	a                AppRoleAssignment
	created, removed time.Time
}

// prune forgets removals that no lagging replica can show any more.
func (r *realism) prune(now time.Time) {
	cutoff := now.Add(-r.cfg.LagWindow)
	r.removedCreds = slices.DeleteFunc(r.removedCreds, func(c removedCredential) bool { return !c.removed.After(cutoff) })
	r.removedAssignments = slices.DeleteFunc(r.removedAssignments, func(a removedAssignment) bool { return !a.removed.After(cutoff) })
}

// created returns when the thing with that id was created (zero: before the tenant kept count).
func (r *realism) created(id string) write { return r.writes[strings.ToLower(id)] }

// noteCreated records the creation of an application, service principal, credential or assignment.
func (t *Tenant) noteCreated(req *request, id string) {
	r := &t.graphRealism
	if r.writes == nil {
		r.writes = map[string]write{}
	}
	now := time.Now()
	r.writes[strings.ToLower(id)] = write{at: now, clientRequestID: clientRequestID(req)}
	r.lastWrite = now
}

// noteRemovedCredential records the removal of an application's credential.
func (t *Tenant) noteRemovedCredential(app *Application, cred PasswordCredential) {
	r := &t.graphRealism
	now := time.Now()
	r.lastWrite = now
	r.prune(now)
	if r.cfg.LagWindow > 0 {
		r.removedCreds = append(r.removedCreds, removedCredential{appID: app.ID, cred: cred,
			created: r.created(cred.KeyID).at, removed: now})
	}
}

// noteRemovedAssignment records the removal of an app role assignment.
func (t *Tenant) noteRemovedAssignment(a AppRoleAssignment) {
	r := &t.graphRealism
	now := time.Now()
	r.lastWrite = now
	r.prune(now)
	if r.cfg.LagWindow > 0 {
		r.removedAssignments = append(r.removedAssignments, removedAssignment{a: a, created: r.created(a.ID).at, removed: now})
	}
}

// replica is the directory replica that serves a read: the truth (zero cutoff), or a lagging one that
// shows the directory as it was at cutoff.
type replica struct {
	cutoff time.Time
	r      *realism
}

// readReplica draws the replica that serves one read: a lagging one, with probability LagProbability,
// while the latest write is less than LagWindow old; the truth otherwise.
func (t *Tenant) readReplica() replica {
	r := &t.graphRealism
	w := r.cfg.LagWindow
	now := time.Now()
	if w <= 0 || r.lastWrite.IsZero() || now.Sub(r.lastWrite) >= w {
		return replica{}
	}
	p := r.cfg.LagProbability
	if p <= 0 {
		p = defaultLagProbability
	}
	if t.rng.Float64() >= p {
		return replica{}
	}
	return replica{cutoff: now.Add(-w), r: r}
}

func (rp replica) lagging() bool { return !rp.cutoff.IsZero() }

// shows tells whether the replica shows the application, service principal, credential or assignment
// with that id (one created after the cutoff it does not).
func (rp replica) shows(id string) bool {
	return !rp.lagging() || !rp.r.created(id).at.After(rp.cutoff)
}

// showsRemoved tells whether the replica still shows something created and removed at those times.
func (rp replica) showsRemoved(created, removed time.Time) bool {
	return rp.lagging() && !created.After(rp.cutoff) && removed.After(rp.cutoff)
}

// application returns the application as the replica shows it: credentials created after the cutoff
// left out, credentials removed after it put back.
func (rp replica) application(a *Application) *Application {
	if !rp.lagging() {
		return a
	}
	c := *a
	c.PasswordCredentials = nil
	for _, p := range a.PasswordCredentials {
		if rp.shows(p.KeyID) {
			c.PasswordCredentials = append(c.PasswordCredentials, p)
		}
	}
	for _, rc := range rp.r.removedCreds {
		if strings.EqualFold(rc.appID, a.ID) && rp.showsRemoved(rc.created, rc.removed) {
			c.PasswordCredentials = append(c.PasswordCredentials, rc.cred)
		}
	}
	return &c
}

// assignments returns the assignments the replica shows granted to (byResource: by) the service
// principal spID.
func (rp replica) assignments(all []AppRoleAssignment, spID string, byResource bool) []AppRoleAssignment {
	side := func(a AppRoleAssignment) string {
		if byResource {
			return a.ResourceID
		}
		return a.PrincipalID
	}
	var out []AppRoleAssignment
	for _, a := range all {
		if strings.EqualFold(side(a), spID) && visible(a.VisibleAt) && rp.shows(a.ID) {
			out = append(out, a)
		}
	}
	if rp.lagging() {
		for _, ra := range rp.r.removedAssignments {
			if strings.EqualFold(side(ra.a), spID) && rp.showsRemoved(ra.created, ra.removed) {
				out = append(out, ra.a)
			}
		}
	}
	return out
}

// spAppNotLocal answers SPCreateForbidden's 403 when the application appID of a new service principal
// has not replicated (app is nil: the write path does not see it) or a lagging replica serving the
// check does not show it yet; nil otherwise.
func (t *Tenant) spAppNotLocal(req *request, appID string, app *Application) *answer {
	if !t.graphRealism.cfg.SPCreateForbidden || req.claims.hasRole(graphWriteRoles...) {
		return nil
	}
	var notLocal bool
	if app == nil {
		notLocal = t.findApp(entityKey{prop: "appId", value: appID}, true) != nil
	} else {
		notLocal = !t.readReplica().shows(app.ID)
	}
	if !notLocal {
		return nil
	}
	ans := graphError(req, http.StatusForbidden, codeDenied, msgSPAppNotLocal)
	return &ans
}

// referenceError answers AssignmentReferenceErrors' error for the principal or resource id of an
// assignment when it exists but has not replicated; nil otherwise.
func (t *Tenant) referenceError(req *request, id string) *answer {
	if !t.graphRealism.cfg.AssignmentReferenceErrors || t.findSP(entityKey{prop: "id", value: id}, true) == nil {
		return nil
	}
	n := t.graphRealism.referenceErrors
	t.graphRealism.referenceErrors++
	var ans answer
	if n%2 == 0 {
		ans = badRequest(req, codeBadRequest, msgNotValidReference)
	} else {
		ans = graphError(req, http.StatusNotFound, codeResourceNotFound, fmt.Sprintf("Resource '%s' does not exist.", id))
	}
	return &ans
}

// uniqueNameRace answers UniqueNameRace's 400 to an upsert with Prefer: create-if-missing of an
// application another request created less than RaceWindow ago; nil otherwise.
func (t *Tenant) uniqueNameRace(req *request, app *Application) *answer {
	cfg := t.graphRealism.cfg
	if !cfg.UniqueNameRace || !preferCreateIfMissing(req.header) {
		return nil
	}
	window := cfg.RaceWindow
	if window <= 0 {
		window = defaultRaceWindow
	}
	w := t.graphRealism.created(app.ID)
	if w.at.IsZero() || w.clientRequestID == clientRequestID(req) || time.Since(w.at) >= window {
		return nil
	}
	ans := graphErrorDetails(req, http.StatusBadRequest, codeBadRequest, msgUniqueNameTaken, []map[string]any{
		{"code": codeObjectConflict, "message": msgUniqueNameTaken, "target": "uniqueName"},
	})
	return &ans
}

// passwordsForbidden answers PasswordsForbidden's 400 to addPassword; nil when passwords are allowed.
func (t *Tenant) passwordsForbidden(req *request) *answer {
	if !t.graphRealism.cfg.PasswordsForbidden {
		return nil
	}
	ans := badRequest(req, codeCredentialTypeNotAllowed, fmt.Sprintf(
		"Credential type not allowed as per assigned policy '%s'.", defaultPolicyID))
	return &ans
}

// unknownKeyID answers removePassword of a keyId the application does not show: 404, or 400 with
// RemovePasswordUnknown400.
func (t *Tenant) unknownKeyID(req *request, app *Application, keyID string) answer {
	msg := fmt.Sprintf("No password credential found with keyId '%s' on application '%s'.", keyID, app.ID)
	if t.graphRealism.cfg.RemovePasswordUnknown400 {
		return badRequest(req, codeBadRequest, msg)
	}
	return graphError(req, http.StatusNotFound, codeResourceNotFound, msg)
}

// removeAppRoleAssignment serves DELETE /servicePrincipals/{id}/appRoleAssignedTo/{assignmentId}
// (byResource) and DELETE /servicePrincipals/{id}/appRoleAssignments/{assignmentId}.
func (t *Tenant) removeAppRoleAssignment(req *request, key entityKey, assignmentID string, byResource bool) answer {
	c := req.claims
	if !c.hasRole(RoleAppRoleAssignmentReadWriteAll) && !c.hasRole(graphWriteRoles...) {
		return denied(req)
	}
	if ans := t.checkQuery(req); ans != nil {
		return *ans
	}
	sp := t.findSP(key, false)
	if sp == nil {
		return notFound(req, key.value)
	}
	i := slices.IndexFunc(t.state.AppRoleAssignments, func(a AppRoleAssignment) bool {
		side := a.PrincipalID
		if byResource {
			side = a.ResourceID
		}
		return a.ID == assignmentID && strings.EqualFold(side, sp.ID) && visible(a.VisibleAt)
	})
	if i < 0 {
		return notFound(req, assignmentID)
	}
	a := t.state.AppRoleAssignments[i]
	t.state.AppRoleAssignments = slices.Delete(t.state.AppRoleAssignments, i, i+1)
	t.noteRemovedAssignment(a)
	req.applied = true
	return graphNoContent(req)
}
