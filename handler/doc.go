/*
The handler is the whole function app: the Azure Functions host starts it, forwards the two HTTP
functions to it as the original requests, and posts the two timer invocations to it.

How the pieces fit:

	Functions host --HTTP--> server (Echo)       routes, host protocol (hostproto), one error handler
	                            |
	                      appreg.Engine          desired state, observation, findings (Diff), plan, apply
	                       |           |
	            appreg.Directory   appreg.Vault  small interfaces, declared by the engine
	                       |           |
	                     graph      keyvault     thin adapters: msgraph-sdk-go / azsecrets; errors
	                       |           |         classified once into appreg's sentinels
	                       +-- azure --+         one *http.Client (proxy, CA trust) and the credential
	                                             (managed identity, or the developer's az login)

The rest:

  - main.go is a few lines; run.go holds run(ctx, getenv, stdout), which tests start on port 0.
  - config loads every setting once, at start; an invalid one is reported by name in the log and in
    every response, and the engine is not built, so nothing is written.
  - logctx carries the request's logger (with invocationId) into the engine.
  - arm refreshes the Key Vault references of App Services after a rotation.
  - emulator is the emulated tenant: fake Microsoft Graph, Key Vault, managed identity and ARM, served
    over HTTPS with a throwaway CA and reached through an HTTPS proxy, so the production binary and the
    real SDK clients run unchanged against it (SSL_CERT_FILE, HTTPS_PROXY, IDENTITY_ENDPOINT).
  - funchost is a small local Functions host (cmd/funchost) for make run and the black-box tests: it
    starts bin/handler as the host does, forwards /api/..., and fires the timers.

Only the graph package imports msgraph-sdk-go: its cold build costs minutes and gigabytes, and every
other package, test binaries included, stays free of it.
*/
package main
