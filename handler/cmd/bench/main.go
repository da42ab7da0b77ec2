// Command bench measures the function app against the floor of each figure (issue 7) and prints one
// table, each figure beside its floor and its target: `make bench`.
//
//   - cold start: exec of the handler to its first answer on GET /, beside the same for benchfloor, the
//     smallest Echo program that answers GET / (the floor);
//   - round trips to Graph and Key Vault, counted at an emulated tenant (tokens and Key Vault's challenge
//     counted apart), for a fresh provision, a provision with nothing to do, a status, a rotate that is not
//     due and a rotate that renews, each beside the fewest requests the operation needs;
//   - latency of the same operations with a round-trip time added at the emulated tenant;
//   - peak RSS (VmHWM) of the handler over a provision, a status and a rotation;
//   - size of the stripped handler and of the deployment zip, beside the same for benchfloor.
//
// Everything runs on loopback against in-process emulated tenants; the handler is the real binary, run
// as the Functions host runs it (FUNCTIONS_CUSTOMHANDLER_PORT and the platform's managed identity
// variables), so what is counted is what production would send. Nothing here is a test: no figure fails
// the run, the table says PASS or MISS.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
	"github.com/scepman-appreg/appreg/handler/internal/pack"
)

// Targets of issue 7.
const (
	coldStartFactor   = 1.5      // cold start at most this many times the floor's
	maxSteadyRequests = 3        // provision with nothing to do and status, after the first call
	maxFreshRequests  = 12       // fresh provision, without retries
	maxRSS            = 64 << 20 // peak RSS of the handler
	maxZip            = 15 << 20 // deployment zip
	secretName        = "AppConfig--AuthConfig--ApplicationKey"
)

type options struct {
	handler, floor string // prebuilt executables; "" builds them
	starts, reps   int
	rtt            time.Duration
	pageSize       int
	distZip        string
	verbose        bool
}

