package main

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/config"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
)

// clock is the injected clock of these tests: the engine's and the emulated tenant's.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 3, 30, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// world is an emulated tenant on the injected clock, and the settings every engine of a test uses.
type world struct {
	t      *testing.T
	clock  *clock
	tenant *emulator.Tenant
	getenv func(string) string
}

// newWorld starts an emulated tenant on an injected clock (emulatortest.Start: each world has its own
// managed identity, as MSAL's token cache is process-wide). The engines' settings are the tenant's
// environment and settings, nothing of the process's.
func newWorld(t *testing.T, opts emulator.Options, settings map[string]string) *world {
	t.Helper()
	w := &world{t: t, clock: newClock()}
	opts.Now = w.clock.Now
	w.tenant = emulatortest.Start(t, opts) // also points MSAL's identity variables at it (package azure)
	env := emulatortest.Env(t, w.tenant)
	env[config.EnvClientID] = w.tenant.IdentityClientID()
	maps.Copy(env, settings)
	w.getenv = func(k string) string { return env[k] }
	return w
}

// engine builds a new engine, as a new process of the function app would.
func (w *world) engine() *appreg.Engine {
	w.t.Helper()
	cfg, err := config.Load(w.getenv)
	if err != nil {
		w.t.Fatalf("config: %v", err)
	}
	e, err := newEngine(cfg, w.getenv, w.clock.Now)
	if err != nil {
		w.t.Fatalf("newEngine: %v", err)
	}
	e.SetBackoff(appreg.Backoff{Base: 5 * time.Millisecond, Max: 50 * time.Millisecond})
	return e
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

const secretName = config.DefaultSecretName

// want is what the oracle checks this world against: the contract's defaults at level 0, on the
// world's clock, with the engine's orphan rule.
func (w *world) want() emulatortest.Want {
	return emulatortest.Want{Now: w.clock.Now(), OrphanAge: appreg.OrphanAge}
}

// check fails the test for every invariant of the phase that the tenant breaks now.
func (w *world) check(step string, phase emulatortest.Phase) []string {
	w.t.Helper()
	return emulatortest.Verify(w.t, step, w.tenant, w.want(), phase)
}

func TestAYearOfDailyRotations(t *testing.T) {
	w := newWorld(t, emulator.Options{}, nil)
	e := w.engine()
	if _, err := e.Provision(ctx(t)); err != nil {
		t.Fatalf("provision: %v", err)
	}
	renewals, maxHeld := 0, 0
	var renewedOn []int
	for day := 1; day <= 365; day++ {
		w.clock.Advance(24 * time.Hour)
		r, err := w.engine().Rotate(ctx(t)) // a new process every day, as on a serverless plan
		if err != nil {
			t.Fatalf("day %d: rotate: %v", day, err)
		}
		if r.Renewed {
			renewals++
			renewedOn = append(renewedOn, day)
		}
		held := len(w.tenant.Snapshot().Application("scepman").PasswordCredentials)
		maxHeld = max(maxHeld, held)
		w.check("day "+strconv.Itoa(day), emulatortest.Cleaned)
		st, err := e.Status(ctx(t))
		if err != nil || !st.Compliant {
			t.Fatalf("day %d: status %+v, %v; want compliant", day, st, err)
		}
	}
	t.Logf("a year of daily rotations: %d renewals (days %v), at most %d credentials held at once", renewals, renewedOn, maxHeld)
	// 180-day secrets renewed 30 days before expiry: on days 150 and 300.
	if renewals != 2 || renewedOn[0] != 150 || renewedOn[1] != 300 {
		t.Errorf("renewals = %d on days %v, want 2 on days 150 and 300", renewals, renewedOn)
	}
	if maxHeld != 2 {
		t.Errorf("at most %d credentials held, want 2 (the current one and, during the overlap, its predecessor)", maxHeld)
	}
}

func TestRotationBoundaries(t *testing.T) {
	type step struct {
		at        time.Duration // after provision
		renewed   bool
		removedOK int // credentials removed by this run
	}
	const day = 24 * time.Hour
	lifetime, window, overlap := 180*day, 30*day, 48*time.Hour
	tests := []struct {
		name  string
		steps []step
	}{
		{"renewal window", []step{
			{lifetime - window - time.Second, false, 0},
			{lifetime - window, true, 0},
		}},
		{"overlap", []step{
			{lifetime - window, true, 0},
			{lifetime - window + overlap - time.Second, false, 0},
			{lifetime - window + overlap, false, 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, emulator.Options{}, nil)
			start := w.clock.Now()
			if _, err := w.engine().Provision(ctx(t)); err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.steps {
				w.clock.Set(start.Add(s.at))
				r, err := w.engine().Rotate(ctx(t))
				if err != nil {
					t.Fatalf("rotate at +%s: %v", s.at, err)
				}
				if r.Renewed != s.renewed || len(r.Removed) != s.removedOK {
					t.Errorf("rotate at +%s: renewed %v, removed %d; want %v, %d", s.at, r.Renewed, len(r.Removed), s.renewed, s.removedOK)
				}
				w.check("+"+s.at.String(), emulatortest.Cleaned)
			}
		})
	}
	t.Run("orphan rule", func(t *testing.T) {
		w := newWorld(t, emulator.Options{}, nil)
		if _, err := w.engine().Provision(ctx(t)); err != nil {
			t.Fatal(err)
		}
		orphanAt := w.clock.Now()
		w.tenant.Mutate(func(s *emulator.State) {
			app := s.Application("scepman")
			app.PasswordCredentials = append(app.PasswordCredentials, emulator.PasswordCredential{
				KeyID: emulator.NewGUID(), DisplayName: "left by a crashed run", SecretText: "orphan-secret-text-000001",
				StartDateTime: orphanAt, EndDateTime: orphanAt.Add(lifetime)})
		})
		for _, tc := range []struct {
			after   time.Duration
			removed int
		}{{time.Hour - time.Second, 0}, {time.Hour, 1}} {
			w.clock.Set(orphanAt.Add(tc.after))
			r, err := w.engine().Rotate(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Removed) != tc.removed {
				t.Errorf("orphan %s old: removed %d, want %d", tc.after, len(r.Removed), tc.removed)
			}
		}
		w.check("orphan", emulatortest.Cleaned)
	})
}

func TestConcurrentRotations(t *testing.T) {
	for _, withProvision := range []bool{false, true} {
		name := "five rotate runs"
		if withProvision {
			name = "rotate racing provision"
		}
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, emulator.Options{}, nil)
			if _, err := w.engine().Provision(ctx(t)); err != nil {
				t.Fatal(err)
			}
			w.clock.Advance(151 * 24 * time.Hour) // inside the renewal window
			if withProvision {
				w.tenant.Mutate(func(s *emulator.State) { s.Secrets = nil }) // provision must store a secret too
			}
			var wg sync.WaitGroup
			errs := make(chan error, 6)
			for i := range 5 {
				e := w.engine() // five processes
				wg.Add(1)
				go func() {
					defer wg.Done()
					var err error
					if withProvision && i == 0 {
						_, err = e.Provision(ctx(t))
					} else {
						_, err = e.Rotate(ctx(t))
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("concurrent run: %v", err)
				}
			}
			w.check("after the race", emulatortest.Converged)
			s := w.tenant.Snapshot()
			t.Logf("after the race: %d credentials, %d versions", len(s.Application("scepman").PasswordCredentials), len(s.Secret(secretName).Versions))
			// Once the overlap has passed, one more run leaves the current credential alone.
			w.clock.Advance(49 * time.Hour)
			if _, err := w.engine().Rotate(ctx(t)); err != nil {
				t.Fatal(err)
			}
			w.check("after the overlap", emulatortest.Cleaned)
			if got := len(w.tenant.Snapshot().Application("scepman").PasswordCredentials); got != 1 {
				t.Errorf("credentials after the overlap = %d, want 1", got)
			}
		})
	}
}

