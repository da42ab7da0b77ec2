// Package infra holds the deployment of the function app, not Go code: the ARM templates (main.json,
// provision.json, main.parameters.example.json) and the Azure CLI scripts (deploy.sh,
// grant-graph-permissions.sh, provision-script.sh). Its tests check what can be checked without Azure:
// parameters declared and used, the contract's app settings, the built-in role ids and which roles the
// function's identity gets, no secret as a default or an output, the embedded provisioning script and its
// behaviour against a local HTTPS server, the scripts against a fake az, and shellcheck. README.md explains
// the deployment.
package infra
