// Package e2e holds the black-box tests: they build bin/handler from this module, run it under the local
// Functions host (package funchost) the way the Azure Functions host does, on an emulated tenant (package
// emulator) reached through an HTTPS proxy and a throwaway CA, and check what the tenant holds afterwards.
// The handler is the production binary, unchanged; the package has no code of its own.
package e2e
