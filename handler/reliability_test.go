package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/config"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest/report"
	"github.com/scepman-appreg/appreg/handler/internal/logctx"
)

// The fault matrix of RELIABILITY.md: every Graph, Key Vault, identity and ARM operation the app performs,
// on the path where it is reached, under each fault. Each cell runs on a fresh emulated tenant with the
// injected clock, with a new engine per run (a new process): the affected function once with the fault,
// then again without it, then (past the orphan rule) a rotation that cleans up; the invariants of package
// reliability are checked after every run.

// faultKind is a column of the matrix: a fault on the row's operation, or a condition of the tenant (real
// Azure's replication and lagging replicas, a recovery that takes its time) on the path of the row.
type faultKind struct {
	name       string
	fault      emulator.Fault // Service and Operation are filled in per row
	writesOnly bool           // only meaningful for a write (after apply)
	graphOnly  bool
	only       []string      // when set, the only operations whose rows have this column
	runTimeout time.Duration // the first run's deadline

	// condition: not a fault but a state of the tenant during the first and the second run (the row's
	// operation says where it is met).
	condition   bool
	delay       time.Duration         // SetReplicationDelay
	realism     emulator.GraphRealism // SetGraphRealism
	hooks       []emulator.Fault      // FaultHooks that change the tenant at the moment of a request
	recovery    time.Duration         // SetRecoveryDelay, on the paths where the secret is soft-deleted
	concurrent  bool                  // the first run is two runs at once, each in an engine of its own
	realBackoff bool                  // the engines back off as in production: the condition lasts seconds
	// proof counts what shows that the cell met its condition (after the second run); nil: the requests
	// of the row's operation.
	proof func(st emulator.Stats, op string) int
}

// appliesTo tells whether the column has a cell in the row of that operation.
func (k faultKind) appliesTo(op string) bool {
	return (!k.writesOnly || writeOps[op]) && (!k.graphOnly || serviceOf(op) == emulator.ServiceGraph) &&
		(len(k.only) == 0 || slices.Contains(k.only, op))
}

// statusTimes exceeds the SDKs' own retries (kiota and azcore retry three times), so that the engine's
// retry sees the failure too.
const statusTimes = 4

// replicationDelay is how long every object a run creates stays invisible in the replication column.
const replicationDelay = 700 * time.Millisecond

// hangTimeout is the first run's deadline when a request hangs: the run is cut while it waits.
const hangTimeout = 2 * time.Second

// The conditions of real Azure (reference section 8), as the e2e tests of realazure_test.go drive them.
const (
	azureReplicationDelay = 1500 * time.Millisecond // with SPCreateForbidden and AssignmentReferenceErrors
	lagWindow             = 3 * time.Second         // lagging replicas
	recoveryDelay         = time.Second             // every recovery of a soft-deleted secret on its paths
	longRecovery          = 3 * time.Second         // the "being recovered" column
)

// appBehind is a hook that makes the application unreplicated for d from now: the request it runs before
// lands on a replica that has not caught up, although a read-back already showed the application.
func appBehind(d time.Duration) func(*emulator.Tenant) {
	return func(tn *emulator.Tenant) {
		tn.Mutate(func(s *emulator.State) {
			if a := s.Application("scepman"); a != nil {
				a.VisibleAt = time.Now().Add(d)
			}
		})
	}
}

// spBehind is appBehind for the application's service principal.
func spBehind(d time.Duration) func(*emulator.Tenant) {
	return func(tn *emulator.Tenant) {
		tn.Mutate(func(s *emulator.State) {
			if a := s.Application("scepman"); a != nil {
				if sp := s.ServicePrincipalByAppID(a.AppID); sp != nil {
					sp.VisibleAt = time.Now().Add(d)
				}
			}
		})
	}
}

// azureAnswers counts the answers of real Azure's replication and removal behaviours that a cell met:
// 403 on createServicePrincipal, 400 and 404 on assignAppRole, 400 on removePassword, 409 on Key Vault
// writes (ObjectIsBeingRecovered).
func azureAnswers(st emulator.Stats) map[string]int {
	return map[string]int{
		"createServicePrincipal 403": st.Op(emulator.OpCreateServicePrincipal).Statuses[http.StatusForbidden],
		"assignAppRole 400":          st.Op(emulator.OpAssignAppRole).Statuses[http.StatusBadRequest],
		"assignAppRole 404":          st.Op(emulator.OpAssignAppRole).Statuses[http.StatusNotFound],
		"removePassword 400":         st.Op(emulator.OpRemovePassword).Statuses[http.StatusBadRequest],
		"recoverDeletedSecret 409":   st.Op(emulator.OpRecoverDeletedSecret).Statuses[http.StatusConflict],
		"setSecret 409":              st.Op(emulator.OpSetSecret).Statuses[http.StatusConflict],
	}
}

