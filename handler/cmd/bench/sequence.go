package main

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

// Operations measured, in the order of a sequence.
const (
	opFresh       = "provision, fresh"
	opNothing     = "provision, nothing to do"
	opStatus      = "status"
	opRotateKeep  = "rotate, not due"
	opRotateRenew = "rotate, renews"
	opOverlap     = "status, during the overlap (2 credentials)"
	opColdStatus  = "status, first call of a new process"
)

var opOrder = []string{opFresh, opNothing, opStatus, opColdStatus, opRotateKeep, opRotateRenew, opOverlap}

// floor is the least an operation can cost. Graph reads that need nothing from each other share one
// $batch, and so do writes; no read-backs, no retries; requests that need nothing from each other go out
// at once. The sign-in check signs in once per resource of the level (2 at level 0: Microsoft Graph and
// the Intune API); a renewal signs the new secret in once more, for one resource, before it stores it.
type floor struct {
	requests   int    // to Graph and Key Vault
	tokens     int    // sign-in token requests to the token service
	metadata   int    // the token service's metadata (the tenant's OpenID configuration): the first check of a process only
	sequential int    // round trips that must follow one another, every service included
	tokensWhy  string // what the sign-in token requests are for
	why        string // the floor's requests, in their order
}

// firstCheck tells whether the operation holds the first sign-in check of its handler process.
func (f floor) firstCheck() bool { return f.metadata > 0 }

// floors of the operations. The managed identity's tokens and Key Vault's challenge are not counted as
// requests but are round trips in sequence where something waits for them.
var floors = map[string]floor{
	opFresh: {4, 2, 1, 5, "1 check × 2 resources",
		"MI token → $batch{PATCH app create-if-missing, GET 2 resource SPs} ‖ OpenID configuration (the tenant id is the MI token's) → " +
			"$batch{POST SP, addPassword} → $batch{2 app role assignments} ‖ PUT secret → 2 sign-in tokens at once (the roles need the assignments)"},
	opNothing: {2, 2, 0, 2, "1 check × 2 resources",
		"$batch{GET app, SP, assignments} ‖ GET secret → 2 sign-in tokens at once (they need the secret)"},
	opStatus: {2, 2, 0, 2, "1 check × 2 resources",
		"$batch{GET app, SP, assignments} ‖ GET secret → 2 sign-in tokens at once (they need the secret)"},
	opColdStatus: {4, 2, 1, 4, "1 check × 2 resources",
		"MI token → $batch{GET app, 2 resource SPs} ‖ OpenID configuration → GET SP (needs the appId) → GET assignments (needs the SP id) ‖ " +
			"2 sign-in tokens at once (they need the secret: challenge → MI token → GET secret, beside the Graph reads)"},
	opRotateKeep: {2, 2, 0, 2, "1 check × 2 resources",
		"GET app ‖ GET secret → 2 sign-in tokens at once"},
	opRotateRenew: {4, 3, 0, 4, "1 check × 2 resources + 1 acceptance of the new secret (1 resource)",
		"GET app ‖ GET secret → addPassword ‖ 2 sign-in tokens with the current secret → 1 with the new one (accepted yet?) → PUT secret"},
	opOverlap: {3, 2, 0, 2, "1 check × 2 resources",
		"$batch{GET app, SP, assignments} ‖ GET secret → list versions (a 2nd credential: is it stale?) ‖ 2 sign-in tokens"},
}

// measure is what one operation cost, as the emulated tenant counted it.
type measure struct {
	roundTrips int // Graph and Key Vault requests, without Key Vault's 401 challenge
	writes     int // POST/PATCH/PUT/DELETE that reached Graph or Key Vault
	errors     int // Graph and Key Vault answers >= 400 other than 401 (the challenge) and 404 (absence)
	idTokens   int // token requests to the managed identity endpoint
	challenges int // 401 answers of Graph and Key Vault

	signInTokens      int // POST {tenant}/oauth2/v2.0/token
	openIDConfig      int // GET {tenant}/v2.0/.well-known/openid-configuration
	instanceDiscovery int // GET common/discovery/instance
	signInRefused     int // token requests answered >= 400
	loginOther        int // other requests to the token service

	latency time.Duration
	ops     map[string]int // requests per operation, challenges left out
}

// sequence is one run of every operation on a fresh tenant.
type sequence struct {
	m       map[string]measure
	peakRSS int64 // of the handler that ran provision, status and rotation
}