// TestCrashAfterEachWriteOfARotation makes each write of a rotation happen and then either loses its
// answer (the connection drops; the run goes on and retries) or never answers until the run's context ends
// (the run stops right after the write, as when the process is killed), then runs again.
func TestCrashAfterEachWriteOfARotation(t *testing.T) {
	for _, op := range []string{emulator.OpAddPassword, emulator.OpSetSecret, emulator.OpRemovePassword} {
		for _, kind := range []emulator.FaultKind{emulator.FaultDrop, emulator.FaultHang} {
			t.Run(op+" "+kind.String(), func(t *testing.T) {
				w := newWorld(t, emulator.Options{}, nil)
				if _, err := w.engine().Provision(ctx(t)); err != nil {
					t.Fatal(err)
				}
				w.clock.Advance(151 * 24 * time.Hour)
				if op == emulator.OpRemovePassword {
					if _, err := w.engine().Rotate(ctx(t)); err != nil { // renew now, remove after the overlap
						t.Fatal(err)
					}
					w.clock.Advance(49 * time.Hour)
				}
				service := emulator.ServiceGraph
				if op == emulator.OpSetSecret {
					service = emulator.ServiceKeyVault
				}
				w.tenant.AddFault(emulator.Fault{Service: service, Operation: op, Kind: kind, After: true})
				crashed, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := w.engine().Rotate(crashed)
				cancel()
				if w.tenant.Stats().FaultsFired != 1 {
					t.Fatalf("the fault on %s did not fire", op)
				}
				t.Logf("run with %s after %s: err=%v", kind, op, err)
				w.check("after the crash", emulatortest.Always)
				if _, err := w.engine().Rotate(ctx(t)); err != nil {
					t.Fatalf("the run after the crash: %v", err)
				}
				w.check("after the next run", emulatortest.Converged)
				w.clock.Advance(49 * time.Hour) // past the overlap and the orphan age: everything left over goes
				if _, err := w.engine().Rotate(ctx(t)); err != nil {
					t.Fatal(err)
				}
				w.check("after the overlap", emulatortest.Cleaned)
				if got := len(w.tenant.Snapshot().Application("scepman").PasswordCredentials); got != 1 {
					t.Errorf("credentials in the end = %d, want 1", got)
				}
			})
		}
	}
}

