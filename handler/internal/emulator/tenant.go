package emulator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultTenantID         = "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
	DefaultVaultName        = "appreg-emulated"
	DefaultIdentityClientID = "7e1d9c5b-3a2f-4e8d-9c6b-1a0f2e3d4c5b"
	DefaultIdentityObjectID = "0b9a8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d"
	DefaultPageSize         = 2
)

// Graph application permissions (token roles) the emulator checks.
const (
	RoleApplicationReadWriteOwnedBy   = "Application.ReadWrite.OwnedBy"
	RoleApplicationReadAll            = "Application.Read.All"
	RoleApplicationReadWriteAll       = "Application.ReadWrite.All"
	RoleAppRoleAssignmentReadWriteAll = "AppRoleAssignment.ReadWrite.All"
	RoleDirectoryReadAll              = "Directory.Read.All"
	RoleDirectoryReadWriteAll         = "Directory.ReadWrite.All"
	RolePolicyReadAll                 = "Policy.Read.All"
)

// Key Vault RBAC roles the emulator knows.
const (
	VaultRoleAdministrator  = "Key Vault Administrator"
	VaultRoleSecretsOfficer = "Key Vault Secrets Officer"
	VaultRoleSecretsUser    = "Key Vault Secrets User"
	VaultRoleReader         = "Key Vault Reader"
)

// DefaultGraphRoles returns the three least-privilege Graph roles of the function's managed identity.
func DefaultGraphRoles() []string {
	return []string{RoleApplicationReadWriteOwnedBy, RoleApplicationReadAll, RoleAppRoleAssignmentReadWriteAll}
}

// DefaultVaultRoles returns the default Key Vault roles of the identity.
func DefaultVaultRoles() []string { return []string{VaultRoleSecretsOfficer} }

// Options configure Start. The zero value is a usable tenant.
type Options struct {
	TenantID   string   // default DefaultTenantID
	VaultName  string   // default "appreg-emulated" -> https://appreg-emulated.vault.azure.net/
	GraphRoles []string // Graph app roles in the identity's tokens; nil -> DefaultGraphRoles
	VaultRoles []string // RBAC roles of the identity on the vault; nil -> DefaultVaultRoles
	NoIntune   bool     // leave the Microsoft Intune API service principal out of the tenant
	// Now is the clock of createdDateTime, startDateTime, Key Vault's created/updated and the password
	// lifetime policy; nil -> time.Now. Token lifetimes and replication delays use the wall clock.
	Now      func() time.Time
	PageSize int                              // page size of list answers; 0 -> 2 (forces paging)
	Logf     func(format string, args ...any) // where loud failures are written; nil -> log.Printf

	// IdentityClientID is the client id of the managed identity; "" -> DefaultIdentityClientID (with
	// object id DefaultIdentityObjectID). Any other value gets a random object id. See the package doc
	// about MSAL's process-wide token cache.
	IdentityClientID string
	// Seed seeds the RNG of probabilistic faults; 0 -> 1.
	Seed uint64
	// TLSAddr and FrontAddr are the listen addresses; "" -> "127.0.0.1:0".
	TLSAddr, FrontAddr string
}

// Tenant is a running emulated tenant. All methods are safe for concurrent use.
type Tenant struct {
	tenantID, vaultName, vaultHost string
	identityClientID               string
	identityObjectID               string
	identityHeader                 string
	pageSize                       int
	nowFn                          func() time.Time
	logfFn                         func(format string, args ...any)

	ca        *certAuthority
	tlsLn     net.Listener
	frontLn   net.Listener
	tlsSrv    *http.Server
	frontSrv  *http.Server
	transport *http.Transport
	closing   chan struct{}
	closeOnce sync.Once
	closed    atomic.Bool

	mu sync.Mutex // guards everything below
	// state is the directory the running handler serves: the home tenant's (dirs[home]) except while a
	// Graph or token service handler of another tenant runs (execute, directory.go). dirID is its tenant id.
	state               *State
	dirID               string
	dirs                map[string]*directory // by lower-cased tenant id, the home tenant included
	graphRoles          []string
	vaultRoles          []string
	replicationDelay    time.Duration
	latency             time.Duration
	concurrencyWindow   time.Duration
	maxPasswordLifetime time.Duration
	lastCredChange      map[string]time.Time // application object id -> wall clock
	graphRealism        realism              // SetGraphRealism and what it needs to know (realism.go)
	sites               map[string]int       // lower-cased site id -> status
	siteNames           map[string]string    // lower-cased site id -> id as registered
	cloud               cloudState           // SetIdentityFailure, ARMRequestsByHost (front.go, arm.go)
	faults              []*faultEntry
	rng                 *rand.Rand
	stats               Stats
	issued              []string
	unknown             []string
	tunnels             map[net.Conn]struct{}
	vaultRealism        vaultRealism // Key Vault behaviours that are off by default (vault_deleted.go)
	login               loginState   // the token service's settings (login.go)
}