var faultKinds = []faultKind{
	{name: "429 Retry-After", fault: emulator.Fault{Kind: emulator.FaultStatus, Status: http.StatusTooManyRequests, RetryAfter: 1, Times: statusTimes}},
	{name: "503", fault: emulator.Fault{Kind: emulator.FaultStatus, Status: http.StatusServiceUnavailable, Times: statusTimes}},
	{name: "500", fault: emulator.Fault{Kind: emulator.FaultStatus, Status: http.StatusInternalServerError, Times: statusTimes}},
	{name: "drop", fault: emulator.Fault{Kind: emulator.FaultDrop}},
	{name: "drop after apply", fault: emulator.Fault{Kind: emulator.FaultDrop, After: true}, writesOnly: true},
	{name: "timeout", fault: emulator.Fault{Kind: emulator.FaultHang}, runTimeout: hangTimeout},
	{name: "timeout after apply", fault: emulator.Fault{Kind: emulator.FaultHang, After: true}, writesOnly: true, runTimeout: hangTimeout},
	{name: "replication delay", condition: true, delay: replicationDelay, graphOnly: true},
	// Real Azure, reference section 8: a fresh application's service principal is refused with 403 and
	// an assignment to a fresh principal with 400 "Not a valid reference update." or a plain 404. The
	// engine reads each object back before it refers to it, and the emulator's replication delay is the
	// same for reads and writes, so the hooks make the first service principal creation and the first
	// assignment land on a replica behind the one that served the read-back, as real Azure's may.
	// Its rows are the two writes that meet these answers.
	{name: "replication 403/400/404", condition: true, realBackoff: true, delay: azureReplicationDelay,
		only:    []string{emulator.OpCreateServicePrincipal, emulator.OpAssignAppRole},
		realism: emulator.GraphRealism{SPCreateForbidden: true, AssignmentReferenceErrors: true},
		hooks: []emulator.Fault{
			{Service: emulator.ServiceGraph, Operation: emulator.OpCreateServicePrincipal, Kind: emulator.FaultHook, Hook: appBehind(azureReplicationDelay)},
			{Service: emulator.ServiceGraph, Operation: emulator.OpAssignAppRole, Kind: emulator.FaultHook, Hook: spBehind(azureReplicationDelay)},
		},
		proof: func(st emulator.Stats, op string) int {
			if op == emulator.OpCreateServicePrincipal {
				return st.Op(op).Statuses[http.StatusForbidden]
			}
			return st.Op(op).Statuses[http.StatusBadRequest] + st.Op(op).Statuses[http.StatusNotFound]
		}},
	// Lagging replicas: for a while after each write, half the reads do not show recent writes (and a
	// service principal creation checked by such a replica is refused with 403).
	{name: "lagging replicas", condition: true, graphOnly: true, realBackoff: true,
		realism: emulator.GraphRealism{LagWindow: lagWindow, SPCreateForbidden: true, RemovePasswordUnknown400: true}},
	// Every read lags: the rotation removes the replaced credential, and the next run, at once, still
	// reads it from a lagging replica and removes it again, which Graph answers with 400 (removePassword
	// of an unknown keyId) while reads go on showing the credential for a while.
	{name: "lag, removal already gone", condition: true, only: []string{emulator.OpRemovePassword}, realBackoff: true,
		realism: emulator.GraphRealism{LagWindow: lagWindow, LagProbability: 1, RemovePasswordUnknown400: true},
		proof: func(st emulator.Stats, _ string) int {
			return st.Op(emulator.OpRemovePassword).Statuses[http.StatusBadRequest]
		}},
	// Two runs at once find the secret soft-deleted; one recovers it, the other is told 409
	// ObjectIsBeingRecovered (on its recover, or on its write) while the recovery runs.
	{name: "being recovered", condition: true, only: []string{emulator.OpRecoverDeletedSecret}, concurrent: true, realBackoff: true, recovery: longRecovery,
		proof: func(st emulator.Stats, _ string) int {
			return st.Op(emulator.OpRecoverDeletedSecret).Statuses[http.StatusConflict] + st.Op(emulator.OpSetSecret).Statuses[http.StatusConflict]
		}},
}

// writeOps are the operations that change the tenant.
var writeOps = map[string]bool{
	emulator.OpUpsertApplication: true, emulator.OpCreateServicePrincipal: true, emulator.OpAssignAppRole: true,
	emulator.OpAddPassword: true, emulator.OpRemovePassword: true, emulator.OpSetSecret: true,
	emulator.OpRefreshConfigReferences: true, emulator.OpRecoverDeletedSecret: true,
}