func TestRefreshAfterRotation(t *testing.T) {
	const site = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/scepman/providers/Microsoft.Web/sites/scepman"
	for _, status := range []int{200, 403, 500} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			w := newWorld(t, emulator.Options{}, map[string]string{config.EnvRefreshSiteIDs: site})
			w.tenant.SetSite(site, status)
			if _, err := w.engine().Provision(ctx(t)); err != nil {
				t.Fatal(err)
			}
			w.clock.Advance(151 * 24 * time.Hour)
			r, err := w.engine().Rotate(ctx(t))
			if err != nil {
				t.Fatalf("rotate with the refresh answering %d: %v, want success", status, err)
			}
			if !r.Renewed || len(r.Refresh) != 1 || r.Refresh[0].SiteID != site || r.Refresh[0].Status != status {
				t.Fatalf("rotate = %+v, want renewed and the refresh of %s reported with %d", r, site, status)
			}
			if failed := r.Refresh[0].Error != ""; failed != (status >= 400) {
				t.Errorf("refresh error %q for status %d", r.Refresh[0].Error, status)
			}
			if status == 403 && !strings.Contains(r.Refresh[0].Error, "Website Contributor") {
				t.Errorf("refresh error %q does not name the Website Contributor role", r.Refresh[0].Error)
			}
			if got := w.tenant.Stats().SiteRefreshes[site]; got < 1 {
				t.Errorf("the site saw %d refreshes, want at least 1", got)
			}
			w.check("after the rotation", emulatortest.Converged)
		})
	}
}

func TestRotateWithoutApplication(t *testing.T) {
	w := newWorld(t, emulator.Options{}, nil)
	_, err := w.engine().Rotate(ctx(t))
	if !errors.Is(err, appreg.ErrNotFound) || !strings.Contains(err.Error(), "provision") {
		t.Errorf("rotate on a tenant without the application = %v, want ErrNotFound telling to provision first", err)
	}
	if got := w.tenant.Stats().Service(emulator.ServiceGraph).Writes; got != 0 {
		t.Errorf("%d writes, want 0", got)
	}
}

// newEngine builds the engine of the first instance (the only one without APPREG_INSTANCES), as run does.
func newEngine(cfg config.Config, getenv func(string) string, now func() time.Time) (*appreg.Engine, error) {
	ins, err := newInstances(cfg, getenv, now)
	if err != nil {
		return nil, err
	}
	return ins[0].engine, nil
}