// Start starts an emulated tenant. Close it when done.
func Start(opts Options) (*Tenant, error) {
	t := &Tenant{
		tenantID:         cmpOr(opts.TenantID, DefaultTenantID),
		vaultName:        strings.ToLower(cmpOr(opts.VaultName, DefaultVaultName)),
		identityClientID: cmpOr(opts.IdentityClientID, DefaultIdentityClientID),
		identityObjectID: DefaultIdentityObjectID,
		identityHeader:   newSecretText(),
		pageSize:         opts.PageSize,
		nowFn:            opts.Now,
		logfFn:           opts.Logf,
		closing:          make(chan struct{}),
		graphRoles:       slices.Clone(opts.GraphRoles),
		vaultRoles:       slices.Clone(opts.VaultRoles),
		lastCredChange:   map[string]time.Time{},
		sites:            map[string]int{},
		siteNames:        map[string]string{},
		rng:              rand.New(rand.NewPCG(max(opts.Seed, 1), 0x5eed)),
		stats:            newStats(),
		tunnels:          map[net.Conn]struct{}{},
	}
	if opts.IdentityClientID != "" && !strings.EqualFold(opts.IdentityClientID, DefaultIdentityClientID) {
		t.identityObjectID = NewGUID()
	}
	if t.pageSize <= 0 {
		t.pageSize = DefaultPageSize
	}
	if t.nowFn == nil {
		t.nowFn = time.Now
	}
	if t.logfFn == nil {
		t.logfFn = log.Printf
	}
	if opts.GraphRoles == nil {
		t.graphRoles = DefaultGraphRoles()
	}
	if opts.VaultRoles == nil {
		t.vaultRoles = DefaultVaultRoles()
	}
	if !validVaultName(t.vaultName) {
		return nil, fmt.Errorf("emulator: invalid vault name %q", t.vaultName)
	}
	t.vaultHost = t.vaultName + VaultSuffix
	t.issued = append(t.issued, t.identityHeader)
	home := &directory{id: t.tenantID, state: &State{}}
	t.dirs = map[string]*directory{strings.ToLower(t.tenantID): home}
	t.state, t.dirID = home.state, home.id
	t.seed(opts.NoIntune)

	ca, err := newCertAuthority([]string{GraphHost, vaultPattern, ARMHost, ARMHostUSGov, LoginHost})
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	t.ca = ca

	if t.tlsLn, err = net.Listen("tcp", cmpOr(opts.TLSAddr, "127.0.0.1:0")); err != nil {
		return nil, fmt.Errorf("emulator: TLS listener: %w", err)
	}
	if t.frontLn, err = net.Listen("tcp", cmpOr(opts.FrontAddr, "127.0.0.1:0")); err != nil {
		t.tlsLn.Close()
		return nil, fmt.Errorf("emulator: front listener: %w", err)
	}
	errorLog := log.New(logWriter{t}, "emulator: ", 0)
	tlsConfig := &tls.Config{
		Certificates: []tls.Certificate{ca.leaf},
		NextProtos:   []string{"http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}
	t.tlsSrv = &http.Server{
		Handler:           http.HandlerFunc(t.serveTLS),
		TLSConfig:         tlsConfig,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){}, // HTTP/1.1 only
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          errorLog,
	}
	t.frontSrv = &http.Server{
		Handler:           http.HandlerFunc(t.serveFront),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          errorLog,
	}
	go t.tlsSrv.Serve(tls.NewListener(t.tlsLn, tlsConfig))
	go t.frontSrv.Serve(t.frontLn)

	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tlsAddr := t.tlsLn.Addr().String()
	t.transport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
				return dialer.DialContext(ctx, network, addr) // the identity endpoint
			}
			return dialer.DialContext(ctx, "tcp", tlsAddr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	return t, nil
}

// Close stops the listeners and ends open tunnels and hanging requests.
func (t *Tenant) Close() {
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		close(t.closing)
		t.tlsSrv.Close()
		t.frontSrv.Close()
		t.mu.Lock()
		for c := range t.tunnels {
			c.Close()
		}
		t.mu.Unlock()
		t.transport.CloseIdleConnections()
	})
}

// CAPEM returns the throwaway CA certificate in PEM.
func (t *Tenant) CAPEM() []byte { return slices.Clone(t.ca.pem) }

// WriteCA writes the CA certificate (PEM) to path, for SSL_CERT_FILE.
func (t *Tenant) WriteCA(path string) error {
	if err := os.WriteFile(path, t.ca.pem, 0o644); err != nil {
		return fmt.Errorf("emulator: writing CA: %w", err)
	}
	return nil
}