const refreshSite = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/scepman/providers/Microsoft.Web/sites/scepman"

// relPath is a way through the engine on which operations are reached.
type relPath struct {
	name     string
	fresh    bool // the run is the tenant's first provision: cut short, it may leave nothing yet
	opts     func() emulator.Options
	settings map[string]string
	setup    func(t *testing.T, w *world, c context.Context)
	run      func(w *world, e *appreg.Engine, c context.Context) (string, error) // the affected function; a note on success
	ops      []string
}

var relPaths = []relPath{
	{
		name:  "provision",
		fresh: true,
		opts:  func() emulator.Options { return emulator.Options{} },
		run:   runProvision,
		ops: []string{emulator.OpGetApplication, emulator.OpUpsertApplication, emulator.OpGetServicePrincipal,
			emulator.OpCreateServicePrincipal, emulator.OpListAppRoleAssignments, emulator.OpAssignAppRole,
			emulator.OpAddPassword, emulator.OpGetSecret, emulator.OpSetSecret,
			emulator.OpIdentityToken, emulator.OpLoginToken, emulator.OpLoginOpenIDConfiguration},
	},
	{
		// Provisioned, renewed once, then 151 days on: the next rotation renews the secret, removes the
		// credential whose overlap has passed, and refreshes the site's Key Vault references.
		name:     "rotate",
		opts:     func() emulator.Options { return emulator.Options{} },
		settings: map[string]string{config.EnvRefreshSiteIDs: refreshSite},
		setup: func(t *testing.T, w *world, c context.Context) {
			w.tenant.SetSite(refreshSite, http.StatusOK)
			renewedAndDue(t, w, c)
		},
		run: runRotate,
		ops: []string{emulator.OpGetApplication, emulator.OpGetServicePrincipal, emulator.OpListAppRoleAssignments,
			emulator.OpGetSecret, emulator.OpListSecretVersions, emulator.OpAddPassword, emulator.OpSetSecret,
			emulator.OpRemovePassword, emulator.OpRefreshConfigReferences, emulator.OpLoginToken},
	},
	{
		// A tenant whose app management policy caps secrets at 90 days, readable by the identity.
		name:  "lifetime policy",
		fresh: true,
		opts: func() emulator.Options {
			return emulator.Options{GraphRoles: append(emulator.DefaultGraphRoles(), emulator.RolePolicyReadAll)}
		},
		setup: func(t *testing.T, w *world, c context.Context) { w.tenant.SetMaxPasswordLifetime(90 * 24 * time.Hour) },
		run:   runProvision,
		ops:   []string{emulator.OpGetAppManagementPolicy},
	},
	{
		// Provisioned, then an admin deleted the secret (Key Vault's soft delete): provision recovers it
		// with all its versions, which takes a second (reads 404 meanwhile, writes 409
		// ObjectIsBeingRecovered), and goes on from the recovered state.
		name: "provision, secret deleted",
		opts: func() emulator.Options { return emulator.Options{} },
		setup: func(t *testing.T, w *world, c context.Context) {
			if _, err := w.engine().Provision(c); err != nil {
				t.Fatalf("setting up: provision: %v", err)
			}
			softDelete(t, w)
		},
		run: runProvision,
		ops: []string{emulator.OpGetDeletedSecret, emulator.OpRecoverDeletedSecret},
	},
	{
		// The rotate path's tenant (renewed once, due again), then the secret deleted: the rotation
		// recovers it, then renews it (the setSecret that follows a recovery).
		name:  "rotate, secret deleted",
		opts:  func() emulator.Options { return emulator.Options{} },
		setup: func(t *testing.T, w *world, c context.Context) { renewedAndDue(t, w, c); softDelete(t, w) },
		run:   runRotate,
		ops:   []string{emulator.OpRecoverDeletedSecret, emulator.OpSetSecret},
	},
	{
		// Provisioned, then the current version disabled (403 SecretDisabled on read): provision reads
		// its metadata from the list of versions and stores a new secret; the disabled version's
		// credential stays for the overlap like any replaced one.
		name: "provision, version disabled",
		opts: func() emulator.Options { return emulator.Options{} },
		setup: func(t *testing.T, w *world, c context.Context) {
			if _, err := w.engine().Provision(c); err != nil {
				t.Fatalf("setting up: provision: %v", err)
			}
			disableCurrent(t, w)
		},
		run: runProvision,
		ops: []string{emulator.OpGetSecret, emulator.OpListSecretVersions, emulator.OpSetSecret},
	},
	{
		// Provisioned, renewed once, the overlap passed (not due), then the current version disabled: the
		// rotation stores a new secret and removes the credential whose overlap has passed.
		name: "rotate, version disabled",
		opts: func() emulator.Options { return emulator.Options{} },
		setup: func(t *testing.T, w *world, c context.Context) {
			if _, err := w.engine().Provision(c); err != nil {
				t.Fatalf("setting up: provision: %v", err)
			}
			w.clock.Advance(151 * 24 * time.Hour)
			if _, err := w.engine().Rotate(c); err != nil {
				t.Fatalf("setting up: first renewal: %v", err)
			}
			w.clock.Advance(49 * time.Hour)
			disableCurrent(t, w)
		},
		run: runRotate,
		ops: []string{emulator.OpSetSecret},
	},
}

