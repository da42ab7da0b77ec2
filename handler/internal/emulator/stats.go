package emulator

import "maps"

// Service names, as used in Stats and Fault.
const (
	ServiceGraph    = "graph"
	ServiceKeyVault = "keyvault"
	ServiceIdentity = "identity"
	ServiceARM      = "arm"
	ServiceLogin    = "login" // the Entra ID token service at login.microsoftonline.com (login.go)
)

// Operation names, as used in Stats and Fault. A request that hits no route counts as "<service>.unknown".
const (
	OpGetApplication           = "graph.getApplication"
	OpUpsertApplication        = "graph.upsertApplication" // PATCH /applications(uniqueName='…')
	OpUpdateApplication        = "graph.updateApplication" // PATCH /applications/{id} or (appId='…')
	OpAddPassword              = "graph.addPassword"
	OpRemovePassword           = "graph.removePassword"
	OpGetServicePrincipal      = "graph.getServicePrincipal"
	OpCreateServicePrincipal   = "graph.createServicePrincipal" // POST /servicePrincipals
	OpUpsertServicePrincipal   = "graph.upsertServicePrincipal" // PATCH /servicePrincipals(appId='…')
	OpListAppRoleAssignments   = "graph.listAppRoleAssignments"
	OpListAppRoleAssignedTo    = "graph.listAppRoleAssignedTo"
	OpAssignAppRole            = "graph.assignAppRole" // POST /servicePrincipals/{id}/appRoleAssignedTo
	OpGetAppManagementPolicy   = "graph.getDefaultAppManagementPolicy"
	OpBatch                    = "graph.batch"
	OpBatchFailedDependency    = "graph.batch.failedDependency" // a batched request not run: 424
	OpSetSecret                = "keyvault.setSecret"
	OpGetSecret                = "keyvault.getSecret"
	OpListSecretVersions       = "keyvault.listSecretVersions"
	OpListSecrets              = "keyvault.listSecrets"
	OpUpdateSecretProperties   = "keyvault.updateSecretProperties"
	OpDeleteSecret             = "keyvault.deleteSecret"         // DELETE /secrets/{name}
	OpGetDeletedSecret         = "keyvault.getDeletedSecret"     // GET /deletedsecrets/{name}
	OpRecoverDeletedSecret     = "keyvault.recoverDeletedSecret" // POST /deletedsecrets/{name}/recover
	OpIdentityToken            = "identity.token"
	OpRefreshConfigReferences  = "arm.refreshConfigReferences"
	OpLoginInstanceDiscovery   = "login.instanceDiscovery"   // GET /common/discovery/instance
	OpLoginOpenIDConfiguration = "login.openidConfiguration" // GET /{tenant}/v2.0/.well-known/openid-configuration
	OpLoginToken               = "login.token"               // POST /{tenant}/oauth2/v2.0/token
	opUnknownSuffix            = ".unknown"
	statusClientClosedRequest  = 499 // recorded when a fault dropped or hung the answer
	statusDroppedWithoutAnswer = statusClientClosedRequest
)

// Stats counts what the fakes saw since Start or ResetStats.
type Stats struct {
	// Services is keyed by service name (ServiceGraph, …).
	Services map[string]ServiceStats
	// Ops is keyed by operation name (OpAddPassword, …); requests inside a $batch count here one by one.
	Ops map[string]OpStats
	// APIVersions counts the api-version query values, keyed "<service> <version>".
	APIVersions map[string]int
	// SiteRefreshes counts config reference refreshes per site id (as registered with SetSite).
	SiteRefreshes map[string]int
	// FaultsFired counts injected faults that fired.
	FaultsFired int
	// ByTenant counts the Graph and token service HTTP requests per tenant id (a $batch is one): Graph
	// requests whose token passed authentication, by its tid; token service requests that name a tenant
	// of the world in their path.
	ByTenant map[string]int
}

// ServiceStats are the counters of one service.
type ServiceStats struct {
	Requests   int // HTTP requests received (a $batch is one)
	Writes     int // write operations that reached the fake (authenticated, not stopped by a fault first)
	Applied    int // write operations that changed the state
	Challenges int // 401 answers (Key Vault's challenge included)
	Errors     int // answers with status >= 400 (batched ones included)
}

// OpStats are the counters of one operation.
type OpStats struct {
	Requests int
	Writes   int
	Applied  int
	Errors   int
	Statuses map[int]int // answers per status; 499 when a fault dropped the answer
}

// Service returns the counters of a service (zero when it saw nothing).
func (s Stats) Service(name string) ServiceStats { return s.Services[name] }

// Op returns the counters of an operation (zero when it saw nothing).
func (s Stats) Op(name string) OpStats { return s.Ops[name] }

func newStats() Stats {
	return Stats{
		Services:      map[string]ServiceStats{},
		Ops:           map[string]OpStats{},
		APIVersions:   map[string]int{},
		SiteRefreshes: map[string]int{},
		ByTenant:      map[string]int{},
	}
}

func (s Stats) clone() Stats {
	c := Stats{
		Services:      maps.Clone(s.Services),
		Ops:           make(map[string]OpStats, len(s.Ops)),
		APIVersions:   maps.Clone(s.APIVersions),
		SiteRefreshes: maps.Clone(s.SiteRefreshes),
		FaultsFired:   s.FaultsFired,
		ByTenant:      maps.Clone(s.ByTenant),
	}
	for k, v := range s.Ops {
		v.Statuses = maps.Clone(v.Statuses)
		c.Ops[k] = v
	}
	return c
}

// The helpers below run under Tenant.mu.

func (s *Stats) service(name string, f func(*ServiceStats)) {
	v := s.Services[name]
	f(&v)
	s.Services[name] = v
}

func (s *Stats) op(name string, f func(*OpStats)) {
	v := s.Ops[name]
	f(&v)
	s.Ops[name] = v
}

// answered records the final status of an operation.
func (s *Stats) answered(service, op string, status int) {
	s.op(op, func(o *OpStats) {
		if o.Statuses == nil {
			o.Statuses = map[int]int{}
		}
		o.Statuses[status]++
		if status >= 400 {
			o.Errors++
		}
	})
	if status >= 400 {
		s.service(service, func(v *ServiceStats) { v.Errors++ })
	}
	if status == 401 {
		s.service(service, func(v *ServiceStats) { v.Challenges++ })
	}
}