// HTTPClient returns a client for in-process SDK clients: it trusts the CA and dials every https
// address to the TLS listener (loopback addresses, such as the identity endpoint, are dialled as they
// are). It uses no proxy.
func (t *Tenant) HTTPClient() *http.Client { return &http.Client{Transport: t.transport} }

// ProxyURL returns http://127.0.0.1:<front>, for HTTPS_PROXY.
func (t *Tenant) ProxyURL() string { return "http://" + t.frontLn.Addr().String() }

// IdentityEndpoint returns http://127.0.0.1:<front>/msi/token, for IDENTITY_ENDPOINT.
func (t *Tenant) IdentityEndpoint() string { return t.ProxyURL() + "/msi/token" }

// IdentityHeader returns the secret the identity endpoint expects in X-IDENTITY-HEADER.
func (t *Tenant) IdentityHeader() string { return t.identityHeader }

// IdentityClientID returns the client id (appid) of the managed identity.
func (t *Tenant) IdentityClientID() string { return t.identityClientID }

// IdentityObjectID returns the object id (oid) of the managed identity, also its service principal id.
func (t *Tenant) IdentityObjectID() string { return t.identityObjectID }

// VaultURL returns https://<vault>.vault.azure.net/.
func (t *Tenant) VaultURL() string { return "https://" + t.vaultHost + "/" }

// TenantID returns the directory (tenant) id.
func (t *Tenant) TenantID() string { return t.tenantID }

// TLSAddr returns the address of the TLS listener (host:port).
func (t *Tenant) TLSAddr() string { return t.tlsLn.Addr().String() }

// Env returns the environment a process needs to reach the tenant: HTTPS_PROXY, SSL_CERT_FILE (caFile,
// see WriteCA), IDENTITY_ENDPOINT, IDENTITY_HEADER and APPREG_KEY_VAULT_URL.
func (t *Tenant) Env(caFile string) map[string]string {
	return map[string]string{
		"HTTPS_PROXY":          t.ProxyURL(),
		"SSL_CERT_FILE":        caFile,
		"IDENTITY_ENDPOINT":    t.IdentityEndpoint(),
		"IDENTITY_HEADER":      t.identityHeader,
		"APPREG_KEY_VAULT_URL": t.VaultURL(),
	}
}

// Snapshot returns a deep copy of the home tenant's state (its directory and the vault), invisible (not
// yet replicated) objects included. SnapshotOf returns another tenant's.
func (t *Tenant) Snapshot() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.homeDir().state.clone()
}

// Mutate runs fn on the home tenant's live state under the tenant's lock (drift set-up). Do not keep the
// pointer. Empty ids, key ids and versions that fn leaves are filled in afterwards. MutateTenant changes
// another tenant's.
func (t *Tenant) Mutate(fn func(s *State)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.homeDir().state
	fn(s)
	s.normalize()
}

// Stats returns a copy of the counters.
func (t *Tenant) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats.clone()
}

// ResetStats zeroes the counters.
func (t *Tenant) ResetStats() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stats = newStats()
}

// IssuedSecrets returns every secret the tenant issued or stored: secretTexts, Key Vault secret values,
// access tokens and the identity header. Tests scan logs and answers for them.
func (t *Tenant) IssuedSecrets() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.issued)
}

// Unknown returns the requests that hit no route (and unsupported properties or query options), in
// order. Tests should fail when it is not empty.
func (t *Tenant) Unknown() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.unknown)
}

// now is the business clock (Options.Now), in UTC whole seconds.
func (t *Tenant) now() time.Time { return utcSeconds(t.nowFn()) }

// visibleAt is the VisibleAt of an object created now. Runs under t.mu.
func (t *Tenant) visibleAt() time.Time {
	if t.replicationDelay <= 0 {
		return time.Time{}
	}
	return time.Now().Add(t.replicationDelay)
}

// logf writes through Options.Logf unless the tenant is closed (a test's Logf panics after the test).
func (t *Tenant) logf(format string, args ...any) {
	if t.closed.Load() {
		return
	}
	t.logfFn(format, args...)
}

// noteUnknown records and loudly logs something the emulator does not serve. Runs without t.mu.
func (t *Tenant) noteUnknown(format string, args ...any) {
	desc := fmt.Sprintf(format, args...)
	t.mu.Lock()
	t.unknown = append(t.unknown, desc)
	t.mu.Unlock()
	t.logf("EMULATOR: UNKNOWN REQUEST (not served, answered with an error): %s", desc)
}

// issue records an issued secret. Runs under t.mu.
func (t *Tenant) issue(secret string) { t.issued = append(t.issued, secret) }

// logWriter sends the servers' error log (TLS handshake failures, …) through Logf.
type logWriter struct{ t *Tenant }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// errClosed is returned by waits that end because the tenant closed.
var errClosed = errors.New("emulator closed")

// sleep waits d unless ctx ends or the tenant closes first.
func (t *Tenant) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.closing:
		return errClosed
	}
}
