package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/server"
)

// The fleet of issue 14: one compliance run over many instances in many emulated tenants.
const (
	fleetTenants   = 20  // the home tenant and 19 customers
	fleetInstances = 200 // 10 per tenant
	maxFleetRSS    = 128 << 20
	maxFleetRatio  = 1.5 // wall time ÷ floor
)

// fleetResult is what one fleet run measured: the counts of measureOf (latency is the run's wall time),
// the tenants reached and the handler's peak RSS.
type fleetResult struct {
	measure
	tenantsReached int // tenants whose Graph or token service was reached
	peakRSS        int64
}

// fleetEnv adds APPREG_INSTANCES and APPREG_FEDERATED_APP_ID for a fleet on ten: fleetInstances instances
// spread over the home tenant and fleetTenants-1 customer tenants that consented to the federated
// application.
func fleetEnv(ten *emulator.Tenant, env []string) ([]string, error) {
	fedApp := ten.RegisterFederatedApp("SCEPman app registrations (MSP)")
	type instance struct {
		Name       string `json:"name"`
		TenantID   string `json:"tenantId,omitempty"`
		UniqueName string `json:"uniqueName"`
		SecretName string `json:"secretName"`
	}
	var ins []instance
	perTenant := fleetInstances / fleetTenants
	for ti := range fleetTenants {
		tid := ""
		if ti > 0 {
			tid = fmt.Sprintf("%08x-0000-4000-8000-%012x", ti, ti)
			if err := ten.AddTenant(tid, false); err != nil {
				return nil, fmt.Errorf("adding tenant %s: %w", tid, err)
			}
			if err := ten.ConsentFederatedApp(tid, fedApp, emulator.RoleApplicationReadWriteOwnedBy,
				emulator.RoleApplicationReadAll, emulator.RoleAppRoleAssignmentReadWriteAll); err != nil {
				return nil, fmt.Errorf("consenting in tenant %s: %w", tid, err)
			}
		}
		for i := range perTenant {
			name := fmt.Sprintf("t%02d-i%02d", ti, i)
			ins = append(ins, instance{Name: name, TenantID: tid, UniqueName: "scepman-" + name, SecretName: "fleet-" + name})
		}
	}
	b, err := json.Marshal(ins)
	if err != nil {
		return nil, err
	}
	return append(env, "APPREG_INSTANCES="+string(b), "APPREG_FEDERATED_APP_ID="+fedApp), nil
}

// runFleet provisions the fleet without added latency, then runs the compliance timer once at rtt on the
// same process (warm: as a long-lived worker does every day), and once more as the first call of a new
// process (cold: every tenant's tokens, ids and metadata fetched again), and counts what each sent.
func runFleet(o options, rtt time.Duration) (warm, cold fleetResult, err error) {
	ten, env, cleanup, err := newTenant(o)
	if err != nil {
		return warm, cold, err
	}
	defer cleanup()
	if env, err = fleetEnv(ten, env); err != nil {
		return warm, cold, err
	}
	p, err := startHandler(o.handler, env)
	if err != nil {
		return warm, cold, err
	}
	defer p.stop()

	var prov struct {
		Instances map[string]json.RawMessage `json:"instances"`
	}
	if err := p.call(http.MethodPost, "/api/provision", nil, http.StatusOK, &prov); err != nil {
		return warm, cold, fmt.Errorf("provisioning the fleet: %w\nhandler output (tail):\n%s", err, tail(p.out.String(), 20))
	}
	if len(prov.Instances) != fleetInstances {
		return warm, cold, fmt.Errorf("provision answered for %d instances, want %d", len(prov.Instances), fleetInstances)
	}
	ten.SetLatency(rtt)
	if warm, err = fleetCompliance(ten, p); err != nil {
		return warm, cold, fmt.Errorf("warm: %w", err)
	}
	p2, err := startHandler(o.handler, env)
	if err != nil {
		return warm, cold, err
	}
	defer p2.stop()
	if cold, err = fleetCompliance(ten, p2); err != nil {
		return warm, cold, fmt.Errorf("cold: %w", err)
	}
	if u := ten.Unknown(); len(u) > 0 {
		return warm, cold, fmt.Errorf("the emulated tenants saw requests they do not know: %q", u)
	}
	return warm, cold, nil
}

// fleetCompliance runs the compliance timer once on p and counts what the tenants received.
func fleetCompliance(ten *emulator.Tenant, p *proc) (fleetResult, error) {
	ten.ResetStats()
	start := time.Now()
	var comp struct {
		ReturnValue struct {
			Instances map[string]struct {
				Compliant bool `json:"compliant"`
			} `json:"instances"`
		} `json:"ReturnValue"`
	}
	if err := p.call(http.MethodPost, "/compliance", timerBody("compliance"), http.StatusOK, &comp); err != nil {
		return fleetResult{}, fmt.Errorf("compliance over the fleet: %w\nhandler output (tail):\n%s", err, tail(p.out.String(), 20))
	}
	res := fleetResult{measure: measureOf(ten.Stats(), time.Since(start))}
	if n := len(comp.ReturnValue.Instances); n != fleetInstances {
		return res, fmt.Errorf("compliance answered for %d instances, want %d", n, fleetInstances)
	}
	for name, c := range comp.ReturnValue.Instances {
		if !c.Compliant {
			return res, fmt.Errorf("instance %s is not compliant", name)
		}
	}
	for _, n := range ten.Stats().ByTenant {
		if n > 0 {
			res.tenantsReached++
		}
	}
	var err error
	res.peakRSS, err = peakRSS(p.cmd.Process.Pid)
	return res, err
}

