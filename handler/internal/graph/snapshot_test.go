package graph_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
	"github.com/scepman-appreg/appreg/handler/internal/graph"
)

// world is what a snapshot test reads: the application, its service principal and the resources.
type world struct {
	app    emulator.Application
	spID   string
	graph  string // Microsoft Graph's service principal id
	grants int    // assignments granted to the application's service principal
}

// provisioned creates the application, its service principal and n of the level 2 permissions' app role
// assignments (n ≤ 5), and reads the resource service principals.
func provisioned(t *testing.T, ctx context.Context, ten *emulator.Tenant, d *graph.Directory, n int) world {
	t.Helper()
	w := world{app: mustUpsert(t, ctx, ten, d, "scepman"), grants: n}
	sp, err := d.CreateServicePrincipal(ctx, w.app.AppID)
	if err != nil {
		t.Fatalf("CreateServicePrincipal: %v", err)
	}
	w.spID = sp.ID
	msGraph, err := d.ServicePrincipal(ctx, appreg.GraphAppID)
	if err != nil {
		t.Fatalf("ServicePrincipal(Microsoft Graph): %v", err)
	}
	w.graph = msGraph.ID
	grants := []string{directoryReadAll, managedDevices, deviceConfig, riskyUsers}
	for i := range n {
		resource, role := msGraph.ID, scepChallenge
		if i < len(grants) {
			role = grants[i]
		} else {
			intune, err := d.ServicePrincipal(ctx, appreg.IntuneAPIAppID)
			if err != nil {
				t.Fatalf("ServicePrincipal(Intune API): %v", err)
			}
			resource = intune.ID
		}
		if _, err := d.AssignAppRole(ctx, sp.ID, resource, role); err != nil {
			t.Fatalf("AssignAppRole(%s): %v", role, err)
		}
	}
	return w
}

// graphRequests is how many authenticated HTTP requests Graph received (a $batch is one).
func graphRequests(ten *emulator.Tenant) int {
	s := ten.Stats().Service(emulator.ServiceGraph)
	return s.Requests - s.Challenges
}

