// Package infra holds the deployment of the function app, not Go code: the ARM templates (main.json,
// provision.json, main.parameters.example.json, main.parameters.msp.example.json) and the Azure CLI scripts
// (deploy.sh, grant-graph-permissions.sh, provision-script.sh, federated-app.sh). Its tests check what can be checked without Azure:
// parameters declared and used, the contract's app settings, the user-assigned identity, the built-in role
// ids, which roles each identity gets and at which scope, role assignment names seeded with the principal,
// the vault's permission model read from the vault, no secret as a default or an output, host.json's log
// levels, the embedded provisioning script and its behaviour against a local HTTPS server, the scripts
// against a fake az that replays Azure's answers (propagation failures included), the several instances
// and the multi-tenant application of split tenancy, and shellcheck.
// README.md explains the deployment.
package infra
