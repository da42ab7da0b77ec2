#!/bin/bash
# Deploys the function app with the Azure CLI: used by `make deploy`, or step by step, in this order:
# infra, grant, publish, provision. The Graph grant comes before the package is published because a managed
# identity's token is cached for up to 24 hours: a function that fetched its Graph token before the grant
# (a timer fires, someone calls provision) would not see the permissions for a day.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: infra/deploy.sh <command>

  preflight   check that az and jq are installed, az is signed in, and RESOURCE_GROUP and PARAMS exist
  infra       az deployment group create with infra/main.json and PARAMS into RESOURCE_GROUP (warns first
              about soft-deleted vaults of this resource group, whose names a new vault cannot take)
  grant       grant the function's identity its Microsoft Graph permissions for the consentMode of PARAMS
              (infra/grant-graph-permissions.sh); when the signed-in account may not, print the command a
              Privileged Role Administrator or Global Administrator runs, and stop (exit 4)
  publish     publish PACKAGE (built by make package) to the function app, retrying while the identity's
              storage role propagates (BlobUploadFailedException, 403) for up to PUBLISH_TIMEOUT seconds;
              refuses while the Graph permissions are missing (SKIP_GRANT_CHECK=1 to publish anyway)
  provision   call POST /api/provision until it answers, reading the function key inside the retry loop
              (same script as infra/provision.json), and print SCEPman's settings and any admin consent link;
              with instances in PARAMS, each instance in turn (?instance=NAME), failing at the end if one did
  status      call GET /api/status and print the findings

Environment:
  RESOURCE_GROUP    resource group to deploy to (required; create it first: az group create -n <rg> -l <region>)
  PARAMS            parameters file (default infra/main.parameters.json, from infra/main.parameters.example.json)
  PACKAGE           deployment package (default dist/appreg-func.zip)
  DEPLOYMENT_NAME   name of the resource group deployment (default appreg)
  PUBLISH_TIMEOUT   seconds publish keeps retrying a storage authorization failure (default 600)
  PUBLISH_INTERVAL  seconds between publish attempts (default 30)
  RETRY_SECONDS     seconds provision and status keep retrying while the host starts (default 600)
  RETRY_INTERVAL    seconds between those attempts (default 15)
USAGE
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RESOURCE_GROUP="${RESOURCE_GROUP:-}"
PARAMS="${PARAMS:-infra/main.parameters.json}"
PACKAGE="${PACKAGE:-dist/appreg-func.zip}"
DEPLOYMENT_NAME="${DEPLOYMENT_NAME:-appreg}"
PUBLISH_TIMEOUT="${PUBLISH_TIMEOUT:-600}"
PUBLISH_INTERVAL="${PUBLISH_INTERVAL:-30}"
RETRY_SECONDS="${RETRY_SECONDS:-600}"
RETRY_INTERVAL="${RETRY_INTERVAL:-15}"

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

# consent_mode prints the consentMode of PARAMS, or the template's default.
consent_mode() {
  jq -r '.parameters.consentMode.value // "admin"' "$PARAMS"
}

# private_tmp makes $tmp a private folder for this run, removed on exit.
tmp=""
private_tmp() {
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
}

# deleted_vaults lists the soft-deleted vaults that were in RESOURCE_GROUP: a new vault cannot take their
# names until they are purged (never, with purge protection, before their retention ends).
deleted_vaults() {
  az keyvault list-deleted --resource-type vault --output json --only-show-errors 2>/dev/null \
    | jq -r --arg rg "/resourcegroups/$(tr '[:upper:]' '[:lower:]' <<<"$RESOURCE_GROUP")/" \
      '.[] | select((.properties.vaultId // "" | ascii_downcase) | contains($rg)) | "\(.name) (deleted \(.properties.deletionDate // "?"), purge after \(.properties.scheduledPurgeDate // "?"))"' \
    || true
}

vault_advice() {
  cat >&2 <<'ADVICE'
A soft-deleted vault of an earlier try holds the name (soft delete keeps it for 90 days; purge protection
forbids purging it). Either
  - recover it with its secrets: set "recoverKeyVault": {"value": true} in PARAMS, deploy, then set it back; or
  - take a fresh name: set "keyVaultNameSalt": {"value": "2"} (any new text) in PARAMS and deploy again.
ADVICE
}