// renewedAndDue provisions, renews 151 days later, and moves the clock 151 days on: the next rotation
// renews the secret and removes the credential whose overlap has passed.
func renewedAndDue(t *testing.T, w *world, c context.Context) {
	t.Helper()
	if _, err := w.engine().Provision(c); err != nil {
		t.Fatalf("setting up: provision: %v", err)
	}
	w.clock.Advance(151 * 24 * time.Hour)
	if _, err := w.engine().Rotate(c); err != nil {
		t.Fatalf("setting up: first renewal: %v", err)
	}
	w.clock.Advance(151 * 24 * time.Hour)
}

// softDelete deletes the secret as an admin does; its recoveries take recoveryDelay.
func softDelete(t *testing.T, w *world) {
	t.Helper()
	if err := w.tenant.DeleteSecret(secretName); err != nil {
		t.Fatalf("setting up: %v", err)
	}
	w.tenant.SetRecoveryDelay(recoveryDelay)
}

// disableCurrent disables the secret's current version as an admin does.
func disableCurrent(t *testing.T, w *world) {
	t.Helper()
	if err := w.tenant.DisableCurrentVersion(secretName); err != nil {
		t.Fatalf("setting up: %v", err)
	}
}

func runProvision(w *world, e *appreg.Engine, c context.Context) (string, error) {
	r, err := e.Provision(c)
	w.record(r, err)
	return "", err
}

func runRotate(w *world, e *appreg.Engine, c context.Context) (string, error) {
	r, err := e.Rotate(c)
	w.record(r, err)
	if err != nil {
		return "", err
	}
	for _, f := range r.Refresh {
		if f.Error != "" {
			return "refresh failed", nil
		}
	}
	return "", nil
}

// serviceOf is the emulator service of an operation name.
func serviceOf(op string) string { return op[:strings.IndexByte(op, '.')] }

// relHygiene collects the engine's logs, results and errors of every reliability test of this package
// and the secrets their tenants issued; each test scans at its end.
var relHygiene = &emulatortest.Hygiene{}

// record keeps a result and an error for the secret scan, as the handler would answer them.
func (w *world) record(result any, err error) {
	if b, jerr := json.Marshal(result); jerr == nil {
		relHygiene.Record(b)
	}
	if err != nil {
		relHygiene.Record([]byte(err.Error()))
	}
}

// logged is a context whose logger writes JSON lines, as the handler's, into the secret scan.
func logged(c context.Context) context.Context {
	return logctx.With(c, slog.New(slog.NewJSONHandler(relHygiene.Writer(), &slog.HandlerOptions{Level: slog.LevelDebug})))
}

// runCtx is a run's context: the cell's deadline, the scanned logger.
func runCtx(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	if d == 0 {
		d = time.Minute
	}
	c, cancel := context.WithTimeout(context.Background(), d)
	return logged(c), cancel
}

// outcome is the short text of a run's result for a table cell.
func outcome(note string, err error) string {
	if err == nil {
		if note != "" {
			return "ok (" + note + ")"
		}
		return "ok"
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timed out"
	case errors.Is(err, appreg.ErrThrottled):
		return "throttled"
	case errors.Is(err, appreg.ErrIdentity):
		return "no token"
	case errors.Is(err, appreg.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, appreg.ErrNotReplicated):
		return "not replicated"
	case errors.Is(err, appreg.ErrConcurrency):
		return "concurrency"
	}
	return "failed"
}

// cellResult is one cell of the matrix.
type cellResult struct {
	path, op, fault string
	fired           int
	first, second   string
	firstErr        string
	unnamed         int // credentials no version names, right after the faulty run
	violations      []string
	answers         map[string]int // azureAnswers of the cell's first and second run
}

