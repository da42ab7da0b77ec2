package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

// newTenant starts an emulated tenant with its own managed identity and returns the environment of a
// handler that talks to it (its token service included: AZURE_AUTHORITY_HOST stays the default,
// login.microsoftonline.com, reached through the tenant's proxy).
func newTenant(o options) (*emulator.Tenant, []string, func(), error) {
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
		return nil, nil, nil, fmt.Errorf("starting an emulated tenant: %w", err)
	}
	dir, err := os.MkdirTemp("", "appreg-bench-tenant-")
	if err != nil {
		ten.Close()
		return nil, nil, nil, fmt.Errorf("making the tenant's folder: %w", err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := ten.WriteCA(ca); err != nil {
		ten.Close()
		os.RemoveAll(dir)
		return nil, nil, nil, fmt.Errorf("writing the tenant's CA: %w", err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "AZURE_CLIENT_ID=" + ten.IdentityClientID()}
	for k, v := range ten.Env(ca) {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return ten, env, func() { ten.Close(); os.RemoveAll(dir) }, nil
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

// startHandler starts bin and waits until it answers GET /, as the Functions host does before it sends
// the first invocation.
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
		return nil, fmt.Errorf("starting the handler: %w", err)
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
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait() // killed: the exit status says so
}

// peakRSS reads VmHWM, the peak resident set size, from /proc/<pid>/status.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the peak RSS: %w", err)
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
		return fmt.Errorf("making the request %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Azure-Functions-InvocationId", emulator.NewGUID())
	resp, err := p.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode != wantStatus {
		return fmt.Errorf("%s %s answered %d, want %d: %s", method, path, resp.StatusCode, wantStatus, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decoding the answer of %s %s: %w", method, path, err)
		}
	}
	return nil
}

// timerBody is the Functions host's payload of a timer trigger.
func timerBody(function string) []byte {
	now := time.Now().UTC()
	b, err := json.Marshal(map[string]any{
		"Data": map[string]any{"timer": map[string]any{
			"Schedule": map[string]any{"AdjustForDST": true}, "ScheduleStatus": nil, "IsPastDue": false,
		}},
		"Metadata": map[string]any{"sys": map[string]any{
			"MethodName": function, "UtcNow": now.Format(time.RFC3339Nano), "RandGuid": emulator.NewGUID(),
		}},
	})
	if err != nil {
		panic(err) // maps of strings, bools and nil always marshal
	}
	return b
}
