package main

import (
	"slices"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/emulator/emulatortest"
)

// rtCount is what one call cost at the emulated tenant: authenticated requests per service (a $batch is
// one; Key Vault's 401 challenge is left out) and writes.
type rtCount struct {
	graph, vault, writes int
}

// rtMeasure runs fn and counts what reached the tenant.
func rtMeasure(t *testing.T, w *world, fn func() error) rtCount {
	t.Helper()
	w.tenant.ResetStats()
	if err := fn(); err != nil {
		t.Fatal(err)
	}
	st := w.tenant.Stats()
	g, kv := st.Service(emulator.ServiceGraph), st.Service(emulator.ServiceKeyVault)
	return rtCount{graph: g.Requests - g.Challenges, vault: kv.Requests - kv.Challenges, writes: g.Writes + kv.Writes}
}

func codes(fs []appreg.Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Code)
	}
	return out
}

// TestRoundTrips counts the requests of the calls that run most often (issue 7; `make bench` measures
// the same on the binary): after the first call of a process, a provision with nothing to do and a status
// read the application, its service principal and their assignments in one Graph batch, beside the
// current Key Vault secret, and write nothing; the versions of the secret are listed only while a second
// credential exists. Each step also checks that the answer is right, so that no read was saved at the
// cost of a finding.
func TestRoundTrips(t *testing.T) {
	const day = 24 * time.Hour
	w := newWorld(t, emulator.Options{PageSize: 25}, nil)
	e := w.engine()
	c := ctx(t)
	status := func(e *appreg.Engine, wantCodes ...string) func() error {
		return func() error {
			r, err := e.Status(c)
			if err != nil {
				return err
			}
			if got := codes(r.Findings); !slices.Equal(got, append([]string{}, wantCodes...)) {
				t.Errorf("status findings = %v, want %v", got, wantCodes)
			}
			return nil
		}
	}
	rotate := func(wantRenewed bool, wantRemoved int) func() error {
		return func() error {
			r, err := e.Rotate(c)
			if err != nil {
				return err
			}
			if r.Renewed != wantRenewed || len(r.Removed) != wantRemoved {
				t.Errorf("rotate renewed %v, removed %v; want renewed %v, %d removed", r.Renewed, r.Removed, wantRenewed, wantRemoved)
			}
			return nil
		}
	}
	steps := []struct {
		name string
		// before changes the world first (not counted).
		before func()
		run    func() error
		want   rtCount
		// stale: a credential outlived its overlap, as a status (not a rotation) leaves it.
		stale bool
	}{
		{name: "fresh provision, first call of the process",
			run: func() error {
				r, err := e.Provision(c)
				if err == nil && !r.Created {
					t.Errorf("fresh provision: created = false")
				}
				return err
			},
			// $batch{app, 2 resources}; upsert, read back; create SP, read back; 2 assignments, read
			// back; addPassword. Key Vault: the current secret, the deleted one of that name (soft
			// delete: a missing secret may be recoverable), then the new version.
			want: rtCount{graph: 9, vault: 3, writes: 6}},
		{name: "provision with nothing to do",
			run: func() error {
				r, err := e.Provision(c)
				if err == nil && len(r.Changes) > 0 {
					t.Errorf("changes = %v, want none", r.Changes)
				}
				return err
			},
			want: rtCount{graph: 1, vault: 1}},
		{name: "status", run: status(e), want: rtCount{graph: 1, vault: 1}},
		{name: "status, first call of another process",
			// $batch{app, 2 resources}, then the service principal (needs the appId), then the assignments
			// (needs its id). MSAL's token cache is process-wide, so no token is counted here anyway.
			run: status(w.engine()), want: rtCount{graph: 3, vault: 1}},
		{name: "rotate, not due", run: rotate(false, 0), want: rtCount{graph: 1, vault: 1}},
		{name: "rotate, renews",
			before: func() { w.clock.Advance(151 * day) },
			// No versions listed: the old credential is the one the observed current version names.
			run: rotate(true, 0), want: rtCount{graph: 2, vault: 2, writes: 2}},
		{name: "status during the overlap: the versions are listed", run: status(e), want: rtCount{graph: 1, vault: 2}},
		{name: "status after the overlap: the old credential is stale",
			before: func() { w.clock.Advance(49 * time.Hour) },
			run:    status(e, appreg.CodeCredentialStale), want: rtCount{graph: 1, vault: 2}, stale: true},
		{name: "rotate removes it", run: rotate(false, 1), want: rtCount{graph: 2, vault: 2, writes: 1}},
		{name: "status with one credential again", run: status(e), want: rtCount{graph: 1, vault: 1}},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		if got := rtMeasure(t, w, s.run); got != s.want {
			t.Errorf("%s: requests %+v, want %+v", s.name, got, s.want)
		}
		phase := emulatortest.Cleaned
		if s.stale {
			phase = emulatortest.Converged
		}
		w.check(s.name, phase)
	}
}