func (r cellResult) text() string {
	inv := "✓"
	if len(r.violations) > 0 {
		inv = "✗"
	}
	first := r.first
	if r.unnamed > 0 {
		first += "†"
	}
	return fmt.Sprintf("%s → %s %s", first, r.second, inv)
}

// shortCells are the cells of the short variant (`make test`): every operation and every fault kind at
// least once, the writes after apply, and none of the slow ones (Key Vault's 5xx retries take seconds).
var shortCells = map[string]bool{
	"provision/graph.getApplication/429 Retry-After":             true,
	"provision/graph.upsertApplication/drop after apply":         true,
	"provision/graph.upsertApplication/replication delay":        true,
	"provision/graph.getServicePrincipal/500":                    true,
	"provision/graph.createServicePrincipal/timeout after apply": true,
	"provision/graph.assignAppRole/drop after apply":             true,
	"provision/graph.addPassword/503":                            true,
	"provision/graph.addPassword/drop after apply":               true,
	"provision/graph.addPassword/timeout after apply":            true,
	"rotate/keyvault.listSecretVersions/drop":                    true,
	"provision/keyvault.setSecret/timeout":                       true,
	"provision/keyvault.setSecret/drop after apply":              true,
	"provision/keyvault.setSecret/timeout after apply":           true,
	"provision/identity.token/drop":                              true,
	"rotate/graph.listAppRoleAssignments/drop":                   true,
	"rotate/keyvault.getSecret/drop":                             true,
	"rotate/graph.addPassword/drop after apply":                  true,
	"rotate/graph.addPassword/timeout after apply":               true,
	"rotate/keyvault.setSecret/drop after apply":                 true,
	"rotate/keyvault.setSecret/timeout after apply":              true,
	"rotate/graph.removePassword/drop after apply":               true,
	"rotate/graph.removePassword/timeout after apply":            true,
	"rotate/arm.refreshConfigReferences/drop after apply":        true,
	"lifetime policy/graph.getDefaultAppManagementPolicy/500":    true,
	// The sign-in check (issue 11): the token service refusing for a while, on a check and on a renewal.
	"provision/login.token/503":  true,
	"rotate/login.token/timeout": true,
	// Real Azure (reference section 8): one cell per behaviour.
	"provision/graph.createServicePrincipal/replication 403/400/404":          true,
	"rotate/graph.removePassword/lag, removal already gone":                   true,
	"rotate, secret deleted/keyvault.recoverDeletedSecret/drop after apply":   true,
	"provision, secret deleted/keyvault.recoverDeletedSecret/being recovered": true,
	"rotate, version disabled/keyvault.setSecret/timeout after apply":         true,
}

