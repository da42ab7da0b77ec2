// Package emulatortest is what a test needs around an emulated tenant, in one place:
//
//   - Start and NewTenant start one (in-process SDK clients, or a handler in a process of its own), and Env
//     and Getenv are the environment of a process deployed against it;
//   - Check is the oracle: the invariants of the contract that the tenant's state must satisfy at each
//     Phase (Verify fails a test with them; Unnamed and Age help the tests that reach the orphan rule);
//   - Hygiene scans what the tests saw (answers, errors, logs) for the secrets the tenants issued.
//
// It knows the contract, not the code under test: it does not import appreg, and what it cannot know (the
// orphan age, another permission level) comes in Want. Its sub-package report writes the tables of
// RELIABILITY.md.
package emulatortest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

// Start starts a tenant for an in-process test of the real SDK clients: with a managed identity of its
// own (MSAL's token cache is process-wide, so a fresh identity is what makes the tenant's tokens, with its
// Graph roles, the ones used) and the process's managed identity variables pointed at it: it sets
// IDENTITY_ENDPOINT, IDENTITY_HEADER and AZURE_CLIENT_ID for the test (t.Setenv), so the test must not run
// in parallel. Otherwise as NewTenant.
func Start(t *testing.T, opts emulator.Options) *emulator.Tenant {
	t.Helper()
	if opts.IdentityClientID == "" {
		opts.IdentityClientID = emulator.NewGUID()
	}
	ten := NewTenant(t, opts)
	t.Setenv("IDENTITY_ENDPOINT", ten.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", ten.IdentityHeader())
	t.Setenv("AZURE_CLIENT_ID", ten.IdentityClientID())
	return ten
}

// NewTenant starts a tenant and closes it when the test ends, with its loud failures in the test log and
// a test failure if it saw a request it does not know. It changes nothing in the process, so a test that
// runs the handler in processes of its own (Env) may run in parallel.
func NewTenant(t testing.TB, opts emulator.Options) *emulator.Tenant {
	t.Helper()
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
	return ten
}

// Env is the environment of a process deployed against the tenant (Tenant.Env: HTTPS_PROXY, SSL_CERT_FILE
// with the tenant's CA written to a temporary file of the test, the identity endpoint and header, the vault
// URL). The map is the caller's to extend.
func Env(t testing.TB, ten *emulator.Tenant) map[string]string {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := ten.WriteCA(ca); err != nil {
		t.Fatal(err)
	}
	return ten.Env(ca)
}

// Getenv is Env over the process's own environment.
func Getenv(t testing.TB, ten *emulator.Tenant) func(string) string {
	t.Helper()
	env := Env(t, ten)
	return func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return os.Getenv(k)
	}
}

// Customer adds tenantID to ten's world as a customer tenant, registers the federated application (its
// federated credential trusting ten's managed identity) and has the customer's administrator consent to
// it with roles; it returns the application's id.
func Customer(t testing.TB, ten *emulator.Tenant, tenantID string, roles ...string) (appID string) {
	t.Helper()
	if err := ten.AddTenant(tenantID, false); err != nil {
		t.Fatal(err)
	}
	appID = ten.RegisterFederatedApp("SCEPman app registrations (MSP)")
	if err := ten.ConsentFederatedApp(tenantID, appID, roles...); err != nil {
		t.Fatal(err)
	}
	return appID
}
