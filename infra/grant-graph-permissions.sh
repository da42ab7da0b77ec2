#!/bin/bash
# Grants the function's managed identity the three Microsoft Graph application permissions it needs, and
# nothing else: see usage below.
set -euo pipefail

GRAPH_APP_ID="00000003-0000-0000-c000-000000000000" # Microsoft Graph, the same in every tenant
# value=id of each app role, as the Microsoft Graph permissions reference lists them; the script looks the
# ids up in the tenant's Graph service principal and stops if they differ.
ROLES=(
  "Application.ReadWrite.OwnedBy=18a4783c-866b-4cc7-a460-3d5e5662c884"
  "Application.Read.All=9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30"
  "AppRoleAssignment.ReadWrite.All=06b708a9-e830-4db3-a914-8e69da51d44f"
)

usage() {
  cat <<'USAGE'
Usage:
  infra/grant-graph-permissions.sh --app <function app name> --resource-group <group> [--dry-run]
  infra/grant-graph-permissions.sh --object-id <managed identity object id> [--dry-run]

Gives the function's managed identity exactly these Microsoft Graph application permissions (app role
assignments on the Microsoft Graph service principal), skipping those it already has:

  Application.ReadWrite.OwnedBy     create the SCEPman app registration and manage only what it owns
  Application.Read.All              read the Graph and Intune API service principals and their app roles
  AppRoleAssignment.ReadWrite.All   grant admin consent for the registration's permissions

Who must run it: a Privileged Role Administrator or Global Administrator of the tenant, signed in with
`az login`. A managed identity has no app registration, so the portal's "API permissions" page cannot
give it Graph application permissions; they can only be assigned as app roles through Graph, and granting
an app role of Microsoft Graph is an admin consent that needs that directory role.

Options:
  --app NAME            the function app (its system-assigned identity, or its only user-assigned one)
  --resource-group RG   the function app's resource group
  --object-id ID        the managed identity's object (principal) id instead, e.g. the
                        functionAppPrincipalId output of infra/main.json
  --graph-url URL       Microsoft Graph root for national clouds (default https://graph.microsoft.com)
  --dry-run             print what would be granted, change nothing
  -h, --help            this text

A managed identity's token is cached for up to 24 hours: permissions granted now can take that long to
appear in the function's token. Until then provision answers 502 naming the missing permission.
USAGE
}

die() { echo "error: $*" >&2; exit 1; }

app="" group="" object_id="" dry_run=false graph_url="https://graph.microsoft.com"
while [ $# -gt 0 ]; do
  case "$1" in
    --app) app="${2:-}"; shift 2 ;;
    --resource-group|-g) group="${2:-}"; shift 2 ;;
    --object-id) object_id="${2:-}"; shift 2 ;;
    --graph-url) graph_url="${2:-}"; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
graph_url="${graph_url%/}"

command -v jq >/dev/null || die "jq is required"
command -v az >/dev/null || die "the Azure CLI (az) is not installed: https://learn.microsoft.com/cli/azure/install-azure-cli"
az account show --only-show-errors >/dev/null 2>&1 || die "not signed in to Azure: run az login (as a Privileged Role Administrator or Global Administrator)"

if [ -n "$object_id" ]; then
  [ -z "$app" ] || die "give --object-id or --app, not both"
elif [ -n "$app" ]; then
  [ -n "$group" ] || die "--app needs --resource-group"
  identity="$(az functionapp identity show --name "$app" --resource-group "$group" --output json)" \
    || die "cannot read the identity of function app $app in $group"
  object_id="$(jq -r '.principalId // empty' <<<"$identity")"
  if [ -z "$object_id" ]; then
    count="$(jq -r '(.userAssignedIdentities // {}) | length' <<<"$identity")"
    [ "$count" = 1 ] || die "function app $app has no system-assigned identity and $count user-assigned ones: use --object-id"
    object_id="$(jq -r '.userAssignedIdentities[].principalId' <<<"$identity")"
  fi
else
  usage >&2
  die "give --app and --resource-group, or --object-id"
fi
[[ "$object_id" =~ ^[0-9a-fA-F-]{36}$ ]] || die "not an object id: $object_id"

graph() { az rest --only-show-errors --method "$1" --url "${graph_url}/v1.0/$2" "${@:3}"; }

principal="$(graph GET "servicePrincipals/${object_id}?\$select=id,displayName,servicePrincipalType")" \
  || die "no service principal with object id $object_id (is the identity enabled? did replication finish?)"
echo "managed identity: $(jq -r '.displayName' <<<"$principal") ($object_id, $(jq -r '.servicePrincipalType' <<<"$principal"))"
[ "$(jq -r '.servicePrincipalType' <<<"$principal")" = ManagedIdentity ] \
  || echo "warning: $object_id is not a managed identity; granting anyway" >&2

resource="$(graph GET "servicePrincipals(appId='${GRAPH_APP_ID}')?\$select=id,appRoles")" \
  || die "cannot read the Microsoft Graph service principal"
resource_id="$(jq -r '.id' <<<"$resource")"

assigned="$(graph GET "servicePrincipals/${object_id}/appRoleAssignments?\$top=999")" \
  || die "cannot read the app role assignments of $object_id"
has() { jq -e --arg r "$resource_id" --arg id "$1" '.value | any(.resourceId == $r and .appRoleId == $id)' <<<"$assigned" >/dev/null; }

granted=0
for entry in "${ROLES[@]}"; do
  value="${entry%%=*}" want_id="${entry#*=}"
  role_id="$(jq -r --arg v "$value" '.appRoles[] | select(.value == $v and (.allowedMemberTypes | index("Application"))) | .id' <<<"$resource")"
  [ -n "$role_id" ] || die "Microsoft Graph has no application permission $value in this tenant"
  [ "$role_id" = "$want_id" ] || die "Microsoft Graph's $value has id $role_id, expected $want_id: stopping"
  if has "$role_id"; then
    echo "present: $value"
    continue
  fi
  if $dry_run; then
    echo "would grant: $value ($role_id)"
    continue
  fi
  body="$(jq -cn --arg p "$object_id" --arg r "$resource_id" --arg a "$role_id" '{principalId: $p, resourceId: $r, appRoleId: $a}')"
  graph POST "servicePrincipals/${object_id}/appRoleAssignments" --headers "Content-Type=application/json" \
    --body "$body" --output none || die "granting $value failed (are you a Privileged Role Administrator or Global Administrator?)"
  echo "granted: $value ($role_id)"
  granted=$((granted + 1))
done

# Least privilege: say so when the identity holds other Graph application permissions.
extra="$(jq -r --arg r "$resource_id" --argjson roles "$(jq -c '[.appRoles[] | {key: .id, value: .value}] | from_entries' <<<"$resource")" \
  --argjson want "$(printf '%s\n' "${ROLES[@]}" | jq -R 'split("=")[1]' | jq -s -c .)" \
  '.value[] | select(.resourceId == $r and (.appRoleId as $id | $want | index($id) | not)) | $roles[.appRoleId] // .appRoleId' <<<"$assigned")"
if [ -n "$extra" ]; then
  echo "warning: the identity also holds these Microsoft Graph permissions, which it does not need:" >&2
  while IFS= read -r line; do echo "  $line" >&2; done <<<"$extra"
fi

if $dry_run; then
  echo "dry run: nothing changed"
elif [ "$granted" -gt 0 ]; then
  echo "done: $granted permission(s) granted. The identity's token is cached for up to 24 hours, so the"
  echo "function can take that long to see them (provision answers 502 naming a missing permission until then)."
else
  echo "done: nothing to grant"
fi
