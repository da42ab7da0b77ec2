// Package funchost is a small local Azure Functions host for a custom handler, for `make run` and for
// black-box tests where the Functions Core Tools cannot be installed. It does what the real host does for
// this project, per reference section 6:
//
//   - reads host.json and <dir>/functions/*/function.json (or <dir>/*/function.json in a staged package),
//     resolving %VAR% in timer schedules from the app settings;
//   - starts the handler with the environment plus local.settings.json's Values (never overriding the
//     environment) and FUNCTIONS_CUSTOMHANDLER_PORT, polls GET / every 25 ms until any answer (30 s at most),
//     and kills it with SIGKILL on Close; it restarts nothing;
//   - serves /api/<route> by forwarding the original request to the handler and returning its answer
//     unchanged (enableForwardingHttpRequest; a method function.json does not list is 404 as on the host;
//     no function key is required, like Core Tools);
//   - fires each timer on its NCRONTAB schedule (UTC) and on POST /admin/functions/<name> (202, like Core
//     Tools; with ?wait=true it answers the handler's status and body), POSTing the host's invocation payload
//     (package hostproto) to /<name>, and prints one line per invocation.
//
// Without APPREG_KEY_VAULT_URL in the settings it runs the handler on an emulated tenant (Options.NewTenant,
// wired to package emulator by cmd/funchost) and says so. When APPREG_INSTANCES then names instances in
// tenants other than the emulated managed identity's own, the emulated world grows (World): each such
// tenant is added, a multi-tenant application that trusts the managed identity is registered and
// consented there with FederatedRoles, its client id is passed to the handler as APPREG_FEDERATED_APP_ID,
// and one line per tenant says which instances live there. The instances share the emulated vault, so
// each needs its own secretName.
//
// For example (one instance at home, one in a customer's tenant):
//
//	APPREG_INSTANCES='[{"name":"msp","secretName":"msp-key"},
//	  {"name":"contoso","tenantId":"3f2e1d0c-9b8a-4765-8432-10fedcba9876","secretName":"contoso-key"}]' make run
package funchost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/ncrontab"
)

// Tenant is the emulated tenant as funchost uses it; *emulator.Tenant implements it.
type Tenant interface {
	WriteCA(path string) error
	Env(caFile string) map[string]string
	VaultURL() string
	TenantID() string
	Close()
}

// Options configure Start.
type Options struct {
	// Dir is the project: host.json, functions/ (or the function folders themselves), local.settings.json.
	// Default ".".
	Dir string
	// Handler is the handler executable; default host.json's defaultExecutablePath. Relative paths are
	// relative to Dir.
	Handler string
	// Addr is where funchost listens; default "localhost:7071". Tests use "127.0.0.1:0".
	Addr string
	// Environ is the environment of the handler (KEY=VALUE); nil: os.Environ().
	Environ []string
	// NewTenant starts the emulated tenant, used when the settings have no APPREG_KEY_VAULT_URL; nil: never.
	NewTenant func() (Tenant, error)
	// DisableTimers keeps timers from firing on their schedules (Invoke and the admin API still work).
	DisableTimers bool
	// Stdout and Stderr receive the handler's output; default os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
	// Log receives funchost's own lines; default os.Stdout.
	Log io.Writer
	// ReadyTimeout bounds the wait for the handler's first answer; default 30 s, as on the host.
	ReadyTimeout time.Duration
	// OnInvocation, when set, is called after every invocation (also failed ones).
	OnInvocation func(Invocation)
}

// Invocation is the outcome of one invocation of the handler.
type Invocation struct {
	Function string
	ID       string // the X-Azure-Functions-InvocationId sent
	Trigger  string // "http", "timer" (schedule) or "admin" (admin API or Invoke)
	Status   int    // the handler's status; 0 when it did not answer
	Duration time.Duration
	Err      error // transport failure
}