func TestReliabilityFaultMatrix(t *testing.T) {
	full := report.Full()
	var results []cellResult
	planned := 0
	inMatrix := map[string]bool{}
	for _, p := range relPaths {
		for _, op := range p.ops {
			for _, k := range faultKinds {
				if !k.appliesTo(op) {
					continue
				}
				name := p.name + "/" + op + "/" + k.name
				inMatrix[name] = true
				if !full && !shortCells[name] {
					continue
				}
				planned++
				t.Run(name, func(t *testing.T) {
					results = append(results, runCell(t, p, op, k))
				})
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(shortCells)) {
		if !inMatrix[name] {
			t.Errorf("shortCells names %q, which is no cell of the matrix (renamed?): the short variant would silently skip it", name)
		}
	}
	printMatrix(t, results, planned)
	scanHygiene(t)
}

// runCell runs one cell and checks it.
func runCell(t *testing.T, p relPath, op string, k faultKind) cellResult {
	t.Helper()
	res := cellResult{path: p.name, op: op, fault: k.name}
	opts := p.opts()
	if k.condition && opts.Seed == 0 {
		opts.Seed = cellSeed(p.name + "/" + op + "/" + k.name) // lagging replicas draw from it
	}
	w := newWorld(t, opts, p.settings)
	relHygiene.Watch(t, w.tenant)
	if p.setup != nil {
		c, cancel := runCtx(t, 0)
		p.setup(t, w, c)
		cancel()
	}
	check := func(step string, phase emulatortest.Phase, noneYet bool) {
		want := w.want()
		want.NoneYet = noneYet
		res.violations = append(res.violations, emulatortest.Verify(t, step, w.tenant, want, phase)...)
	}
	w.tenant.ResetStats()
	if k.condition {
		w.tenant.SetReplicationDelay(k.delay)
		w.tenant.SetGraphRealism(k.realism)
		for _, h := range k.hooks {
			w.tenant.AddFault(h)
		}
		if k.recovery > 0 {
			w.tenant.SetRecoveryDelay(k.recovery)
		}
	} else {
		f := k.fault
		f.Service, f.Operation = serviceOf(op), op
		w.tenant.AddFault(f)
	}
	engine := w.engine
	if k.realBackoff {
		engine = func() *appreg.Engine {
			e := w.engine()
			e.SetBackoff(appreg.DefaultBackoff)
			return e
		}
	}

	began := time.Now()
	c, cancel := runCtx(t, k.runTimeout)
	note, err := firstRun(w, p, engine, k.concurrent, c)
	cancel()
	took := []time.Duration{time.Since(began)}
	res.first = outcome(note, err)
	if err != nil {
		res.firstErr = err.Error()
	}
	st := w.tenant.Stats()
	res.fired = st.FaultsFired
	if !k.condition && res.fired == 0 {
		t.Errorf("%s was not reached under %s: the cell proves nothing", op, k.name)
	}
	check("after the faulty run", emulatortest.Always, p.fresh) // a first provision cut short may leave nothing yet
	res.unnamed = len(emulatortest.Unnamed(w.tenant.Snapshot(), w.want()))
	w.tenant.ClearFaults()

	c, cancel = runCtx(t, 0)
	began = time.Now()
	note, err = p.run(w, engine(), c) // again, as the next call or the next day's timer would
	cancel()
	took = append(took, time.Since(began))
	res.second = outcome(note, err)
	if err != nil {
		t.Errorf("the run after the fault: %v", err)
	}
	check("after the second run", emulatortest.Converged, false)
	if k.condition {
		st = w.tenant.Stats()
		res.answers = azureAnswers(st)
		if k.proof != nil {
			res.fired = k.proof(st, op)
		} else {
			res.fired = st.Op(op).Requests
		}
		if res.fired == 0 {
			t.Errorf("%s was not met under %s: the cell proves nothing", op, k.name)
		}
	}

	// Past the orphan rule, a rotation removes what the faulty run left behind.
	if k.condition {
		w.tenant.SetReplicationDelay(0)
		w.tenant.SetGraphRealism(emulator.GraphRealism{})
		time.Sleep(k.delay) // everything created so far has replicated
	}
	w.clock.Advance(appreg.OrphanAge + time.Minute)
	c, cancel = runCtx(t, 0)
	_, err = runRotate(w, w.engine(), c)
	cancel()
	if err != nil {
		t.Errorf("the cleaning rotation: %v", err)
	}
	check("after the cleaning rotation", emulatortest.Cleaned, false)
	t.Logf("%s under %s: first %s (%s), second %s, fired %d; the runs took %v", op, k.name, res.first, res.firstErr, res.second, res.fired, took)
	return res
}

// firstRun runs the path's function once, or twice at once (two instances of the app) when concurrent:
// then the note is the first's, the error every run's.
func firstRun(w *world, p relPath, engine func() *appreg.Engine, concurrent bool, c context.Context) (string, error) {
	if !concurrent {
		return p.run(w, engine(), c)
	}
	engines := []*appreg.Engine{engine(), engine()}
	notes, errs := make([]string, len(engines)), make([]error, len(engines))
	var wg sync.WaitGroup
	for i, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			notes[i], errs[i] = p.run(w, e, c)
		}()
	}
	wg.Wait()
	return notes[0], errors.Join(errs...)
}

// cellSeed is a cell's seed for the tenant's RNG: each cell its own draws, the same in every run.
func cellSeed(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64() | 1
}

