package emulator

import (
	"fmt"
	"slices"
	"strings"
)

// directory is one tenant of the emulated world: its Graph directory (State) and, for the home tenant,
// the vault. Guarded by Tenant.mu.
type directory struct {
	id    string // the tenant id: as Options.TenantID gave it for the home tenant, lower case for the others
	state *State
	down  bool // SetTenantDown
}

// homeDir is the home tenant's directory: the managed identity's, the vault's. Runs under t.mu.
func (t *Tenant) homeDir() *directory { return t.dirs[strings.ToLower(t.tenantID)] }

// dir returns the directory of a tenant id (case-insensitive), or nil when the world has no such tenant.
// Runs under t.mu.
func (t *Tenant) dir(tenantID string) *directory { return t.dirs[strings.ToLower(tenantID)] }

// AddTenant adds a customer's tenant to the emulated world, seeded as the home tenant is (the Microsoft
// Graph service principal and, unless noIntune, the Microsoft Intune API's), without the managed identity,
// which lives in the home tenant. Its Graph answers requests whose token carries its tid, its token
// service answers at login.microsoftonline.com/{tenantID}/…; Key Vault, ARM and the managed identity
// endpoint stay the home tenant's. tenantID must be a GUID the world does not have yet.
func (t *Tenant) AddTenant(tenantID string, noIntune bool) error {
	if !isGUID(tenantID) {
		return fmt.Errorf("emulator: adding tenant %q: a tenant id is a GUID", tenantID)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dir(tenantID) != nil {
		return fmt.Errorf("emulator: adding tenant %s: the emulated world has it already", tenantID)
	}
	d := &directory{id: strings.ToLower(tenantID), state: &State{}}
	seedResources(d.state, noIntune)
	t.dirs[d.id] = d
	return nil
}

// Tenants returns the tenant ids of the world: the home tenant first, then the added ones in order of
// their ids.
func (t *Tenant) Tenants() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := []string{t.tenantID}
	for _, d := range t.otherDirs() {
		ids = append(ids, d.id)
	}
	return ids
}

// otherDirs returns the directories of the added tenants, in order of their ids. Runs under t.mu.
func (t *Tenant) otherDirs() []*directory {
	var out []*directory
	for _, d := range t.dirs {
		if d != t.homeDir() {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b *directory) int { return strings.Compare(a.id, b.id) })
	return out
}

// SnapshotOf returns a deep copy of a tenant's state (Snapshot for the home tenant); the zero State for a
// tenant the world does not have. Only the home tenant's holds Secrets.
func (t *Tenant) SnapshotOf(tenantID string) State {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.dir(tenantID)
	if d == nil {
		t.logf("EMULATOR: SnapshotOf: the emulated world has no tenant %q", tenantID)
		return State{}
	}
	return d.state.clone()
}

// MutateTenant is Mutate for any tenant of the world. For a tenant it does not have, fn is not called and
// the mistake is logged loudly.
func (t *Tenant) MutateTenant(tenantID string, fn func(*State)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.dir(tenantID)
	if d == nil {
		t.logf("EMULATOR: MutateTenant: the emulated world has no tenant %q; nothing changed", tenantID)
		return
	}
	fn(d.state)
	d.state.normalize()
}

// SetTenantDown makes every Graph request whose token is of that tenant, and every token service request
// for it (OpenID configuration and token), answer 503 with Retry-After: 0 and the service's error body
// ("ServiceUnavailable"), until it is set back to false. It comes after authentication and before any
// fault. Key Vault, ARM and the managed identity endpoint are not affected, also for the home tenant.
func (t *Tenant) SetTenantDown(tenantID string, down bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.dir(tenantID)
	if d == nil {
		t.logf("EMULATOR: SetTenantDown: the emulated world has no tenant %q", tenantID)
		return
	}
	d.down = down
}

// requestTenant is the directory a request belongs to: for Graph the tid of its (verified) token, for the
// token service the tenant in its path (nil when unknown, or for /common), for the other services the home
// tenant. Runs under t.mu.
func (t *Tenant) requestTenant(req *request) *directory {
	switch req.service {
	case ServiceGraph:
		if req.claims == nil {
			return nil
		}
		return t.dir(req.claims.Tid)
	case ServiceLogin:
		if len(req.segs) == 0 {
			return nil
		}
		return t.dir(req.segs[0])
	}
	return t.homeDir()
}

// tenantScoped tells whether a service answers per tenant (Graph and the token service).
func tenantScoped(service string) bool { return service == ServiceGraph || service == ServiceLogin }

// enter points t.state at d (the home directory when nil) for a handler, and returns what restores it.
// Runs under t.mu.
func (t *Tenant) enter(d *directory) (restore func()) {
	if d == nil {
		d = t.homeDir()
	}
	prevState, prevID := t.state, t.dirID
	t.state, t.dirID = d.state, d.id
	return func() { t.state, t.dirID = prevState, prevID }
}