// Host is a running local host.
type Host struct {
	opts     Options
	dir      string
	cfg      HostConfig
	fns      []Function
	timers   map[string]*timer // by lower-case name
	env      *env
	port     int
	base     string // http://127.0.0.1:<port>
	client   *http.Client
	tenant   Tenant
	tmpDir   string
	cmd      *exec.Cmd
	done     chan struct{} // closed when the handler exited
	exitErr  error
	ln       net.Listener
	srv      *http.Server
	url      string
	logMu    sync.Mutex
	stop     context.CancelFunc
	wg       sync.WaitGroup
	closing  chan struct{}
	closeErr error
	once     sync.Once
}

// timer is a timer function's state.
type timer struct {
	fn       Function
	schedule *ncrontab.Schedule // nil: the schedule did not resolve or parse; only admin invocations
	mu       sync.Mutex
	status   hostStatus
}

type hostStatus struct{ last, next, updated time.Time }

const (
	envPort     = "FUNCTIONS_CUSTOMHANDLER_PORT"
	envVaultURL = "APPREG_KEY_VAULT_URL"
	pollEvery   = 25 * time.Millisecond
)

// Start starts the handler, waits until it answers, and serves. ctx bounds the start only; Close stops.
func Start(ctx context.Context, o Options) (_ *Host, err error) {
	h := &Host{opts: o, done: make(chan struct{}), closing: make(chan struct{}), timers: map[string]*timer{}}
	if h.opts.Stdout == nil {
		h.opts.Stdout = os.Stdout
	}
	if h.opts.Stderr == nil {
		h.opts.Stderr = os.Stderr
	}
	if h.opts.Log == nil {
		h.opts.Log = os.Stdout
	}
	if h.opts.Addr == "" {
		h.opts.Addr = "localhost:7071"
	}
	if h.opts.ReadyTimeout <= 0 {
		h.opts.ReadyTimeout = 30 * time.Second
	}
	defer func() {
		if err != nil {
			h.shutdown()
		}
	}()

	if h.dir, err = filepath.Abs(cmpOr(o.Dir, ".")); err != nil {
		return nil, err
	}
	if h.cfg, err = LoadHostConfig(h.dir); err != nil {
		return nil, err
	}
	if !h.cfg.Forwarding {
		h.logf("host.json has enableForwardingHttpRequest false: funchost forwards HTTP triggers as they are anyway")
	}
	fnDir := filepath.Join(h.dir, "functions")
	if st, statErr := os.Stat(fnDir); statErr != nil || !st.IsDir() {
		fnDir = h.dir // a staged package: the function folders sit next to host.json
	}
	if h.fns, err = LoadFunctions(fnDir); err != nil {
		return nil, err
	}

	base := o.Environ
	if base == nil {
		base = os.Environ()
	}
	h.env = newEnv(base)
	file, added, err := loadLocalSettings(h.dir, h.env)
	if err != nil {
		return nil, err
	}
	if len(added) > 0 {
		h.logf("%s: %d settings not in the environment added", file, len(added))
	}
	if err := h.chooseTenant(); err != nil {
		return nil, err
	}
	h.prepareTimers()

	if h.port, err = freePort(); err != nil {
		return nil, err
	}
	h.env.set(envPort, strconv.Itoa(h.port))
	h.base = "http://127.0.0.1:" + strconv.Itoa(h.port)
	h.client = &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 16},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // forwarded answers go back unchanged
		},
	}
	if err := h.startHandler(); err != nil {
		return nil, err
	}
	if err := h.waitReady(ctx); err != nil {
		return nil, err
	}

	if h.ln, err = net.Listen("tcp", h.opts.Addr); err != nil {
		return nil, fmt.Errorf("listening on %s: %w", h.opts.Addr, err)
	}
	h.url = listenURL(h.opts.Addr, h.ln.Addr())
	h.srv = &http.Server{Handler: http.HandlerFunc(h.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = h.srv.Serve(h.ln) }()

	runCtx, stop := context.WithCancel(context.Background())
	h.stop = stop
	if !o.DisableTimers {
		for _, t := range h.timers {
			if t.schedule != nil {
				h.wg.Add(1)
				go h.runTimer(runCtx, t)
			}
		}
	}
	h.printFunctions()
	return h, nil
}