// printMatrix prints the cells that ran to their end (results) of the planned ones.
func printMatrix(t *testing.T, results []cellResult, planned int) {
	t.Helper()
	cols := []string{"path", "operation"}
	for _, k := range faultKinds {
		cols = append(cols, k.name)
	}
	tab := report.Table{
		File:   "1-fault-matrix",
		Title:  "Fault matrix (" + report.Mode() + "): first run → second run, invariants ✓ held / ✗ broken; – not applicable, · not in this variant",
		Header: cols,
	}
	type key struct{ path, op string }
	cells := map[key]map[string]cellResult{}
	var order []key
	for _, r := range results {
		k := key{r.path, r.op}
		if cells[k] == nil {
			cells[k] = map[string]cellResult{}
			order = append(order, k)
		}
		cells[k][r.fault] = r
	}
	for _, p := range relPaths {
		for _, op := range p.ops {
			k := key{p.name, op}
			if !slices.Contains(order, k) {
				continue
			}
			row := []string{p.name, op}
			for _, fk := range faultKinds {
				switch r, ok := cells[k][fk.name]; {
				case !fk.appliesTo(op):
					row = append(row, "–")
				case !ok:
					row = append(row, "·")
				default:
					row = append(row, r.text())
				}
			}
			tab.Rows = append(tab.Rows, row)
		}
	}
	held, broken, failedFirst, secondOK := 0, 0, 0, 0
	met := map[string]map[string]int{} // condition column -> Azure answer -> how often its cells met it
	for _, r := range results {
		if len(r.violations) == 0 {
			held++
		} else {
			broken++
		}
		if r.firstErr != "" {
			failedFirst++
		}
		if strings.HasPrefix(r.second, "ok") {
			secondOK++
		}
		for a, n := range r.answers {
			if met[r.fault] == nil {
				met[r.fault] = map[string]int{}
			}
			met[r.fault][a] += n
		}
	}
	summary := fmt.Sprintf("%d cells: invariants held in %d, broken in %d; the first run failed in %d, and the second run succeeded in %d of %d",
		len(results), held, broken, failedFirst, secondOK, len(results))
	if ended := planned - len(results); ended > 0 {
		summary += fmt.Sprintf("; %d more cells stopped before their end (the test log says why)", ended)
	}
	tab.Notes = append(tab.Notes, summary,
		"† the faulty run left a credential that no version names: Graph added it but its answer was lost, so the run never learnt its keyId; the rotation an hour later removed it (orphan rule)",
		"each cell: a fresh tenant; the first run with the fault (status faults fire 4 times, beyond the SDKs' 3 retries; drop and timeout once; timeout cuts the run at 2 s), the second run without it in a new engine, then 61 minutes later a rotation; the invariants are checked after each",
		fmt.Sprintf("real Azure (reference section 8), a condition during the first and the second run: **replication 403/400/404** a replication delay of %s, and the first service principal creation and the first assignment landing on a replica that lacks what they refer to although a read-back showed it: 403 \"the backing application … must in the local tenant\", 400 \"Not a valid reference update.\" and plain 404 until it replicated (its rows: the two writes that meet these answers); **lagging replicas** for %s after each write half the reads (seeded per cell) served by a replica without the recent writes, and removePassword of an unknown keyId answering 400; **lag, removal already gone** every read lagging, so the run right after a rotation still sees the credential it removed and removes it again (400); **being recovered** two runs at once on a soft-deleted secret whose recovery takes %s (409 ObjectIsBeingRecovered). These columns run the engines with the production back-off",
			azureReplicationDelay, lagWindow, longRecovery),
		fmt.Sprintf("rows **…, secret deleted**: the secret soft-deleted before the run, every recovery taking %s (reads 404 and writes 409 meanwhile); rows **…, version disabled**: the current version disabled before the run (reads 403 SecretDisabled)", recoveryDelay))
	for _, k := range faultKinds {
		if m := met[k.name]; k.condition && (k.realism != emulator.GraphRealism{} || k.recovery > 0) && len(m) > 0 {
			var parts []string
			for _, a := range slices.Sorted(maps.Keys(m)) {
				if m[a] > 0 {
					parts = append(parts, fmt.Sprintf("%s ×%d", a, m[a]))
				}
			}
			if len(parts) == 0 {
				parts = []string{"none of the counted answers"}
			}
			tab.Notes = append(tab.Notes, fmt.Sprintf("Azure's answers met under %s: %s", k.name, strings.Join(parts, ", ")))
		}
	}
	if err := tab.Print(); err != nil {
		t.Error(err)
	}
}

// scanHygiene fails the test when any result, error or log line of this package's reliability tests
// holds a secret a tenant issued (the identity header included).
func scanHygiene(t *testing.T) {
	t.Helper()
	secrets, outputs, hits := relHygiene.Scan()
	for _, h := range hits {
		t.Error("secret hygiene: " + h)
	}
	line := fmt.Sprintf("%d issued secrets checked against %d results, errors and log writes; %d found", secrets, outputs, len(hits))
	t.Log("secret hygiene: " + line)
	if err := report.Write("5-hygiene-engine", "Secret hygiene, in-process engine runs (fault matrix, races: results, errors, debug logs; each tenant's IDENTITY_HEADER value among the secrets): "+line+"\n"); err != nil {
		t.Error(err)
	}
}

