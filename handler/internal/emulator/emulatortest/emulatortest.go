// Package emulatortest starts an emulated tenant for an in-process test of the real SDK clients: with a
// managed identity of its own (MSAL's token cache is process-wide, so a fresh identity is what makes the
// tenant's tokens, with its Graph roles, the ones used), the process's managed identity variables pointed
// at it, its loud failures in the test log, and a test failure if it saw a request it does not know.
package emulatortest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

// Start starts the tenant and closes it when the test ends. It sets IDENTITY_ENDPOINT, IDENTITY_HEADER and
// AZURE_CLIENT_ID for the test (t.Setenv), so the test must not run in parallel.
func Start(t *testing.T, opts emulator.Options) *emulator.Tenant {
	t.Helper()
	if opts.IdentityClientID == "" {
		opts.IdentityClientID = emulator.NewGUID()
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	ten, err := emulator.Start(opts)
	if err != nil {
		t.Fatalf("emulator.Start: %v", err)
	}
	t.Cleanup(func() {
		ten.Close()
		if u := ten.Unknown(); len(u) > 0 {
			t.Errorf("the emulated tenant saw requests it does not know: %q", u)
		}
	})
	t.Setenv("IDENTITY_ENDPOINT", ten.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", ten.IdentityHeader())
	t.Setenv("AZURE_CLIENT_ID", ten.IdentityClientID())
	return ten
}

// Getenv is the environment of a process deployed against the tenant: the tenant's settings (HTTPS_PROXY,
// SSL_CERT_FILE with its CA written to a temporary file, the identity endpoint and header, the vault URL)
// over the process's own.
func Getenv(t *testing.T, ten *emulator.Tenant) func(string) string {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := ten.WriteCA(ca); err != nil {
		t.Fatal(err)
	}
	env := ten.Env(ca)
	return func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return os.Getenv(k)
	}
}