// chooseTenant starts the emulated tenant when the settings name no vault, and says what the handler
// talks to.
func (h *Host) chooseTenant() error {
	if v := strings.TrimSpace(h.env.get(envVaultURL)); v != "" {
		h.logf("running against Azure: %s=%s", envVaultURL, v)
		return nil
	}
	if h.opts.NewTenant == nil {
		h.logf("%s is not set and no emulated tenant is configured: the handler will report its configuration error", envVaultURL)
		return nil
	}
	t, err := h.opts.NewTenant()
	if err != nil {
		return fmt.Errorf("starting the emulated tenant: %w", err)
	}
	h.tenant = t
	if h.tmpDir, err = os.MkdirTemp("", "funchost-"); err != nil {
		return err
	}
	ca := filepath.Join(h.tmpDir, "emulator-ca.pem")
	if err := t.WriteCA(ca); err != nil {
		return fmt.Errorf("writing the emulated tenant's CA: %w", err)
	}
	te := t.Env(ca)
	keys := make([]string, 0, len(te))
	for k := range te {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		h.env.set(k, te[k])
	}
	h.logf("no %s: running on the embedded EMULATED tenant (tenant %s, vault %s); nothing reaches Azure", envVaultURL, t.TenantID(), t.VaultURL())
	h.setUpInstances(t)
	return nil
}

// prepareTimers resolves and parses every timer's schedule. A schedule that does not resolve disables the
// timer's schedule (the host disables such a function); the admin API can still invoke it.
func (h *Host) prepareTimers() {
	now := time.Now().UTC()
	for _, fn := range h.fns {
		if fn.Trigger != TriggerTimer {
			continue
		}
		t := &timer{fn: fn}
		h.timers[strings.ToLower(fn.Name)] = t
		expr, err := resolve(fn.Schedule, h.env)
		if err == nil {
			t.schedule, err = ncrontab.Parse(expr)
		}
		if err != nil {
			h.logf("%s: schedule %s; the timer will not fire on its own", fn.Name, err)
			continue
		}
		if fn.UseMonitor {
			// A schedule monitor without a record: Last is default(DateTime).
			t.status = hostStatus{next: t.schedule.Next(now), updated: now}
		}
	}
}

func (h *Host) startHandler() error {
	path := cmpOr(h.opts.Handler, h.cfg.Executable)
	if !filepath.IsAbs(path) {
		path = filepath.Join(h.dir, path)
	}
	if st, err := os.Stat(path); err != nil {
		return fmt.Errorf("handler executable: %w (build it first: make build)", err)
	} else if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("handler executable %s is not an executable file", path)
	}
	cmd := exec.Command(path, h.cfg.Arguments...)
	cmd.Dir = h.dir
	if h.cfg.WorkingDirectory != "" {
		cmd.Dir = h.cfg.WorkingDirectory
		if !filepath.IsAbs(cmd.Dir) {
			cmd.Dir = filepath.Join(h.dir, cmd.Dir)
		}
	}
	cmd.Env = h.env.list()
	cmd.Stdout = h.opts.Stdout
	cmd.Stderr = h.opts.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the handler: %w", err)
	}
	h.cmd = cmd
	h.logf("started %s (pid %d) on port %d", path, cmd.Process.Pid, h.port)
	go func() {
		err := cmd.Wait()
		h.exitErr = err
		close(h.done)
		select {
		case <-h.closing:
		default:
			h.logf("the handler exited (%v); funchost restarts nothing", exitText(err))
		}
	}()
	return nil
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// waitReady polls GET / every 25 ms until any HTTP answer.
func (h *Host) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.opts.ReadyTimeout)
	defer cancel()
	probe := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: time.Second}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		resp, err := probe.Get(h.base + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-h.done:
			return fmt.Errorf("the handler exited before it answered GET / (%s)", exitText(h.exitErr))
		case <-ctx.Done():
			return fmt.Errorf("the handler did not answer GET %s/ within %v: %w", h.base, h.opts.ReadyTimeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// URL is where funchost serves, e.g. http://localhost:7071.
func (h *Host) URL() string { return h.url }

// HandlerURL is the handler's own address (http://127.0.0.1:<port>).
func (h *Host) HandlerURL() string { return h.base }

// Functions are the loaded functions.
func (h *Host) Functions() []Function { return append([]Function(nil), h.fns...) }

// Tenant is the emulated tenant, nil when the handler runs against Azure.
func (h *Host) Tenant() Tenant { return h.tenant }

// Done is closed when the handler has exited (on its own or by Close).
func (h *Host) Done() <-chan struct{} { return h.done }

// PID is the handler's process id.
func (h *Host) PID() int {
	if h.cmd == nil || h.cmd.Process == nil {
		return 0
	}
	return h.cmd.Process.Pid
}

// Kill kills the handler at once with SIGKILL, as the host stops a worker, and waits until it has exited;
// whatever it was doing stops mid-way. funchost keeps serving (forwarded requests and invocations then
// fail) and restarts nothing; Close still cleans up. It is how tests crash the handler between two steps.
func (h *Host) Kill() error {
	if h.cmd == nil || h.cmd.Process == nil {
		return errNotRunning
	}
	select {
	case <-h.done:
		return errNotRunning
	default:
	}
	err := h.cmd.Process.Kill()
	<-h.done
	return err
}

// Close kills the handler (SIGKILL, as the host does), stops the timers and the listener, and closes the
// emulated tenant. It is safe to call more than once.
func (h *Host) Close() error {
	h.shutdown()
	return h.closeErr
}

func (h *Host) shutdown() {
	h.once.Do(func() {
		close(h.closing)
		if h.stop != nil {
			h.stop()
		}
		if h.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := h.srv.Shutdown(ctx); err != nil {
				_ = h.srv.Close()
			}
			cancel()
		}
		if h.cmd != nil && h.cmd.Process != nil {
			_ = h.cmd.Process.Kill()
			<-h.done
		}
		h.wg.Wait()
		if h.tenant != nil {
			h.tenant.Close()
		}
		if h.tmpDir != "" {
			h.closeErr = os.RemoveAll(h.tmpDir)
		}
	})
}

// logf prints one funchost line.
func (h *Host) logf(format string, args ...any) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	fmt.Fprintf(h.opts.Log, "[funchost] "+format+"\n", args...)
}

