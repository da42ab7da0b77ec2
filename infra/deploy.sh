#!/bin/bash
# Deploys the function app with the Azure CLI: used by `make deploy`, or step by step.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: infra/deploy.sh <command>

  preflight   check that az is installed and signed in, and that RESOURCE_GROUP and PARAMS exist
  infra       az deployment group create with infra/main.json and PARAMS into RESOURCE_GROUP
  publish     publish PACKAGE (built by make package) to the function app the deployment created
  provision   call POST /api/provision once the function answers (same script as infra/provision.json)
  status      call GET /api/status and print the findings

Environment:
  RESOURCE_GROUP    resource group to deploy to (required; create it first: az group create -n <rg> -l <region>)
  PARAMS            parameters file (default infra/main.parameters.json, from infra/main.parameters.example.json)
  PACKAGE           deployment package (default dist/appreg-func.zip)
  DEPLOYMENT_NAME   name of the resource group deployment (default appreg)
USAGE
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RESOURCE_GROUP="${RESOURCE_GROUP:-}"
PARAMS="${PARAMS:-infra/main.parameters.json}"
PACKAGE="${PACKAGE:-dist/appreg-func.zip}"
DEPLOYMENT_NAME="${DEPLOYMENT_NAME:-appreg}"

die() { echo "error: $*" >&2; exit 1; }

preflight() {
  command -v az >/dev/null \
    || die "the Azure CLI (az) is not installed: https://learn.microsoft.com/cli/azure/install-azure-cli"
  command -v jq >/dev/null || die "jq is not installed (apt-get install jq)"
  az account show --only-show-errors >/dev/null 2>&1 || die "not signed in to Azure: run az login (and az account set -s <subscription>)"
  [ -n "$RESOURCE_GROUP" ] || die "set RESOURCE_GROUP, e.g. make deploy RESOURCE_GROUP=rg-scepman-appreg"
  [ -f "$PARAMS" ] || die "no parameters file $PARAMS: cp infra/main.parameters.example.json $PARAMS and edit it"
  az group show --name "$RESOURCE_GROUP" --only-show-errors >/dev/null 2>&1 \
    || die "resource group $RESOURCE_GROUP not found in subscription $(az account show --query name -o tsv): az group create -n $RESOURCE_GROUP -l <region>"
  echo "preflight: az signed in to $(az account show --query name -o tsv), resource group $RESOURCE_GROUP, parameters $PARAMS"
}

# output NAME prints an output of the deployment.
output() {
  az deployment group show --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
    --query "properties.outputs.$1.value" --output tsv --only-show-errors
}

infra() {
  preflight
  echo "deploying infra/main.json to $RESOURCE_GROUP (deployment $DEPLOYMENT_NAME)..."
  az deployment group create --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
    --template-file "$here/main.json" --parameters "@$PARAMS" \
    --query 'properties.outputs' --output json --only-show-errors \
    | jq -r 'to_entries[] | "  \(.key): \(.value.value)"'
}

publish() {
  preflight
  [ -f "$PACKAGE" ] || die "no package $PACKAGE: run make package"
  app="$(output functionAppName)" || die "no deployment $DEPLOYMENT_NAME in $RESOURCE_GROUP: run infra/deploy.sh infra first"
  echo "publishing $PACKAGE to $app..."
  # For a Flex Consumption app the CLI uses the app's deployment endpoint (/api/publish); the package
  # lands in the deployment container and the app runs from it.
  az functionapp deployment source config-zip --resource-group "$RESOURCE_GROUP" --name "$app" \
    --src "$PACKAGE" --only-show-errors --output none
  principal="$(output functionAppPrincipalId)"
  cat <<NEXT
published. Next:
  1. A Privileged Role Administrator or Global Administrator grants the Graph permissions (once):
       infra/grant-graph-permissions.sh --object-id $principal
  2. Create the app registration and its secret:
       RESOURCE_GROUP=$RESOURCE_GROUP infra/deploy.sh provision
NEXT
}

# with_key runs "$@" with FUNCTION_HOST and FUNCTION_KEY in its environment only, never on a command line.
with_key() {
  local app host key
  app="$(output functionAppName)" || die "no deployment $DEPLOYMENT_NAME in $RESOURCE_GROUP"
  host="$(output functionAppHostName)"
  key="$(az functionapp keys list --resource-group "$RESOURCE_GROUP" --name "$app" \
    --query functionKeys.default --output tsv --only-show-errors)" || die "cannot read the function keys of $app"
  [ -n "$key" ] || die "function app $app has no default function key yet: is the package published and the app running?"
  FUNCTION_HOST="$host" FUNCTION_KEY="$key" "$@"
}

# private_tmp makes $tmp a private folder for this run, removed on exit.
tmp=""
private_tmp() {
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
}

provision() {
  preflight
  private_tmp
  local out="$tmp/outputs.json"
  with_key env AZ_SCRIPTS_OUTPUT_PATH="$out" bash "$here/provision-script.sh"
  echo "outputs for SCEPman's app settings:"
  jq -r '"  AppConfig:AuthConfig:ApplicationId = \(.appId)",
         "  AppConfig:AuthConfig:TenantId      = \(.tenantId)",
         "  AppConfig:AuthConfig:ApplicationKey = @Microsoft.KeyVault(SecretUri=\(.secretUri))"' "$out"
}

status_call() {
  local headers="$tmp/headers"
  ( umask 077; printf 'x-functions-key: %s\n' "$FUNCTION_KEY" > "$headers" )
  curl -sS --fail-with-body -H @"$headers" "https://${FUNCTION_HOST}/api/status" | jq .
}

status() {
  preflight
  command -v curl >/dev/null || die "curl is not installed"
  private_tmp
  with_key status_call
}

case "${1:-}" in
  preflight) preflight ;;
  infra) infra ;;
  publish) publish ;;
  provision) provision ;;
  status) status ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
