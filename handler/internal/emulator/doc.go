// Package emulator is an emulated Azure tenant for tests and for the local host of `make run`: the part
// of Microsoft Graph v1.0 this project uses, one Key Vault's secrets API, the App Service managed
// identity endpoint, the Entra ID token service's client-credentials grant, and the ARM call that
// refreshes an App Service's Key Vault references.
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
// # Graph realism switches
//
// SetGraphRealism (GraphRealism, all off by default) turns on what real Graph does beyond that
// (reference section 8):
//
//   - SPCreateForbidden: the service principal of a not yet replicated application, created by a caller
//     relying on Application.ReadWrite.OwnedBy, answers 403 Authorization_RequestDenied "When using this
//     permission, the backing application of the service principal being created must in the local
//     tenant." instead of the 400;
//   - AssignmentReferenceErrors: an assignment to or from a not yet replicated service principal answers,
//     alternately, 400 Request_BadRequest "Not a valid reference update." and a plain 404
//     Request_ResourceNotFound "Resource '<id>' does not exist.";
//   - LagWindow, LagProbability: lagging replicas. For LagWindow after a write, each read (GET of an
//     application with its passwordCredentials, of a service principal, an assignment list; each request
//     of a $batch on its own) is served, with probability LagProbability drawn from the seeded RNG, by a
//     replica that shows the directory as it was LagWindow ago: what was created since is missing, what was
//     removed since (credentials, assignments) is still there. Writes always see the truth. Removals are
//     remembered outside State: Snapshot shows the truth;
//   - UniqueNameRace, RaceWindow: the uniqueName upsert (Prefer: create-if-missing) of an application that
//     another request created less than RaceWindow ago answers 400 Request_BadRequest "Another object with
//     the same value for property uniqueName already exists." (ObjectConflict detail on uniqueName);
//   - RemovePasswordUnknown400: removePassword of a keyId the application does not hold answers 400
//     Request_BadRequest instead of 404;
//   - PasswordsForbidden: addPassword answers 400 CredentialTypeNotAllowedAsPerAppPolicy, and the default
//     app management policy lists an enabled passwordAddition restriction.
//
// Ownership needs no switch: an identity holding only Application.ReadWrite.OwnedBy gets 403
// Authorization_RequestDenied "Insufficient privileges to complete the operation." for every write to an
// application (and its service principal) it does not own; SetOwners replaces the owners, e.g. with none
// for a recreated identity. DELETE /servicePrincipals/{id}/appRoleAssignedTo/{assignmentId} (and
// .../appRoleAssignments/{assignmentId}) removes an assignment (OpRemoveAppRoleAssignment).
//
// # Key Vault soft delete, disabled versions, firewall
//
// Key Vault soft delete is always on, as in Azure. DeleteSecret (or DELETE /secrets/{name}, which answers
// the DeletedSecretBundle) moves a secret with all its versions to State.DeletedSecrets, recoverable for 90
// days: reads of it answer 404 SecretNotFound, and PUT answers 409 Conflict with inner code
// ObjectIsDeletedButRecoverable until it is recovered or purged (PurgeDeletedSecret).
// GET /deletedsecrets/{name} shows it (no value); POST /deletedsecrets/{name}/recover brings it back with
// all its versions after SetRecoveryDelay (0, the default: at once). While a recovery runs, reads answer
// 404, writes 409 ObjectIsBeingRecovered, and GET /deletedsecrets/{name} 404. Only Key Vault Secrets
// Officer and Administrator may delete, read deleted secrets and recover.
//
// GET of a disabled version (DisableCurrentVersion, or PATCH attributes.enabled=false) answers 403
// Forbidden with inner code SecretDisabled; listing versions still shows it, enabled false.
//
// SetVaultFirewall (off by default) answers every Key Vault request that carries a valid token with 403
// Forbidden, inner code ForbiddenByFirewall, as a vault whose firewall refuses the caller's address; the
// 401 challenge still comes first. A missing role answers 403 with inner code ForbiddenByRbac.
//
// # The token service (login.microsoftonline.com)
//
// ServiceLogin serves what azidentity's ClientSecretCredential needs (login.go): instance discovery
// (GET /common/discovery/instance, OpLoginInstanceDiscovery: MSAL asks it once per credential for its
// token cache's aliases unless DisableInstanceDiscovery), the tenant's OpenID configuration (GET
// /{tenant}/v2.0/.well-known/openid-configuration, OpLoginOpenIDConfiguration: once per credential) and
// the client-credentials grant (POST /{tenant}/oauth2/v2.0/token, OpLoginToken) with client_id,
// client_secret and scope {resource}/.default, where resource is a service principal's appId, one of its ServicePrincipalNames (Microsoft Graph:
// https://graph.microsoft.com; Intune API: https://api.manage.microsoft.com/) or its application's
// identifierUris. A tenant the emulated world does not have (see "Several tenants") answers 400
// invalid_tenant AADSTS90002; each tenant signs in from its own directory.
//
// A token is issued only for a replicated application (else 400 unauthorized_client AADSTS700016) with a
// service principal (else 401 invalid_client AADSTS7000229) that is enabled (else 400 unauthorized_client
// AADSTS7000112, see SetServicePrincipalEnabled), a replicated password credential whose secretText is the
// client_secret and that is older than SetSignInAcceptanceDelay (else 401 invalid_client AADSTS7000215)
// and not expired by Options.Now (else 401 invalid_client AADSTS7000222), for a known, enabled resource
// (else 400 invalid_resource AADSTS500011). Refusals carry Entra's body: error, error_description,
// error_codes, timestamp, trace_id, correlation_id, error_uri. The token is a v1.0 JWT signed like every
// other token (aud = the resource as requested, iss https://sts.windows.net/{tid}/, appid, oid and sub =
// the client's service principal, idtyp app) whose roles claim lists the values of the client's app role
// assignments on the resource (left out when there are none); it is recorded in IssuedSecrets. The
// client_assertion grant is described under "Several tenants"; other grant types, other assertion types,
// and a client_secret together with a client_assertion are not served: 400, kept in Unknown.
//
// # Several tenants
//
// The emulated world has a home tenant (Options.TenantID: the managed identity's, the vault's) and any
// number of customers' tenants, added with AddTenant (seeded like the home tenant, with Microsoft Graph and,
// unless noIntune, the Intune API service principals, without the managed identity). Each tenant has a
// directory of its own: a Graph request is served from the directory of its bearer token's tid (a token of
// a tenant the world does not have is 401), a token service request from the tenant in its path; Key
// Vault, ARM and the managed identity endpoint are the home tenant's. Snapshot and Mutate are the home
// tenant's state (its directory and the vault); SnapshotOf and MutateTenant any tenant's (only the home
// tenant's holds Secrets); Tenants lists them. The handlers run with t.state pointed at the request's
// directory (enter, in execute) and the home directory otherwise.
//
// Across tenants without a secret (reference section 8): the managed identity endpoint issues a token for
// resource api://AzureADTokenExchange (aud api://AzureADTokenExchange, iss FederatedIssuer(home) =
// https://login.microsoftonline.com/{home}/v2.0, sub and oid the identity's object id, tid home, ver 2.0).
// RegisterFederatedApp creates in the home tenant a multi-tenant application (AzureADMultipleOrgs) with a
// federated identity credential that trusts that token (issuer FederatedIssuer(home), subject the
// identity's object id, audience api://AzureADTokenExchange), and its service principal at home;
// ConsentFederatedApp is an administrator of a tenant consenting to it: its service principal there
// (appOwnerOrganizationId home) with the Graph application permissions given assigned.
//
// The token service accepts the client_assertion grant (grant_type client_credentials, client_id,
// client_assertion_type urn:ietf:params:oauth:client-assertion-type:jwt-bearer, client_assertion, scope
// {resource}/.default), as azidentity's ClientAssertionCredential sends it, checked in this order:
// the application (in the tenant's own directory, or a multi-tenant application of another tenant of the
// world) with its service principal in the tenant, else 400 unauthorized_client AADSTS700016 "Application
// with identifier '{appId}' was not found in the directory '{tenant}'. …" (the application is not
// consented there; for an application of the tenant itself without a service principal, 401
// invalid_client AADSTS7000229); the service principal enabled, else AADSTS7000112; the assertion a JWT
// signed by the emulator, else 400 invalid_request AADSTS50027 "JWT token is invalid or malformed."; within
// its lifetime, else 401 invalid_client AADSTS700024 "Client assertion is not within its valid time range.
// Current time: …, assertion valid from …, expiry time of assertion …. …"; a federated identity credential
// of the application whose issuer, subject and one audience equal the assertion's iss, sub and aud
// (case-sensitive), else 400 invalid_request AADSTS70021 "No matching federated identity record found for
// presented assertion. Assertion Issuer: '…'. Assertion Subject: '…'. Assertion Audience: '…'. …" (the
// error field as in Azure/azure-workload-identity#616). The access token is the application token of its
// service principal in the target tenant (tid and iss that tenant's, oid and sub the service principal,
// roles its app role assignments there, appidacr 2), recorded in IssuedSecrets. The client-secret grant
// works in every tenant, for applications of that tenant's directory.
//
// Faults per tenant: Fault.TenantID limits a fault to one tenant's requests (Graph by the token's tid,
// the token service by its path; Key Vault, ARM and the managed identity belong to the home tenant).
// SetTenantDown answers every Graph and token service request of a tenant with 503, Retry-After 0 and the
// service's error body, after authentication and before any fault, until it is turned off; Key Vault,
// ARM and the managed identity endpoint keep answering. SetLatency is global. Stats.ByTenant counts the
// Graph and token service HTTP requests per tenant.
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
// one), per tenant (Graph and the token service), api-version values, site refreshes and fired faults. Writes counts write operations that
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