func (h *Host) printFunctions() {
	h.logf("listening on %s; functions:", h.url)
	for _, fn := range h.fns {
		switch fn.Trigger {
		case TriggerHTTP:
			methods := "ANY"
			if len(fn.Methods) > 0 {
				methods = strings.Join(fn.Methods, ",")
			}
			h.logf("  %s: [%s] %s/api/%s", fn.Name, methods, h.url, fn.Route)
		case TriggerTimer:
			t := h.timers[strings.ToLower(fn.Name)]
			when := "not scheduled"
			if t.schedule != nil {
				when = fmt.Sprintf("schedule %q, next %s", t.schedule.String(), t.schedule.Next(time.Now()).Format(time.RFC3339))
				if h.opts.DisableTimers {
					when += " (timers disabled)"
				}
			}
			h.logf("  %s: timerTrigger, %s; run now: curl -X POST %s/admin/functions/%s", fn.Name, when, h.url, fn.Name)
		}
	}
}

func (h *Host) report(inv Invocation) {
	switch {
	case inv.Err != nil:
		h.logf("%s (%s) invocation %s failed after %v: %v", inv.Function, inv.Trigger, inv.ID, inv.Duration.Round(time.Millisecond), inv.Err)
	default:
		outcome := "succeeded"
		if inv.Status < 200 || inv.Status > 299 {
			outcome = "failed"
		}
		h.logf("%s (%s) invocation %s %s: %d in %v", inv.Function, inv.Trigger, inv.ID, outcome, inv.Status, inv.Duration.Round(time.Millisecond))
	}
	if h.opts.OnInvocation != nil {
		h.opts.OnInvocation(inv)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// listenURL keeps a host name of the configured address (localhost) and takes the port actually bound.
func listenURL(addr string, bound net.Addr) string {
	host, _, err := net.SplitHostPort(addr)
	_, port, _ := net.SplitHostPort(bound.String())
	if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// newGUID is a random (version 4) GUID, as the host makes invocation ids.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

// traceparent is a W3C trace context header value, as the host's HttpClient adds one.
func traceparent() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-00"
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

var errNotRunning = errors.New("the handler is not running")