// fleetRows turns the fleet's runs into rows: the warm run against the targets of issue 14, the cold one
// as information (what a new process pays, tokens and metadata per tenant). A run's floor is every
// instance's round trips in sequence (a status's warm, the start-up's cold), server.DefaultParallel
// instances at once.
func fleetRows(warm, cold fleetResult, rtt time.Duration) []row {
	per := func(n int) string { return strconv.FormatFloat(float64(n)/fleetInstances, 'f', 2, 64) }
	name := fmt.Sprintf("fleet: compliance over %d instances in %d tenants", fleetInstances, fleetTenants)
	floorOf := func(op string) (time.Duration, string) {
		seq := floors[op].sequential
		f := time.Duration(fleetInstances*seq) * rtt / server.DefaultParallel
		return f, fmt.Sprintf("%s (%d × %d sequential ÷ %d × %s)", ms(f), fleetInstances, seq, server.DefaultParallel, ms(rtt))
	}
	wf, wfText := floorOf(opStatus)
	cf, cfText := floorOf(opColdStatus)
	ratio := float64(warm.latency) / float64(wf)
	const customers = fleetTenants - 1
	signIns := floors[opStatus].tokens * fleetInstances // the sign-in checks' tokens
	return []row{
		{
			figure:   fmt.Sprintf("%s at %s RTT, %d at once", name, ms(rtt), server.DefaultParallel),
			measured: fmt.Sprintf("%s (%.2f × floor)", ms(warm.latency), ratio),
			floor:    wfText,
			target:   fmt.Sprintf("≤ %.1f × floor", maxFleetRatio),
			verdict:  verdict(ratio <= maxFleetRatio),
		},
		{
			figure: name + ": Graph and Key Vault round trips per instance",
			measured: fmt.Sprintf("%s (%d in all, %d writes, %d error answers, +%d MI tokens)",
				per(warm.roundTrips), warm.roundTrips, warm.writes, warm.errors, warm.idTokens),
			floor:   strconv.Itoa(floors[opStatus].requests),
			target:  fmt.Sprintf("≤ %d, no writes", maxQuietRequests),
			verdict: verdict(warm.roundTrips <= maxQuietRequests*fleetInstances && warm.writes == 0 && warm.errors == 0),
		},
		{
			figure: name + ": token service requests per instance",
			measured: fmt.Sprintf("%s tokens (%d in all), %d metadata, %d other; %d tenants reached",
				per(warm.signInTokens), warm.signInTokens, warm.openIDConfig, warm.instanceDiscovery+warm.loginOther, warm.tenantsReached),
			floor:   fmt.Sprintf("%d tokens (the sign-in check)", floors[opStatus].tokens),
			target:  "1 token per resource; the federation's tokens kept per tenant",
			verdict: verdict(warm.signInTokens == signIns && warm.openIDConfig == 0 && warm.instanceDiscovery+warm.loginOther == 0),
		},
		{
			figure:   name + ": peak RSS (VmHWM) of the handler over provision and compliance",
			measured: mib(warm.peakRSS),
			floor:    "—",
			target:   "< " + mib(maxFleetRSS),
			verdict:  verdict(warm.peakRSS < maxFleetRSS),
		},
		{
			figure:   fmt.Sprintf("%s, information: the first call of a new process, at %s RTT", name, ms(rtt)),
			measured: fmt.Sprintf("%s (%.2f × floor)", ms(cold.latency), float64(cold.latency)/float64(cf)),
			floor:    cfText,
			target:   "— (information only)",
			verdict:  "—",
		},
		{
			figure: name + ", information: requests of the first call of a new process",
			measured: fmt.Sprintf("%s Graph/Key Vault per instance (%d), %d MI tokens; token service: %d tokens "+
				"(%d sign-in + %d federation), %d metadata, %d other; %d tenants reached",
				per(cold.roundTrips), cold.roundTrips, cold.idTokens, cold.signInTokens, signIns,
				cold.signInTokens-signIns, cold.openIDConfig, cold.instanceDiscovery+cold.loginOther, cold.tenantsReached),
			floor: fmt.Sprintf("%d per instance; %d sign-in tokens + 1 federation token per other tenant (%d)",
				floors[opColdStatus].requests, signIns, customers),
			target:  "tokens and metadata amortised per tenant",
			verdict: verdict(cold.signInTokens <= signIns+customers && cold.openIDConfig <= 2*fleetTenants && cold.instanceDiscovery+cold.loginOther == 0),
		},
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
