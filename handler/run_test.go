package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/config"
	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

// lockedWriter is the stdout that run writes to.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// startRun starts run on an ephemeral port and returns its base URL and its output.
func startRun(t *testing.T, getenv func(string) string) (string, *lockedWriter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedWriter{}
	prev := slog.Default() // run makes its logger the default: give the next tests theirs back
	t.Cleanup(func() { slog.SetDefault(prev) })
	done := make(chan error, 1)
	go func() { done <- run(ctx, getenv, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run returned %v after its context ended, want nil", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				if !strings.HasPrefix(line.Addr, "127.0.0.1:") {
					t.Fatalf("run listens on %s, want loopback only", line.Addr)
				}
				return "http://" + line.Addr, out
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("run did not say where it listens:\n%s", out)
	return "", nil
}

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRunAnswersTheReadinessProbe(t *testing.T) {
	url, _ := startRun(t, func(k string) string {
		return map[string]string{config.EnvKeyVaultURL: "https://contoso-kv.vault.azure.net/"}[k]
	})
	if status, _ := get(t, http.MethodGet, url+"/"); status != http.StatusOK {
		t.Errorf("GET / = %d, want 200", status)
	}
}

func TestRunReportsInvalidSettingsEverywhere(t *testing.T) {
	url, out := startRun(t, func(k string) string {
		return map[string]string{config.EnvPermissionLevel: "3"}[k]
	})
	for _, want := range []string{config.EnvKeyVaultURL, config.EnvPermissionLevel} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the start-up log does not name %s:\n%s", want, out)
		}
	}
	for _, r := range []struct{ method, path string }{{http.MethodPost, "/api/provision"}, {http.MethodGet, "/api/status"}} {
		status, body := get(t, r.method, url+r.path)
		if status != http.StatusInternalServerError || !strings.Contains(body, "InvalidConfiguration") ||
			!strings.Contains(body, config.EnvPermissionLevel) || !strings.Contains(body, "0, 1 or 2") {
			t.Errorf("%s %s = %d %s, want 500 InvalidConfiguration naming %s and the values expected", r.method, r.path, status, body, config.EnvPermissionLevel)
		}
	}
}

func TestRunProvisionsOnTheEmulatedTenant(t *testing.T) {
	w := newWorld(t, emulator.Options{}, nil)
	w.clock.Set(time.Now()) // run uses the real clock
	url, out := startRun(t, w.getenv)
	status, body := get(t, http.MethodPost, url+"/api/provision")
	if status != http.StatusCreated {
		t.Fatalf("POST /api/provision = %d %s\n%s", status, body, out)
	}
	status, body = get(t, http.MethodGet, url+"/api/status")
	if status != http.StatusOK || !strings.Contains(body, `"compliant":true`) {
		t.Errorf("GET /api/status = %d %s, want compliant", status, body)
	}
	for _, s := range w.tenant.IssuedSecrets() {
		if len(s) >= 8 && (strings.Contains(out.String(), s) || strings.Contains(body, s)) {
			t.Errorf("an issued secret appears in the output")
		}
	}
}