func sequences(o options, rtt time.Duration) ([]sequence, error) {
	var out []sequence
	for i := range o.reps {
		s, err := runSequence(o, rtt)
		if err != nil {
			return nil, fmt.Errorf("sequence %d of %d, %s added: %w", i+1, o.reps, rtt, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// measureOf reads what the tenant counted since its last ResetStats.
func measureOf(st emulator.Stats, latency time.Duration) measure {
	g, kv := st.Service(emulator.ServiceGraph), st.Service(emulator.ServiceKeyVault)
	m := measure{
		roundTrips:        g.Requests + kv.Requests - g.Challenges - kv.Challenges,
		writes:            g.Writes + kv.Writes,
		idTokens:          st.Service(emulator.ServiceIdentity).Requests,
		challenges:        g.Challenges + kv.Challenges,
		signInTokens:      st.Op(emulator.OpLoginToken).Requests,
		openIDConfig:      st.Op(emulator.OpLoginOpenIDConfiguration).Requests,
		instanceDiscovery: st.Op(emulator.OpLoginInstanceDiscovery).Requests,
		signInRefused:     st.Op(emulator.OpLoginToken).Errors,
		latency:           latency,
		ops:               map[string]int{},
	}
	m.loginOther = st.Service(emulator.ServiceLogin).Requests - m.signInTokens - m.openIDConfig - m.instanceDiscovery
	for name, os := range st.Ops {
		if strings.HasPrefix(name, emulator.ServiceIdentity+".") {
			continue
		}
		if strings.HasPrefix(name, emulator.ServiceLogin+".") {
			m.ops[name] = os.Requests
			continue
		}
		m.ops[name] = os.Requests - os.Statuses[http.StatusUnauthorized]
		for status, n := range os.Statuses {
			if status >= 400 && status != http.StatusUnauthorized && status != http.StatusNotFound {
				m.errors += n
			}
		}
	}
	return m
}

// status is what the bench reads of a status answer.
type status struct {
	Compliant bool `json:"compliant"`
	Findings  []struct {
		Code string `json:"code"`
	} `json:"findings"`
	Secret struct {
		SignIn string `json:"signIn"`
	} `json:"secret"`
}

// provision is what the bench reads of a provision answer.
type provision struct {
	Changes []string `json:"changes"`
	Secret  struct {
		SignIn string `json:"signIn"`
	} `json:"secret"`
}

// rotation is what the bench reads of the rotate function's answer.
type rotation struct {
	ReturnValue struct {
		Renewed bool `json:"renewed"`
	} `json:"ReturnValue"`
}

// quietStatus calls GET /api/status and wants a compliant tenant without findings whose secret signs in.
func quietStatus(p *proc) error {
	var st status
	if err := p.call(http.MethodGet, "/api/status", nil, http.StatusOK, &st); err != nil {
		return err
	}
	if !st.Compliant || len(st.Findings) > 0 || st.Secret.SignIn != "accepted" {
		return fmt.Errorf("status: compliant %v, findings %v, signIn %q; want compliant without findings, signIn accepted",
			st.Compliant, st.Findings, st.Secret.SignIn)
	}
	return nil
}

func runSequence(o options, rtt time.Duration) (sequence, error) {
	seq := sequence{m: map[string]measure{}}
	ten, env, cleanup, err := newTenant(o)
	if err != nil {
		return seq, err
	}
	defer cleanup()
	p, err := startHandler(o.handler, env)
	if err != nil {
		return seq, err
	}
	defer p.stop()
	ten.SetLatency(rtt)

	measureOp := func(name string, p *proc, fn func() error) error {
		ten.ResetStats()
		start := time.Now()
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w\nhandler output:\n%s", name, err, p.out)
		}
		seq.m[name] = measureOf(ten.Stats(), time.Since(start))
		return nil
	}

	steps := []struct {
		name string
		fn   func() error
	}{
		{opFresh, func() error {
			var prov provision
			if err := p.call(http.MethodPost, "/api/provision", nil, http.StatusCreated, &prov); err != nil {
				return err
			}
			if prov.Secret.SignIn != "accepted" {
				return fmt.Errorf("fresh provision: secret.signIn %q, want accepted (the tenant has no acceptance delay)", prov.Secret.SignIn)
			}
			return nil
		}},
		{opNothing, func() error {
			var prov provision
			if err := p.call(http.MethodPost, "/api/provision", nil, http.StatusOK, &prov); err != nil {
				return err
			}
			if len(prov.Changes) > 0 {
				return fmt.Errorf("changes %q, want none", prov.Changes)
			}
			return nil
		}},
		{opStatus, func() error { return quietStatus(p) }},
		{opRotateKeep, func() error {
			var rot rotation
			if err := p.call(http.MethodPost, "/rotate", timerBody("rotate"), http.StatusOK, &rot); err != nil {
				return err
			}
			if rot.ReturnValue.Renewed {
				return errors.New("renewed a secret that was not due")
			}
			return nil
		}},
		{opRotateRenew, func() error {
			if _, err := ten.ExpireSecret(secretName, 10*24*time.Hour); err != nil {
				return fmt.Errorf("moving the secret into the renewal window: %w", err)
			}
			var rot rotation
			if err := p.call(http.MethodPost, "/rotate", timerBody("rotate"), http.StatusOK, &rot); err != nil {
				return err
			}
			if !rot.ReturnValue.Renewed {
				return errors.New("did not renew a secret inside the renewal window")
			}
			return nil
		}},
		{opOverlap, func() error {
			var st status
			if err := p.call(http.MethodGet, "/api/status", nil, http.StatusOK, &st); err != nil {
				return err
			}
			if !st.Compliant || st.Secret.SignIn != "accepted" {
				return fmt.Errorf("status during the overlap: compliant %v, signIn %q, findings %v; want compliant, accepted",
					st.Compliant, st.Secret.SignIn, st.Findings)
			}
			return nil
		}},
	}
	for _, s := range steps {
		if err := measureOp(s.name, p, s.fn); err != nil {
			return seq, err
		}
		if s.name != opStatus {
			continue
		}
		// A second process on the same tenant, in the same state: its first call pays for the managed
		// identity's tokens, the challenge, the resource service principals, the ids of the application's
		// objects and the token service's metadata.
		p2, err := startHandler(o.handler, env)
		if err != nil {
			return seq, err
		}
		err = measureOp(opColdStatus, p2, func() error { return quietStatus(p2) })
		p2.stop()
		if err != nil {
			return seq, err
		}
	}
	if seq.peakRSS, err = peakRSS(p.cmd.Process.Pid); err != nil {
		return seq, err
	}
	if u := ten.Unknown(); len(u) > 0 {
		return seq, fmt.Errorf("the emulated tenant saw requests it does not know: %q", u)
	}
	return seq, nil
}

// medianOf takes the median of one figure of one operation over the sequences.
func medianOf(seqs []sequence, op string, f func(measure) int) int {
	var v []int
	for _, s := range seqs {
		v = append(v, f(s.m[op]))
	}
	sort.Ints(v)
	return v[len(v)/2]
}