func main() {
	var o options
	flag.StringVar(&o.handler, "handler", "", "handler executable (default: build ./handler into a temporary folder)")
	flag.StringVar(&o.floor, "floor", "", "floor executable (default: build ./handler/cmd/benchfloor)")
	flag.IntVar(&o.starts, "starts", 20, "cold starts of each program")
	flag.IntVar(&o.reps, "reps", 5, "repetitions of each operation sequence (medians are taken)")
	flag.DurationVar(&o.rtt, "rtt", 50*time.Millisecond, "round-trip time added at the emulated tenant for the latency rows")
	flag.IntVar(&o.pageSize, "page-size", 25, "page size of the emulated tenant's lists (Key Vault's default is 25)")
	flag.StringVar(&o.distZip, "dist-zip", "dist/appreg-func.zip", "deployment zip of `make package`, reported when present")
	flag.BoolVar(&o.verbose, "v", false, "print the operations each figure counted")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	started := time.Now()
	tmp, err := os.MkdirTemp("", "appreg-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	step("building")
	builds := []struct {
		out, pkg, ldflags string
		dst               *string
	}{
		{filepath.Join(tmp, "handler"), "./handler", "", &o.handler},
		{filepath.Join(tmp, "floor"), "./handler/cmd/benchfloor", "", &o.floor},
		{filepath.Join(tmp, "stripped", "handler"), "./handler", "-s -w", nil},
		{filepath.Join(tmp, "floor-stripped", "handler"), "./handler/cmd/benchfloor", "-s -w", nil},
	}
	for _, b := range builds {
		if b.dst != nil && *b.dst != "" {
			continue
		}
		if err := goBuild(b.out, b.pkg, b.ldflags); err != nil {
			return err
		}
		if b.dst != nil {
			*b.dst = b.out
		}
	}

	var rows []row

	step("cold start: %d starts of each program", o.starts)
	cs, err := coldStarts(o)
	if err != nil {
		return err
	}
	rows = append(rows, cs...)

	step("operations: %d sequences without added latency", o.reps)
	plain, err := sequences(o, 0)
	if err != nil {
		return err
	}
	step("operations: %d sequences with %s added per round trip", o.reps, o.rtt)
	slow, err := sequences(o, o.rtt)
	if err != nil {
		return err
	}
	rows = append(rows, roundTripRows(plain)...)
	rows = append(rows, latencyRows(slow, o.rtt)...)

	step("memory")
	mem, err := memoryRows(o, plain)
	if err != nil {
		return err
	}
	rows = append(rows, mem...)

	step("size")
	size, err := sizeRows(o, tmp)
	if err != nil {
		return err
	}
	rows = append(rows, size...)

	fmt.Println()
	fmt.Printf("make bench: %s, %d × %s, %s %s/%s; medians of %d cold starts and %d operation sequences; took %s\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		o.starts, o.reps, time.Since(started).Round(time.Second))
	printTable(rows)
	fmt.Println()
	fmt.Println(notes(o))
	if o.verbose {
		fmt.Println()
		printDetail(plain)
	}
	return nil
}

func step(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func goBuild(out, pkg, ldflags string) error {
	args := []string{"build", "-o", out}
	if ldflags != "" {
		args = append(args, "-ldflags="+ldflags)
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}

// row is one line of the table.
type row struct {
	figure, measured, floor, target, verdict string
}

func printTable(rows []row) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(w, "| figure\t measured\t floor\t target\t verdict\t")
	fmt.Fprintln(w, "|---\t---\t---\t---\t---\t")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s\t %s\t %s\t %s\t %s\t\n", r.figure, r.measured, r.floor, r.target, r.verdict)
	}
	w.Flush()
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// ---- cold start ----

func coldStarts(o options) ([]row, error) {
	// The handler starts with a valid configuration, as in production: it builds every client before it
	// is ready. The tenant is only needed for the settings; nothing is sent at start.
	ten, env, cleanup, err := newTenant(o, "")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	_ = ten
	var floor, handler []time.Duration
	for i := range o.starts + 1 {
		f, err := coldStart(o.floor, env)
		if err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		h, err := coldStart(o.handler, env)
		if err != nil {
			return nil, fmt.Errorf("handler: %w", err)
		}
		if i == 0 {
			continue // the first start of each pays for the page cache
		}
		floor, handler = append(floor, f), append(handler, h)
	}
	mf, mh := median(floor), median(handler)
	ratio := float64(mh) / float64(mf)
	return []row{{
		figure:   fmt.Sprintf("cold start: exec to first answer on GET / (median of %d)", o.starts),
		measured: fmt.Sprintf("%s (min %s)", ms(mh), ms(slices.Min(handler))),
		floor:    fmt.Sprintf("%s (min %s), Echo answering GET /", ms(mf), ms(slices.Min(floor))),
		target:   fmt.Sprintf("≤ %.1f × floor", coldStartFactor),
		verdict:  fmt.Sprintf("%s (%.2f ×)", verdict(ratio <= coldStartFactor), ratio),
	}}, nil
}

// coldStart execs bin and measures the time to its first answer on GET /.
func coldStart(bin string, env []string) (time.Duration, error) {
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin)
	cmd.Env = append(slices.Clone(env), "FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port))
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	for time.Since(start) < 30*time.Second {
		if ok := probe(addr); ok {
			return time.Since(start), nil
		}
		time.Sleep(100 * time.Microsecond)
	}
	return 0, fmt.Errorf("%s did not answer GET / within 30 s", bin)
}

// probe sends GET / on a new connection and tells whether any HTTP answer came (the host's rule).
func probe(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ---- the emulated tenant and the handler process ----

// newTenant starts an emulated tenant with its own managed identity and returns the environment of a
// handler that talks to it.
func newTenant(o options, dir string) (*emulator.Tenant, []string, func(), error) {
	ten, err := emulator.Start(emulator.Options{
		IdentityClientID: emulator.NewGUID(),
		PageSize:         o.pageSize,
		Logf: func(format string, args ...any) {
			// Connections that a stopped handler leaves behind are expected; unknown requests are not.
			if line := fmt.Sprintf(format, args...); strings.Contains(line, "UNKNOWN") {
				fmt.Fprintln(os.Stderr, "emulator:", line)
			}
		},
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "appreg-bench-tenant-"); err != nil {
			ten.Close()
			return nil, nil, nil, err
		}
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := ten.WriteCA(ca); err != nil {
		ten.Close()
		return nil, nil, nil, err
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "AZURE_CLIENT_ID=" + ten.IdentityClientID()}
	for k, v := range ten.Env(ca) {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return ten, env, func() { ten.Close(); os.Remove(ca) }, nil
}

// proc is a running handler.
type proc struct {
	cmd  *exec.Cmd
	base string
	out  *syncBuffer
	hc   *http.Client
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startHandler(bin string, env []string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &proc{
		cmd:  exec.Command(bin),
		base: "http://127.0.0.1:" + strconv.Itoa(port),
		out:  &syncBuffer{},
		hc:   &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil}},
	}
	p.cmd.Env = append(slices.Clone(env), "FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port))
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for !probe("127.0.0.1:" + strconv.Itoa(port)) {
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("the handler did not answer GET / within 30 s:\n%s", p.out)
		}
		time.Sleep(time.Millisecond)
	}
	return p, nil
}

func (p *proc) stop() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// peakRSS reads VmHWM, the peak resident set size, from /proc/<pid>/status.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/<pid>/status")
}

// call sends one request to the handler and decodes its JSON answer into out (when not nil).
func (p *proc) call(method, path string, body []byte, wantStatus int, out any) error {
	req, err := http.NewRequest(method, p.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Azure-Functions-InvocationId", emulator.NewGUID())
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != wantStatus {
		return fmt.Errorf("%s %s answered %d, want %d: %s", method, path, resp.StatusCode, wantStatus, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func timerBody(function string) []byte {
	now := time.Now().UTC()
	b, _ := json.Marshal(map[string]any{
		"Data": map[string]any{"timer": map[string]any{
			"Schedule": map[string]any{"AdjustForDST": true}, "ScheduleStatus": nil, "IsPastDue": false,
		}},
		"Metadata": map[string]any{"sys": map[string]any{
			"MethodName": function, "UtcNow": now.Format(time.RFC3339Nano), "RandGuid": emulator.NewGUID(),
		}},
	})
	return b
}

// ---- operation sequences ----

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

// floors: the fewest requests each operation needs, and how many round trips must follow one another.
// Graph reads that need nothing from each other share one $batch, and so do writes; no read-backs, no
// retries. The first call of a process must fetch a Graph token before its first Graph request (one more
// round trip in sequence; Key Vault's challenge and token go out beside it).
var floors = map[string]struct {
	requests, sequential int
	why                  string
}{
	opFresh: {4, 4, "$batch{PATCH app create-if-missing, GET 2 resource SPs} → $batch{POST SP, addPassword} → " +
		"$batch{2 app role assignments} ‖ PUT secret; after the Graph token"},
	opNothing:     {2, 1, "$batch{GET app, SP, assignments} ‖ GET secret"},
	opStatus:      {2, 1, "$batch{GET app, SP, assignments} ‖ GET secret"},
	opColdStatus:  {4, 4, "$batch{GET app, 2 resource SPs} ‖ GET secret → GET SP (needs the appId) → GET assignments (needs the SP id); after the Graph token"},
	opRotateKeep:  {2, 1, "GET app ‖ GET secret"},
	opRotateRenew: {4, 3, "GET app ‖ GET secret → addPassword → PUT secret"},
	opOverlap:     {3, 2, "$batch{GET app, SP, assignments} ‖ GET secret → list versions (a 2nd credential: is it stale?)"},
}

// measure is what one operation cost.
type measure struct {
	roundTrips, tokens, challenges, writes, errors int
	latency                                        time.Duration
	ops                                            map[string]int
}

// sequence is one run of every operation on a fresh tenant.
type sequence struct {
	m       map[string]measure
	peakRSS int64 // of the handler that ran provision, status and rotation
}

func sequences(o options, rtt time.Duration) ([]sequence, error) {
	var out []sequence
	for range o.reps {
		s, err := runSequence(o, rtt)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func runSequence(o options, rtt time.Duration) (sequence, error) {
	seq := sequence{m: map[string]measure{}}
	ten, env, cleanup, err := newTenant(o, "")
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

	measureOp := func(name string, fn func() error) error {
		ten.ResetStats()
		start := time.Now()
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w\nhandler output:\n%s", name, err, p.out)
		}
		lat := time.Since(start)
		st := ten.Stats()
		g, kv, id := st.Service(emulator.ServiceGraph), st.Service(emulator.ServiceKeyVault), st.Service(emulator.ServiceIdentity)
		m := measure{
			roundTrips: g.Requests + kv.Requests - g.Challenges - kv.Challenges,
			tokens:     id.Requests,
			challenges: g.Challenges + kv.Challenges,
			writes:     g.Writes + kv.Writes,
			latency:    lat,
			ops:        map[string]int{},
		}
		for name, os := range st.Ops {
			if strings.HasPrefix(name, emulator.ServiceIdentity+".") {
				continue
			}
			m.ops[name] = os.Requests - os.Statuses[http.StatusUnauthorized]
			for status, n := range os.Statuses {
				if status >= 400 && status != http.StatusUnauthorized && status != http.StatusNotFound {
					m.errors += n
				}
			}
		}
		seq.m[name] = m
		return nil
	}

	var prov struct {
		Changes []string `json:"changes"`
	}
	var status struct {
		Compliant bool `json:"compliant"`
		Findings  []struct {
			Code string `json:"code"`
		} `json:"findings"`
	}
	var rot struct {
		ReturnValue struct {
			Renewed bool `json:"renewed"`
		} `json:"ReturnValue"`
	}
	steps := []struct {
		name string
		fn   func() error
	}{
		{opFresh, func() error { return p.call(http.MethodPost, "/api/provision", nil, http.StatusCreated, &prov) }},
		{opNothing, func() error {
			if err := p.call(http.MethodPost, "/api/provision", nil, http.StatusOK, &prov); err != nil {
				return err
			}
			if len(prov.Changes) > 0 {
				return fmt.Errorf("changes %q, want none", prov.Changes)
			}
			return nil
		}},
		{opStatus, func() error {
			if err := p.call(http.MethodGet, "/api/status", nil, http.StatusOK, &status); err != nil {
				return err
			}
			if !status.Compliant || len(status.Findings) > 0 {
				return fmt.Errorf("status: compliant %v, findings %v; want compliant without findings", status.Compliant, status.Findings)
			}
			return nil
		}},
		{opRotateKeep, func() error {
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
				return err
			}
			if err := p.call(http.MethodPost, "/rotate", timerBody("rotate"), http.StatusOK, &rot); err != nil {
				return err
			}
			if !rot.ReturnValue.Renewed {
				return errors.New("did not renew a secret inside the renewal window")
			}
			return nil
		}},
		{opOverlap, func() error {
			if err := p.call(http.MethodGet, "/api/status", nil, http.StatusOK, &status); err != nil {
				return err
			}
			if !status.Compliant {
				return fmt.Errorf("status during the overlap: not compliant: %v", status.Findings)
			}
			return nil
		}},
	}
	for _, s := range steps {
		if err := measureOp(s.name, s.fn); err != nil {
			return seq, err
		}
		if s.name != opStatus {
			continue
		}
		// A second process on the same tenant, in the same state: its first call pays for the tokens,
		// the challenge, the resource service principals and the ids of the application's objects.
		p2, err := startHandler(o.handler, env)
		if err != nil {
			return seq, err
		}
		err = measureOp(opColdStatus, func() error {
			if err := p2.call(http.MethodGet, "/api/status", nil, http.StatusOK, &status); err != nil {
				return err
			}
			if !status.Compliant || len(status.Findings) > 0 {
				return fmt.Errorf("status: compliant %v, findings %v; want compliant without findings", status.Compliant, status.Findings)
			}
			return nil
		})
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

func roundTripRows(seqs []sequence) []row {
	var rows []row
	for _, op := range opOrder {
		rt := medianOf(seqs, op, func(m measure) int { return m.roundTrips })
		tokens := medianOf(seqs, op, func(m measure) int { return m.tokens })
		ch := medianOf(seqs, op, func(m measure) int { return m.challenges })
		writes := medianOf(seqs, op, func(m measure) int { return m.writes })
		errs := medianOf(seqs, op, func(m measure) int { return m.errors })
		measured := fmt.Sprintf("%d", rt)
		var extra []string
		if op == opFresh || op == opNothing || op == opStatus || op == opRotateKeep || op == opOverlap {
			extra = append(extra, fmt.Sprintf("%d writes", writes))
		}
		if tokens > 0 {
			extra = append(extra, fmt.Sprintf("+%d tokens", tokens))
		}
		if ch > 0 {
			extra = append(extra, fmt.Sprintf("+%d challenge", ch))
		}
		if errs > 0 {
			extra = append(extra, fmt.Sprintf("%d error answers", errs))
		}
		if len(extra) > 0 {
			measured += " (" + strings.Join(extra, ", ") + ")"
		}
		r := row{figure: "round trips: " + op, measured: measured, floor: strconv.Itoa(floors[op].requests), target: "—", verdict: "—"}
		switch op {
		case opFresh:
			r.target = fmt.Sprintf("≤ %d, no retries", maxFreshRequests)
			r.verdict = verdict(rt <= maxFreshRequests && errs == 0)
		case opNothing, opStatus, opOverlap:
			r.target = fmt.Sprintf("≤ %d, no writes", maxSteadyRequests)
			r.verdict = verdict(rt <= maxSteadyRequests && writes == 0)
		}
		rows = append(rows, r)
	}
	return rows
}

func latencyRows(seqs []sequence, rtt time.Duration) []row {
	var rows []row
	for _, op := range opOrder {
		var v []time.Duration
		for _, s := range seqs {
			v = append(v, s.m[op].latency)
		}
		lat := median(v)
		seqRT := int(lat / rtt) // whole round trips that fit in the latency; the rest is work
		fl := floors[op]
		r := row{
			figure:   fmt.Sprintf("latency at %s RTT: %s", ms(rtt), op),
			measured: fmt.Sprintf("%s (%d sequential)", ms(lat), seqRT),
			floor:    fmt.Sprintf("%s (%d sequential)", ms(time.Duration(fl.sequential)*rtt), fl.sequential),
			target:   "— (independent reads concurrent)",
			verdict:  "at floor",
		}
		if seqRT > fl.sequential {
			r.verdict = fmt.Sprintf("+%d sequential", seqRT-fl.sequential)
		}
		rows = append(rows, r)
	}
	return rows
}

// ---- memory ----

func memoryRows(o options, seqs []sequence) ([]row, error) {
	var peaks []int64
	for _, s := range seqs {
		peaks = append(peaks, s.peakRSS)
	}
	slices.Sort(peaks)
	peak := peaks[len(peaks)/2]

	// The floor: the floor program after it answered GET /.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.floor)
	cmd.Env = []string{"FUNCTIONS_CUSTOMHANDLER_PORT=" + strconv.Itoa(port)}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for i := 0; !probe("127.0.0.1:" + strconv.Itoa(port)); i++ {
		if i > 30000 {
			return nil, errors.New("the floor program did not answer")
		}
		time.Sleep(time.Millisecond)
	}
	floor, err := peakRSS(cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	return []row{{
		figure:   "peak RSS (VmHWM) of the handler over provision, status, rotation",
		measured: mib(peak),
		floor:    mib(floor) + ", Echo answering GET /",
		target:   "< " + mib(maxRSS),
		verdict:  verdict(peak < maxRSS),
	}}, nil
}

// ---- size ----

func sizeRows(o options, tmp string) ([]row, error) {
	size := func(p string) (int64, error) {
		fi, err := os.Stat(p)
		if err != nil {
			return 0, err
		}
		return fi.Size(), nil
	}
	stripped, err := size(filepath.Join(tmp, "stripped", "handler"))
	if err != nil {
		return nil, err
	}
	floorStripped, err := size(filepath.Join(tmp, "floor-stripped", "handler"))
	if err != nil {
		return nil, err
	}
	zipOf := func(bin, name string) (int64, error) {
		out := filepath.Join(tmp, name+".zip")
		src := pack.Source{HostJSON: "host.json", Handler: bin, FunctionsDir: "functions"}
		if err := pack.Build(src, filepath.Join(tmp, name+"-stage"), out); err != nil {
			return 0, err
		}
		return size(out)
	}
	zip, err := zipOf(filepath.Join(tmp, "stripped", "handler"), "handler")
	if err != nil {
		return nil, err
	}
	floorZip, err := zipOf(filepath.Join(tmp, "floor-stripped", "handler"), "floor")
	if err != nil {
		return nil, err
	}
	rows := []row{
		{"size: stripped handler (-ldflags='-s -w')", mib(stripped), mib(floorStripped) + ", Echo answering GET /", "—", "—"},
		{"size: deployment zip (the packer, on the stripped handler)", mib(zip), mib(floorZip) + ", same package around the floor", "< " + mib(maxZip), verdict(zip < maxZip)},
	}
	if dz, err := size(o.distZip); err == nil {
		rows = append(rows, row{"size: " + o.distZip + " (make package, -trimpath, linux/amd64)", mib(dz), mib(floorZip), "< " + mib(maxZip), verdict(dz < maxZip)})
	}
	return rows, nil
}

// ---- output helpers ----

func median(v []time.Duration) time.Duration {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}

func mib(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func notes(o options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Round trips: HTTP requests that Graph and Key Vault received at the emulated tenant (a $batch is one), "+
		"without the token requests to the managed identity endpoint and Key Vault's 401 challenge, shown apart. "+
		"The fresh provision is the first call of its handler process and the row so named is the first call of a second one; "+
		"every other row runs in a process that has served calls before. Lists page by %d; latency adds %s to every request "+
		"(tokens included); \"n sequential\" is how many whole round trips fit in the time. "+
		"Floors, the fewest requests each operation needs ($batch where Graph allows it, no read-backs):\n", o.pageSize, ms(o.rtt))
	for _, op := range opOrder {
		fmt.Fprintf(&b, "  %-45s %d, %d sequential: %s\n", op, floors[op].requests, floors[op].sequential, floors[op].why)
	}
	return strings.TrimRight(b.String(), "\n")
}

func printDetail(seqs []sequence) {
	fmt.Println("Operations counted in the first sequence (requests inside a $batch count one by one beside graph.batch; challenges left out):")
	for _, op := range opOrder {
		m := seqs[0].m[op]
		var parts []string
		for name, n := range m.ops {
			if n > 0 {
				parts = append(parts, fmt.Sprintf("%s×%d", strings.TrimPrefix(strings.TrimPrefix(name, "graph."), "keyvault."), n))
			}
		}
		sort.Strings(parts)
		fmt.Printf("  %-45s %s\n", op, strings.Join(parts, " "))
	}
}