// TestReliabilityRaces: sixteen concurrent provision calls on a fresh tenant, each its own process,
// interleaved with four rotate runs; then again with replication delay. Afterwards the invariants hold and
// the tenant holds one application, one service principal, one assignment per permission and the
// current credential; past the orphan rule and the overlap, rotations leave the current credential only.
func TestReliabilityRaces(t *testing.T) {
	tab := report.Table{
		File:  "3-races",
		Title: "Races: 16 concurrent provision calls (16 processes) interleaved with 4 rotate runs on a fresh tenant",
		Header: []string{"replication delay", "provision ok", "201 Created", "rotate ok", "rotate failed (no application yet)",
			"apps", "SPs", "assignments per permission", "credentials / versions after", "after cleanup", "invariants"},
	}
	for _, delay := range []time.Duration{0, time.Second} {
		t.Run(fmt.Sprintf("replication delay %s", delay), func(t *testing.T) {
			w := newWorld(t, emulator.Options{}, nil)
			relHygiene.Watch(t, w.tenant)
			w.tenant.SetReplicationDelay(delay)
			var violations []string
			check := func(step string, phase emulatortest.Phase) {
				violations = append(violations, w.check(step, phase)...)
			}
			type run struct {
				rotate  bool
				created bool
				err     error
			}
			runs := make([]run, 20)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range runs {
				runs[i].rotate = i%5 == 4 // P P P P R P P P P R …
				e := w.engine()           // a process each
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					time.Sleep(time.Duration(i) * 5 * time.Millisecond) // interleave the starts
					c, cancel := runCtx(t, 0)
					defer cancel()
					if runs[i].rotate {
						r, err := e.Rotate(c)
						w.record(r, err)
						runs[i].err = err
						return
					}
					r, err := e.Provision(c)
					w.record(r, err)
					runs[i].created, runs[i].err = r.Created, err
				}()
			}
			close(start)
			wg.Wait()
			provOK, created, rotOK, rotNoApp := 0, 0, 0, 0
			for i, r := range runs {
				switch {
				case r.rotate && r.err == nil:
					rotOK++
				case r.rotate && errors.Is(r.err, appreg.ErrNotFound):
					rotNoApp++ // the application did not exist (or had not replicated) yet
				case r.err != nil:
					t.Errorf("run %d (rotate %v): %v", i, r.rotate, r.err)
				default:
					provOK++
					if r.created {
						created++
					}
				}
			}
			if created != 1 {
				t.Errorf("%d provision calls created the application, want exactly 1", created)
			}
			check("after the race", emulatortest.Converged)
			s := w.tenant.Snapshot()
			app := s.Application("scepman")
			if app == nil || s.Secret(secretName) == nil {
				t.Fatal("no application or no secret after the race")
			}
			sps, perPerm := 0, map[string]int{}
			for _, sp := range s.ServicePrincipals {
				if app != nil && sp.AppID == app.AppID {
					sps++
					for _, a := range s.AssignmentsOf(sp.ID) {
						perPerm[a.AppRoleID]++
					}
				}
			}
			creds, versions := len(app.PasswordCredentials), len(s.Secret(secretName).Versions)

			// Past the orphan rule, then past the overlap: the current credential is all that stays.
			time.Sleep(delay)
			w.tenant.SetReplicationDelay(0)
			for _, step := range []time.Duration{appreg.OrphanAge + time.Minute, 49 * time.Hour} {
				w.clock.Advance(step)
				c, cancel := runCtx(t, 0)
				r, err := w.engine().Rotate(c)
				w.record(r, err)
				cancel()
				if err != nil {
					t.Fatalf("cleaning rotation: %v", err)
				}
				check("after a cleaning rotation", emulatortest.Cleaned)
			}
			left := len(w.tenant.Snapshot().Application("scepman").PasswordCredentials)
			if left != 1 {
				t.Errorf("%d credentials after the overlap, want 1", left)
			}
			var pp []string
			for _, p := range appreg.PermissionsFor(0) {
				pp = append(pp, fmt.Sprintf("%s: %d", p.Value, perPerm[p.ID]))
			}
			tab.Rows = append(tab.Rows, []string{delay.String(), fmt.Sprintf("%d/16", provOK), fmt.Sprint(created),
				fmt.Sprintf("%d/4", rotOK), fmt.Sprint(rotNoApp), fmt.Sprint(len(s.Applications)), fmt.Sprint(sps),
				strings.Join(pp, ", "), fmt.Sprintf("%d / %d", creds, versions), fmt.Sprintf("%d credential", left),
				emulatortest.Verdict(violations)})
		})
	}
	tab.Notes = []string{
		"every run is its own engine (a process of its own): nothing serialises them but the tenant",
		"a provision call that finds no secret stores one, so concurrent first calls each store a version; every version names a credential the application holds, and the rotations remove the replaced ones once their overlap has passed",
	}
	if err := tab.Print(); err != nil {
		t.Error(err)
	}
	scanHygiene(t)
}