infra() {
  preflight
  private_tmp
  if [ "$(jq -r '.parameters.existingKeyVaultName.value // ""' "$PARAMS")" = "" ]; then
    local deleted
    deleted="$(deleted_vaults)"
    if [ -n "$deleted" ]; then
      echo "warning: soft-deleted vaults of resource group $RESOURCE_GROUP (a new vault cannot reuse their names):" >&2
      while IFS= read -r line; do echo "  $line" >&2; done <<<"$deleted"
    fi
  fi
  echo "deploying infra/main.json to $RESOURCE_GROUP (deployment $DEPLOYMENT_NAME; 3 to 6 minutes)..."
  if ! az deployment group create --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT_NAME" \
    --template-file "$here/main.json" --parameters "@$PARAMS" \
    --query 'properties.outputs' --output json --only-show-errors >"$tmp/outputs.json" 2>"$tmp/err"; then
    cat "$tmp/err" >&2
    if grep -qiE 'soft.?deleted|VaultAlreadyExists|ConflictError.*vault' "$tmp/err"; then
      vault_advice
    fi
    if grep -q 'RoleAssignmentUpdateNotPermitted' "$tmp/err"; then
      echo "A role assignment of an earlier identity holds the name: this template seeds the names with the principal id, so this comes from an older template's assignment. Delete the stale assignment (az role assignment list --scope <scope>) and deploy again." >&2
    fi
    exit 1
  fi
  jq -r 'to_entries[] | "  \(.key): \(.value.value)"' "$tmp/outputs.json"
  case "$(jq -r '.keyVaultPermissionModel.value // ""' "$tmp/outputs.json")" in
    accessPolicy) echo "note: vault $(jq -r '.keyVaultName.value' "$tmp/outputs.json") uses access policies (read from the vault): the identity got an access policy with secret get, list, set, recover, which covers every secret of that vault" ;;
    rbac) echo "note: vault $(jq -r '.keyVaultName.value' "$tmp/outputs.json") uses Azure RBAC (read from the vault): the identity got Key Vault Secrets Officer at keyVaultRoleScope ($(jq -r '.parameters.keyVaultRoleScope.value // "vault"' "$PARAMS"))" ;;
  esac
  echo "next: infra/deploy.sh grant (before publishing: a managed identity's token is cached for up to 24 hours)"
}

grant() {
  preflight
  local principal mode rc=0
  principal="$(output functionAppPrincipalId)" || die "no deployment $DEPLOYMENT_NAME in $RESOURCE_GROUP: run infra/deploy.sh infra first"
  mode="$(consent_mode)"
  echo "granting the Microsoft Graph permissions of consent mode $mode to $principal..."
  bash "$here/grant-graph-permissions.sh" --mode "$mode" --object-id "$principal" || rc=$?
  case "$rc" in
    0) ;;
    4)
      cat >&2 <<STOP
stopped: the signed-in account may not grant Microsoft Graph application permissions. A Privileged Role
Administrator or Global Administrator runs, once:
  infra/grant-graph-permissions.sh --mode $mode --object-id $principal
Then continue with:
  RESOURCE_GROUP=$RESOURCE_GROUP PARAMS=$PARAMS infra/deploy.sh publish
  RESOURCE_GROUP=$RESOURCE_GROUP PARAMS=$PARAMS infra/deploy.sh provision
(or run make deploy again: the infrastructure step changes nothing the second time).
STOP
      exit 4
      ;;
    *) exit "$rc" ;;
  esac
}

# is_storage_propagation tells whether a failed publish is the storage role not having taken effect yet.
# Storage's own refusals say so; ARM's AuthorizationFailed (the signed-in account may not publish) is final.
is_storage_propagation() {
  grep -qiE 'BlobUploadFailedException|AuthorizationPermissionMismatch|This request is not authorized to perform this operation' "$1" && return 0
  grep -q 'AuthorizationFailed' "$1" && return 1
  grep -qiE '\b403\b|Forbidden' "$1"
}

publish() {
  preflight
  private_tmp
  [ -f "$PACKAGE" ] || die "no package $PACKAGE: run make package"
  local app principal mode rc=0
  app="$(output functionAppName)" || die "no deployment $DEPLOYMENT_NAME in $RESOURCE_GROUP: run infra/deploy.sh infra first"
  principal="$(output functionAppPrincipalId)"
  mode="$(consent_mode)"
  if [ "${SKIP_GRANT_CHECK:-}" != 1 ]; then
    bash "$here/grant-graph-permissions.sh" --mode "$mode" --object-id "$principal" --check >"$tmp/check" 2>&1 || rc=$?
    case "$rc" in
      0) echo "Graph permissions of consent mode $mode: present" ;;
      3|5)
        cat "$tmp/check" >&2
        die "grant the Graph permissions before publishing (infra/deploy.sh grant): the function's first token would be cached for up to 24 hours without them. SKIP_GRANT_CHECK=1 publishes anyway." ;;
      *) echo "warning: could not check the Graph permissions (exit $rc); publishing anyway:" >&2; cat "$tmp/check" >&2 ;;
    esac
  fi
  echo "publishing $PACKAGE to $app (retrying up to ${PUBLISH_TIMEOUT}s while the storage role propagates)..."
  local start deadline attempt=0 elapsed
  start="$(date +%s)"
  deadline=$(( start + PUBLISH_TIMEOUT ))
  while :; do
    attempt=$(( attempt + 1 ))
    # For a Flex Consumption app the CLI uses the app's deployment endpoint (/api/publish); the package
    # lands in the deployment container, written with the app's identity.
    if az functionapp deployment source config-zip --resource-group "$RESOURCE_GROUP" --name "$app" \
      --src "$PACKAGE" --only-show-errors --output none 2>"$tmp/publish.err"; then
      break
    fi
    elapsed=$(( $(date +%s) - start ))
    if ! is_storage_propagation "$tmp/publish.err"; then
      cat "$tmp/publish.err" >&2
      die "publishing failed (attempt $attempt): not a storage authorization failure, so not retried"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      cat "$tmp/publish.err" >&2
      die "publishing still fails after $attempt attempts over ${elapsed}s: the identity's Storage Blob Data Owner role on the storage account has not taken effect. Check it (az role assignment list --assignee $principal --all -o table), then run infra/deploy.sh publish again."
    fi
    echo "  attempt $attempt: storage refused the package (BlobUploadFailedException/403: the identity's storage role is still propagating); ${elapsed}s of ${PUBLISH_TIMEOUT}s, retrying in ${PUBLISH_INTERVAL}s"
    sleep "$PUBLISH_INTERVAL"
  done
  echo "published (attempt $attempt). Next: RESOURCE_GROUP=$RESOURCE_GROUP infra/deploy.sh provision"
}