// TestRememberedIDsFollowTheTenant: the ids of the application's objects that a process remembers to
// batch its reads must never hide a change: a deleted service principal, an application deleted and
// created again under the same uniqueName.
func TestRememberedIDsFollowTheTenant(t *testing.T) {
	w := newWorld(t, emulator.Options{PageSize: 25}, nil)
	e := w.engine()
	c := ctx(t)
	first, err := e.Provision(c)
	if err != nil {
		t.Fatalf("provision: %v", err)
	}
	steps := []struct {
		name      string
		drift     func(s *emulator.State)
		wantCodes []string
	}{
		{name: "service principal deleted", wantCodes: []string{appreg.CodeServicePrincipalMissing, appreg.CodeConsentMissing, appreg.CodeConsentMissing},
			drift: func(s *emulator.State) {
				sp := s.ServicePrincipalByAppID(first.AppID)
				s.AppRoleAssignments = slices.DeleteFunc(s.AppRoleAssignments, func(a emulator.AppRoleAssignment) bool { return a.PrincipalID == sp.ID })
				s.ServicePrincipals = slices.DeleteFunc(s.ServicePrincipals, func(p emulator.ServicePrincipal) bool { return p.ID == sp.ID })
			}},
		{name: "application deleted", wantCodes: []string{appreg.CodeAppMissing, appreg.CodeSecretNotOnApp},
			drift: func(s *emulator.State) {
				app := s.Application("scepman")
				sp := s.ServicePrincipalByAppID(app.AppID)
				s.AppRoleAssignments = slices.DeleteFunc(s.AppRoleAssignments, func(a emulator.AppRoleAssignment) bool { return a.PrincipalID == sp.ID })
				s.ServicePrincipals = slices.DeleteFunc(s.ServicePrincipals, func(p emulator.ServicePrincipal) bool { return p.ID == sp.ID })
				s.Applications = slices.DeleteFunc(s.Applications, func(a emulator.Application) bool { return a.AppID == app.AppID })
			}},
	}
	for _, s := range steps {
		if _, err := e.Status(c); err != nil { // the process knows the current ids
			t.Fatalf("%s: the status before the drift: %v", s.name, err)
		}
		w.tenant.Mutate(s.drift)
		r, err := e.Status(c)
		if err != nil {
			t.Fatalf("%s: status: %v", s.name, err)
		}
		if got := codes(r.Findings); !slices.Equal(got, s.wantCodes) {
			t.Errorf("%s: status findings = %v, want %v", s.name, got, s.wantCodes)
		}
		p, err := e.Provision(c)
		if err != nil {
			t.Fatalf("%s: repairing provision: %v", s.name, err)
		}
		r, err = e.Status(c)
		if err != nil || !r.Compliant || r.AppID != p.AppID {
			t.Errorf("%s: status after repair = %+v, %v; want compliant, application %s", s.name, r, err, p.AppID)
		}
		got := rtMeasure(t, w, func() error { _, err := e.Status(c); return err })
		if want := (rtCount{graph: 1, vault: 1}); got != want {
			t.Errorf("%s: the next status took %+v, want %+v (one batch with the new ids)", s.name, got, want)
		}
	}
}
