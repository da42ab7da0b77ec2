package emulatortest

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

// Hygiene collects what tests saw (answers, errors, log lines) and the secrets the emulated tenants
// issued (secretTexts, Key Vault values, access tokens, identity headers), and finds any secret in what
// was seen. Its zero value is ready; it is safe for concurrent use.
type Hygiene struct {
	mu      sync.Mutex
	seen    [][]byte
	secrets []string
}

// Record keeps output to scan.
func (h *Hygiene) Record(b []byte) {
	h.mu.Lock()
	h.seen = append(h.seen, bytes.Clone(b))
	h.mu.Unlock()
}

// Writer is an io.Writer that records everything written to it (a log handler's output).
func (h *Hygiene) Writer() io.Writer { return hygieneWriter{h} }

type hygieneWriter struct{ h *Hygiene }

func (w hygieneWriter) Write(p []byte) (int, error) {
	w.h.Record(p)
	return len(p), nil
}

// AddSecrets adds secrets to look for.
func (h *Hygiene) AddSecrets(s ...string) {
	h.mu.Lock()
	h.secrets = append(h.secrets, s...)
	h.mu.Unlock()
}

// Watch adds every secret the tenant issued when the test ends, and fails the test if the tenant's
// identity header is not among them (then the scan would miss the one secret a process is given).
func (h *Hygiene) Watch(t testing.TB, ten *emulator.Tenant) {
	t.Helper()
	t.Cleanup(func() {
		issued := ten.IssuedSecrets()
		if !slices.Contains(issued, ten.IdentityHeader()) {
			t.Error("the tenant's IDENTITY_HEADER value is not among the secrets the hygiene scan looks for")
		}
		h.AddSecrets(issued...)
	})
}

// Scan returns how many secrets and outputs it compared, and one line per secret found in the output
// (its length and first three characters only). Secrets shorter than 8 characters are not looked for.
func (h *Hygiene) Scan() (secrets, outputs int, hits []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.secrets {
		if len(s) < 8 {
			continue
		}
		for _, b := range h.seen {
			if bytes.Contains(b, []byte(s)) {
				hits = append(hits, fmt.Sprintf("an issued secret (%d chars, starts %q) appears in a response or log", len(s), s[:3]))
				break
			}
		}
	}
	return len(h.secrets), len(h.seen), hits
}