func TestSnapshot(t *testing.T) {
	both := []string{appreg.GraphAppID, appreg.IntuneAPIAppID}
	tests := []struct {
		name string
		opts emulator.Options
		// grants < 0: nothing is provisioned; else the application, its service principal and that many
		// assignments.
		grants int
		query  func(w world) appreg.SnapshotQuery
		setup  func(t *testing.T, ten *emulator.Tenant)
		check  func(t *testing.T, w world, s appreg.Snapshot)

		wantKind       error
		wantStatus     int
		wantNeed       string
		wantRetryAfter time.Duration
		wantRequests   int            // authenticated Graph requests of the snapshot
		wantOps        map[string]int // requests per operation, batched ones included
	}{
		{
			name: "nothing provisioned: the application is absent, the resources read in one batch", grants: -1,
			query: func(world) appreg.SnapshotQuery { return appreg.SnapshotQuery{UniqueName: "scepman", Resources: both} },
			check: func(t *testing.T, w world, s appreg.Snapshot) {
				if s.App != nil || s.SP != nil || s.Assigned != nil {
					t.Errorf("App, SP, Assigned = %v, %v, %v; want none", s.App, s.SP, s.Assigned)
				}
				for _, id := range both {
					if sp := s.Resources[id]; sp == nil || sp.AppID != id || len(sp.AppRoles) == 0 {
						t.Errorf("resource %s = %+v, want its service principal with its app roles", id, sp)
					}
				}
			},
			wantRequests: 1,
			wantOps:      map[string]int{emulator.OpBatch: 1, emulator.OpGetApplication: 1, emulator.OpGetServicePrincipal: 2},
		},
		{
			name: "ids known: application, service principal and assignments in one batch", grants: 2,
			query: func(w world) appreg.SnapshotQuery {
				return appreg.SnapshotQuery{UniqueName: "scepman", AppID: w.app.AppID, SPID: w.spID}
			},
			check: func(t *testing.T, w world, s appreg.Snapshot) {
				if s.App == nil || s.App.AppID != w.app.AppID || s.App.ObjectID != w.app.ID || s.App.SignInAudience != appreg.AudienceMyOrg ||
					len(s.App.RequiredResourceAccess) != 2 {
					t.Errorf("App = %+v, want application %s as provisioned", s.App, w.app.AppID)
				}
				if s.SP == nil || s.SP.ID != w.spID || s.SP.AppID != w.app.AppID {
					t.Errorf("SP = %+v, want %s", s.SP, w.spID)
				}
				if len(s.Assigned) != 2 || s.Assigned[0].PrincipalID != w.spID || s.Assigned[0].ResourceID != w.graph {
					t.Errorf("Assigned = %+v, want the 2 assignments of %s", s.Assigned, w.spID)
				}
				if s.Resources != nil {
					t.Errorf("Resources = %v, want none (not asked)", s.Resources)
				}
			},
			wantRequests: 1,
			wantOps: map[string]int{emulator.OpBatch: 1, emulator.OpGetApplication: 1, emulator.OpGetServicePrincipal: 1,
				emulator.OpListAppRoleAssignments: 1},
		},
		{
			name: "assignments beyond the first page: the next pages follow the batch", grants: 5, opts: emulator.Options{PageSize: 2},
			query: func(w world) appreg.SnapshotQuery {
				return appreg.SnapshotQuery{UniqueName: "scepman", AppID: w.app.AppID, SPID: w.spID}
			},
			check: func(t *testing.T, w world, s appreg.Snapshot) {
				seen := map[string]bool{}
				for _, a := range s.Assigned {
					seen[a.ID] = true
				}
				if len(s.Assigned) != 5 || len(seen) != 5 {
					t.Errorf("Assigned = %+v, want 5 distinct assignments", s.Assigned)
				}
			},
			wantRequests: 3, // the batch, then pages 2 and 3
			wantOps:      map[string]int{emulator.OpBatch: 1, emulator.OpListAppRoleAssignments: 3},
		},
		{
			name: "an appId without service principal: nil, not an error", grants: -1,
			query: func(w world) appreg.SnapshotQuery {
				return appreg.SnapshotQuery{UniqueName: "scepman", AppID: emulator.NewGUID()}
			},
			check: func(t *testing.T, w world, s appreg.Snapshot) {
				if s.App != nil || s.SP != nil {
					t.Errorf("App, SP = %v, %v; want none", s.App, s.SP)
				}
			},
			wantRequests: 1,
		},
		{
			name: "a service principal id that no longer exists: ErrNotFound", grants: 1,
			query: func(w world) appreg.SnapshotQuery {
				return appreg.SnapshotQuery{UniqueName: "scepman", AppID: w.app.AppID, SPID: emulator.NewGUID()}
			},
			wantKind: appreg.ErrNotFound, wantStatus: http.StatusNotFound, wantRequests: 1,
		},
		{
			name: "a tenant without Intune: that resource is nil", grants: -1, opts: emulator.Options{NoIntune: true},
			query: func(world) appreg.SnapshotQuery { return appreg.SnapshotQuery{Resources: both} },
			check: func(t *testing.T, w world, s appreg.Snapshot) {
				if sp, ok := s.Resources[appreg.IntuneAPIAppID]; !ok || sp != nil {
					t.Errorf("Resources[Intune API] = %v (present %v), want a nil entry", sp, ok)
				}
				if s.Resources[appreg.GraphAppID] == nil {
					t.Errorf("Resources[Microsoft Graph] = nil, want its service principal")
				}
			},
			wantRequests: 1,
		},
		{
			name: "a single read goes out alone", grants: 0,
			query: func(world) appreg.SnapshotQuery { return appreg.SnapshotQuery{UniqueName: "scepman"} },
			check: func(t *testing.T, w world, s appreg.Snapshot) {
				if s.App == nil || s.App.AppID != w.app.AppID {
					t.Errorf("App = %+v, want %s", s.App, w.app.AppID)
				}
			},
			wantRequests: 1,
			wantOps:      map[string]int{emulator.OpBatch: 0, emulator.OpGetApplication: 1},
		},
		{
			name: "a forbidden item names the permission", grants: -1,
			opts:     emulator.Options{GraphRoles: []string{emulator.RoleApplicationReadWriteOwnedBy}},
			query:    func(world) appreg.SnapshotQuery { return appreg.SnapshotQuery{UniqueName: "scepman", Resources: both} },
			wantKind: appreg.ErrForbidden, wantStatus: http.StatusForbidden, wantNeed: graph.NeedApplicationReadAll, wantRequests: 1,
		},
		{
			name: "a throttled item is classified, not retried inside the batch", grants: -1,
			setup: func(t *testing.T, ten *emulator.Tenant) {
				ten.AddFault(emulator.Fault{Service: emulator.ServiceGraph, Operation: emulator.OpGetServicePrincipal,
					Status: http.StatusTooManyRequests, RetryAfter: 1, Times: emulator.Always})
			},
			query:    func(world) appreg.SnapshotQuery { return appreg.SnapshotQuery{UniqueName: "scepman", Resources: both} },
			wantKind: appreg.ErrThrottled, wantStatus: http.StatusTooManyRequests, wantRetryAfter: time.Second, wantRequests: 1,
		},
		{
			name: "a failed item: 500 is unavailable", grants: -1,
			setup: func(t *testing.T, ten *emulator.Tenant) {
				ten.AddFault(emulator.Fault{Service: emulator.ServiceGraph, Operation: emulator.OpGetApplication, Status: http.StatusInternalServerError})
			},
			query:    func(world) appreg.SnapshotQuery { return appreg.SnapshotQuery{UniqueName: "scepman", Resources: both} },
			wantKind: appreg.ErrUnavailable, wantStatus: http.StatusInternalServerError, wantRequests: 1,
		},
		{
			name: "the batch itself dropped", grants: -1,
			setup: func(t *testing.T, ten *emulator.Tenant) {
				ten.AddFault(emulator.Fault{Service: emulator.ServiceGraph, Operation: emulator.OpBatch, Kind: emulator.FaultDrop})
			},
			query:    func(world) appreg.SnapshotQuery { return appreg.SnapshotQuery{UniqueName: "scepman", Resources: both} },
			wantKind: appreg.ErrUnavailable, wantRequests: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ten := emulatortest.Start(t, tt.opts)
			d := newDirectory(t, ten, nil)
			ctx := ctxFor(t)
			var w world
			if tt.grants >= 0 {
				w = provisioned(t, ctx, ten, d, tt.grants)
			} else if _, err := d.TenantID(ctx); err != nil { // the token, so that only the snapshot is counted
				t.Fatalf("TenantID: %v", err)
			}
			if tt.setup != nil {
				tt.setup(t, ten)
			}
			ten.ResetStats()
			snap, err := d.Snapshot(ctx, tt.query(w))

			if tt.wantKind == nil && err != nil {
				t.Fatalf("Snapshot: %v", err)
			}
			if tt.wantKind != nil {
				var se *appreg.ServiceError
				switch {
				case !errors.Is(err, tt.wantKind) || !errors.As(err, &se):
					t.Errorf("err = %v, want a *ServiceError of kind %v", err, tt.wantKind)
				case tt.wantStatus != 0 && se.Status != tt.wantStatus:
					t.Errorf("status = %d, want %d (err %v)", se.Status, tt.wantStatus, err)
				case se.Need != tt.wantNeed:
					t.Errorf("need = %q, want %q (err %v)", se.Need, tt.wantNeed, err)
				case se.RetryAfter != tt.wantRetryAfter:
					t.Errorf("RetryAfter = %v, want %v (err %v)", se.RetryAfter, tt.wantRetryAfter, err)
				}
			}
			if tt.check != nil && err == nil {
				tt.check(t, w, snap)
			}
			if got := graphRequests(ten); tt.wantRequests >= 0 && got != tt.wantRequests {
				t.Errorf("Graph requests = %d, want %d", got, tt.wantRequests)
			}
			for op, want := range tt.wantOps {
				if got := ten.Stats().Op(op).Requests; got != want {
					t.Errorf("%s requests = %d, want %d", op, got, want)
				}
			}
		})
	}
}
