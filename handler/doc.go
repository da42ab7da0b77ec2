/*
The handler is the whole function app: the Azure Functions host starts it, forwards the two HTTP
functions to it as the original requests, and posts the two timer invocations to it.

How the pieces fit:

	Functions host --HTTP--> server (Echo)        routes, ?instance=, host protocol (hostproto), one error handler
	                            |                  (every instance, a bounded number at once, for the timers)
	                  one appreg.Engine per instance
	                            |   observe.go    read the tenant (lagging reads confirmed), the secret (soft delete,
	                            |                 disabled versions), then sign in with it (signin.go)
	                            |   diff.go       desired state and findings
	                            |   provision.go  application, principal, consent; secret.go: add, store, recover
	                            |   rotate.go     renewal in the safe order, removal after the overlap
	              +-------------+---------------+----------------+
	       appreg.Directory  appreg.Vault   appreg.SignIn   appreg.Refresher   small interfaces, declared by
	              |             |               |                |             the engine
	            graph        keyvault         entra             arm            thin adapters: msgraph-sdk-go,
	              |             |               |                |             azsecrets, azidentity's client-
	              +-------------+-------+-------+----------------+             secret credential, ARM; errors
	                                    |                                      classified once into appreg's
	                                  azure                                    sentinels
	          one *http.Client (proxy, CA trust), the managed identity (or the developer's az login), and the
	          Federation: a credential per tenant (the identity at home, the federated application elsewhere)

The rest:

  - main.go is a few lines; run.go holds run(ctx, getenv, stdout), which tests start on port 0. It loads
    the settings, builds every instance's engine (newInstances), then listens.
  - config loads every setting once, at start (APPREG_INSTANCES in instances.go); an invalid one is reported
    by name in the log and in every response, and no engine is built, so nothing is written.
  - retries live in the engine (appreg/retry.go): capped exponential back-off with jitter, a floor of the
    service's Retry-After, bounded by the invocation's deadline and, for an unbroken run of transient
    errors, by a patience of 150 s, so that a timer over many instances reports a tenant that is down
    instead of holding its slot to the end.
  - logctx carries the request's logger (invocationId, instance) into the engine; without one, the default
    logger, which run sets to its own.
  - emulator is the emulated world: fake Microsoft Graph (several tenants), Key Vault, the managed identity,
    Entra ID's token service and ARM, served over HTTPS with a throwaway CA and reached through an HTTPS
    proxy, so the production binary and the real SDK clients run unchanged against it (SSL_CERT_FILE,
    HTTPS_PROXY, IDENTITY_ENDPOINT). Its switches model what real Azure does (reference section 8).
    emulator/emulatortest is the tests' one home: it starts a tenant, holds the invariants (the one test
    oracle), the secret-hygiene scan, and (report) the tables of RELIABILITY.md.
  - funchost is a small local Functions host (cmd/funchost) for make run and the black-box tests (e2e): it
    starts bin/handler as the host does, forwards /api/..., and fires the timers.
  - cmd/bench measures and writes BENCHMARKS.md's tables, cmd/reldoc writes RELIABILITY.md's (both through
    docsection); pack builds the deployment zip (cmd/pack).

Only the graph package imports msgraph-sdk-go: its cold build costs minutes and gigabytes, and every
other package, test binaries included, stays free of it.
*/
package main
