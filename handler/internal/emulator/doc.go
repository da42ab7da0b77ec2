// Package emulator is an emulated Azure tenant for tests and for the local host of `make run`: the part
// of Microsoft Graph v1.0 this project uses, one Key Vault's secrets API, the App Service managed
// identity endpoint, and the ARM call that refreshes an App Service's Key Vault references.
//
// The production code talks to it with the real SDK clients and the real host names; only the network
// and the trust move (see /work/shared/reference/azure.md, section 7):
//
//   - one TLS listener with a certificate from a throwaway CA for graph.microsoft.com, *.vault.azure.net,
//     management.azure.com and login.microsoftonline.com, routing by Host;
//   - one plain-HTTP front listener that is an HTTP CONNECT proxy to the TLS listener for those hosts
//     (any other CONNECT is refused with 502 and recorded) and the managed identity endpoint /msi/token
//     (App Service protocol, api-version 2019-08-01, header X-IDENTITY-HEADER).
//
// A child process reaches it with Env; an in-process SDK client with HTTPClient, which trusts the CA and
// dials every https address to the TLS listener.
//
// # Strictness
//
// The fakes reject what Azure rejects: bearer tokens are JWTs signed by the emulator (HS256) and checked
// for audience, tenant and lifetime; Graph checks the token's roles, Key Vault checks the identity's
// RBAC roles (SetVaultRoles). Request bodies must decode as their Content-Encoding says (kiota bug #183),
// must be JSON, and may carry only the properties the emulator models: anything else is a 400. Every
// request that hits no route (and every unsupported property or query option) is answered with an error,
// written through Options.Logf and kept in Unknown, which tests should check is empty.
//
// # Eventual consistency
//
// SetReplicationDelay makes every application, service principal, app role assignment and password
// credential created from then on invisible for that long (wall clock): reads answer 404 or leave it out
// of lists, and using it as a reference fails as Graph fails (addPassword on a fresh application: 404;
// a service principal for a fresh application: 400 "does not reference a valid application object"; an
// assignment to or from a fresh service principal: 404 Request_ResourceNotFound). Writes keyed by a
// unique property (the uniqueName upsert, duplicate service principals and assignments) always see every
// object, as the directory enforces uniqueness at write time.
//
// SetConcurrencyViolationWindow (off by default) answers 409 Directory_ConcurrencyViolation to a
// credential change (addPassword, removePassword) that follows another credential change to the same
// application within the window, as Graph does for quick successive changes.
//
// # Faults
//
// AddFault injects failures per service and operation (the Op* constants): an error status (429 and 503
// carry Retry-After), a dropped connection or a hang until the client gives up, before the request is
// applied or after it (the write happened, its answer was lost), once, N times, always, or with a
// probability drawn from a seeded RNG (Options.Seed). Faults apply after authentication, so a Key Vault
// challenge is never faulted. Note that Go's transport silently resends an idempotent request (GET) whose
// reused keep-alive connection was dropped, so a single drop fault on a GET may go unnoticed by a client;
// and that kiota retries 429/503 three times (Retry-After 0 means at once), so a fault meant to reach the
// adapter through kiota's retry handler needs Times >= 4 or Always.
//
// # Stats
//
// Stats counts per service (HTTP requests; a $batch is one), per operation (batched requests one by
// one), api-version values, site refreshes and fired faults. Writes counts write operations that
// passed authentication and were not stopped by a fault first (whatever their answer), Applied those
// that changed the state, Challenges the 401 answers.
//
// # Tokens and the MSAL cache
//
// MSAL keeps managed identity tokens in a process-wide cache keyed by the identity's client id and the
// resource, so a test process that starts several tenants hands tokens issued by an earlier tenant to a
// later one. Tokens are therefore signed with a per-process key and accepted by every tenant of the
// process that has the same tenant id (the default). A test that needs tokens with other Graph roles
// (SetGraphRoles) through the real azidentity credential should give the tenant its own identity client
// id (Options.IdentityClientID, e.g. NewGUID()) and set AZURE_CLIENT_ID to it.
package emulator