# instance_names prints the names of the instances of PARAMS (APPREG_INSTANCES), one a line; none without.
instance_names() {
  jq -r '.parameters.instances.value // [] | .[].name // empty' "$PARAMS"
}

provision() {
  preflight
  private_tmp
  local app_id host names name failed=()
  app_id="$(output functionAppResourceId)" || die "no deployment $DEPLOYMENT_NAME in $RESOURCE_GROUP: run infra/deploy.sh infra first"
  host="$(output functionAppHostName)"
  names="$(instance_names)"
  if [ -z "$names" ]; then
    provision_one "$app_id" "$host" ""
    return
  fi
  # Several instances: each in turn, so that one that fails (a customer tenant that has not consented yet)
  # does not hide the others' settings; the step fails at the end if any did.
  while IFS= read -r name; do
    echo "instance $name:"
    provision_one "$app_id" "$host" "$name" || failed+=("$name")
  done <<<"$names"
  if [ "${#failed[@]}" -gt 0 ]; then
    die "provision failed for instance(s) ${failed[*]} (the others are provisioned): see each message above; a consent link is opened by an administrator of that tenant, then run infra/deploy.sh provision again"
  fi
}

# provision_one calls provision (for one instance when $3 is set) and prints SCEPman's settings.
provision_one() {
  local out="$tmp/outputs-${3:-default}.json"
  FUNCTION_HOST="$2" FUNCTION_APP_ID="$1" AZ_SCRIPTS_OUTPUT_PATH="$out" INSTANCE="$3" \
    RETRY_SECONDS="$RETRY_SECONDS" RETRY_INTERVAL="$RETRY_INTERVAL" bash "$here/provision-script.sh" || return 1
  echo "outputs for SCEPman's app settings${3:+ (instance $3)}:"
  jq -r '"  AppConfig:AuthConfig:ApplicationId = \(.appId)",
         "  AppConfig:AuthConfig:TenantId      = \(.tenantId)",
         "  AppConfig:AuthConfig:ApplicationKey = @Microsoft.KeyVault(SecretUri=\(.secretUri))"' "$out"
  local consent
  consent="$(jq -r '.adminConsentUrl // ""' "$out")"
  if [ -n "$consent" ]; then
    echo "next: an administrator (Privileged Role Administrator or Global Administrator: the permissions include"
    echo "Microsoft Graph application permissions) opens, once: $consent"
    echo "then: RESOURCE_GROUP=$RESOURCE_GROUP infra/deploy.sh status   # compliant once consented"
  fi
}

# read_key writes the host's default function key into the header file $tmp/headers (mode 0600), retrying
# while listKeys answers ServiceUnavailable (the host has not started) for up to RETRY_SECONDS.
read_key() {
  local app_id="$1" key deadline attempt=0
  deadline=$(( $(date +%s) + RETRY_SECONDS ))
  while :; do
    attempt=$(( attempt + 1 ))
    if key="$(az rest --method post --url "${app_id}/host/default/listkeys?api-version=2023-12-01" \
      --query functionKeys.default --output tsv --only-show-errors 2>"$tmp/key.err")" && [ -n "$key" ]; then
      ( umask 077; printf 'x-functions-key: %s\n' "$key" > "$tmp/headers" )
      return 0
    fi
    [ "$(date +%s)" -lt "$deadline" ] || die "cannot read the function key after $attempt attempts: $(head -c 300 "$tmp/key.err")"
    echo "  attempt $attempt: the function key is not readable yet ($(head -c 200 "$tmp/key.err" | tr '\n' ' ')); retrying in ${RETRY_INTERVAL}s" >&2
    sleep "$RETRY_INTERVAL"
  done
}

status() {
  preflight
  command -v curl >/dev/null || die "curl is not installed"
  private_tmp
  local app_id host
  app_id="$(output functionAppResourceId)" || die "no deployment $DEPLOYMENT_NAME in $RESOURCE_GROUP"
  host="$(output functionAppHostName)"
  read_key "$app_id"
  curl -sS --fail-with-body -H @"$tmp/headers" "https://${host}/api/status" | jq .
}

case "${1:-}" in
  preflight) preflight ;;
  infra) infra ;;
  grant) grant ;;
  publish) publish ;;
  provision) provision ;;
  status) status ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
