#!/bin/bash
# Grants the function's managed identity the Microsoft Graph application permissions its consent mode needs,
# and nothing else: see usage below.
set -euo pipefail

GRAPH_APP_ID="00000003-0000-0000-c000-000000000000" # Microsoft Graph, the same in every tenant
# value=id of each app role, as the Microsoft Graph permissions reference lists them; the script looks the
# ids up in the tenant's Graph service principal and stops if they differ.
OWNED_BY="Application.ReadWrite.OwnedBy=18a4783c-866b-4cc7-a460-3d5e5662c884"
READ_ALL="Application.Read.All=9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30"
ASSIGN="AppRoleAssignment.ReadWrite.All=06b708a9-e830-4db3-a914-8e69da51d44f"

# Exit codes: 0 done (or, with --check, everything present), 1 error, 2 usage, 3 admin mode and the identity
# holds more than it needs, 4 the signed-in user may not grant (Graph answered 403), 5 --check and something
# is missing.

usage() {
  cat <<'USAGE'
Usage:
  infra/grant-graph-permissions.sh --mode admin|grant --app <function app name> --resource-group <group> [--dry-run|--check]
  infra/grant-graph-permissions.sh --mode admin|grant --object-id <managed identity object id> [--dry-run|--check]

Gives the function's managed identity exactly the Microsoft Graph application permissions (app role
assignments on the Microsoft Graph service principal) of its consent mode (main.json parameter consentMode,
app setting APPREG_CONSENT), skipping those it already has:

  Application.ReadWrite.OwnedBy     both modes: create the SCEPman app registration, manage only what it owns
  Application.Read.All              both modes: read the Graph and Intune API service principals and app roles
  AppRoleAssignment.ReadWrite.All   grant mode only: grant admin consent for the registration's permissions

In admin mode the identity must hold nothing more: if it holds any other app role (for example
AppRoleAssignment.ReadWrite.All from an earlier grant-mode setup), the script says which, prints the command
that removes each, and exits 3 without granting anything. With AppRoleAssignment.ReadWrite.All an identity
can grant any application any permission, itself included: it is as strong as a Global Administrator.

Who must run it: a Privileged Role Administrator or Global Administrator of the tenant, signed in with
`az login`. A managed identity has no app registration, so the portal's "API permissions" page cannot
give it Graph application permissions; they can only be assigned as app roles through Graph, and granting
an app role of Microsoft Graph is an admin consent that needs that directory role. Run it BEFORE the
package is published: a managed identity's token is cached for up to 24 hours, so a function that asked
for a token before the grant does not see the permissions until that token expires.

Options:
  --mode MODE           admin or grant (required): the consentMode the function app was deployed with
  --app NAME            the function app (its system-assigned identity, or its only user-assigned one)
  --resource-group RG   the function app's resource group
  --object-id ID        the managed identity's object (principal) id instead, e.g. the
                        functionAppPrincipalId output of infra/main.json
  --graph-url URL       Microsoft Graph root for national clouds (default https://graph.microsoft.com)
  --dry-run             print what would be granted, change nothing
  --check               change nothing; exit 0 when the mode's permissions are all present, 5 when one is
                        missing, 3 when more are held than the mode allows (admin mode)
  -h, --help            this text

Exit codes: 0 done, 1 error, 2 bad usage, 3 admin mode and the identity holds more, 4 the signed-in user
may not grant (ask a Privileged Role Administrator or Global Administrator), 5 --check found one missing.
USAGE
}

die() { echo "error: $*" >&2; exit 1; }

app="" group="" object_id="" dry_run=false check=false mode="" graph_url="https://graph.microsoft.com"
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) mode="${2:-}"; shift 2 ;;
    --app) app="${2:-}"; shift 2 ;;
    --resource-group|-g) group="${2:-}"; shift 2 ;;
    --object-id) object_id="${2:-}"; shift 2 ;;
    --graph-url) graph_url="${2:-}"; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    --check) check=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; echo "error: unknown argument: $1" >&2; exit 2 ;;
  esac
done
graph_url="${graph_url%/}"

case "$mode" in
  admin) ROLES=("$OWNED_BY" "$READ_ALL") ;;
  grant) ROLES=("$OWNED_BY" "$READ_ALL" "$ASSIGN") ;;
  "") usage >&2; echo "error: give --mode admin or --mode grant (the consentMode of the deployment)" >&2; exit 2 ;;
  *) echo "error: --mode is admin or grant, not $mode" >&2; exit 2 ;;
esac

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
echo "managed identity: $(jq -r '.displayName' <<<"$principal") ($object_id, $(jq -r '.servicePrincipalType' <<<"$principal")), consent mode $mode"
[ "$(jq -r '.servicePrincipalType' <<<"$principal")" = ManagedIdentity ] \
  || echo "warning: $object_id is not a managed identity; granting anyway" >&2

resource="$(graph GET "servicePrincipals(appId='${GRAPH_APP_ID}')?\$select=id,appRoles")" \
  || die "cannot read the Microsoft Graph service principal"
resource_id="$(jq -r '.id' <<<"$resource")"

assigned="$(graph GET "servicePrincipals/${object_id}/appRoleAssignments?\$top=999")" \
  || die "cannot read the app role assignments of $object_id"
has() { jq -e --arg r "$resource_id" --arg id "$1" '.value | any(.resourceId == $r and .appRoleId == $id)' <<<"$assigned" >/dev/null; }

# Check every wanted role's id against the documented one before anything else.
for entry in "${ROLES[@]}"; do
  value="${entry%%=*}" want_id="${entry#*=}"
  role_id="$(jq -r --arg v "$value" '.appRoles[] | select(.value == $v and (.allowedMemberTypes | index("Application"))) | .id' <<<"$resource")"
  [ -n "$role_id" ] || die "Microsoft Graph has no application permission $value in this tenant"
  [ "$role_id" = "$want_id" ] || die "Microsoft Graph's $value has id $role_id, expected $want_id: stopping"
done

# Everything the identity holds beyond its mode's roles: on Graph (named by the role's value) or on any other
# resource. One line each: "<assignment id>\t<name>".
extra="$(jq -r --arg r "$resource_id" \
  --argjson roles "$(jq -c '[.appRoles[] | {key: .id, value: .value}] | from_entries' <<<"$resource")" \
  --argjson want "$(printf '%s\n' "${ROLES[@]}" | jq -R 'split("=")[1]' | jq -s -c .)" \
  '.value[] | select(.resourceId != $r or (.appRoleId as $id | $want | index($id) | not))
   | "\(.id // "?")\t" + (if .resourceId == $r then ($roles[.appRoleId] // .appRoleId)
       else "app role \(.appRoleId) of \(.resourceDisplayName // .resourceId)" end)' <<<"$assigned")"

if [ -n "$extra" ] && [ "$mode" = admin ]; then
  echo "error: in admin mode the identity may hold only Application.ReadWrite.OwnedBy and Application.Read.All," >&2
  echo "but it also holds:" >&2
  while IFS=$'\t' read -r id name; do echo "  $name" >&2; done <<<"$extra"
  echo "Remove each (as a Privileged Role Administrator or Global Administrator), then run this again:" >&2
  while IFS=$'\t' read -r id name; do
    echo "  az rest --method DELETE --url '${graph_url}/v1.0/servicePrincipals/${object_id}/appRoleAssignments/${id}'   # $name" >&2
  done <<<"$extra"
  echo "(With AppRoleAssignment.ReadWrite.All next to Application.ReadWrite.OwnedBy the identity could grant any" >&2
  echo "application, itself included, any permission: as strong as a Global Administrator.)" >&2
  exit 3
fi

missing=0 granted=0
for entry in "${ROLES[@]}"; do
  value="${entry%%=*}" role_id="${entry#*=}"
  if has "$role_id"; then
    echo "present: $value"
    continue
  fi
  missing=$((missing + 1))
  if $check; then
    echo "missing: $value"
    continue
  fi
  if $dry_run; then
    echo "would grant: $value ($role_id)"
    continue
  fi
  body="$(jq -cn --arg p "$object_id" --arg r "$resource_id" --arg a "$role_id" '{principalId: $p, resourceId: $r, appRoleId: $a}')"
  if ! err="$(graph POST "servicePrincipals/${object_id}/appRoleAssignments" --headers "Content-Type=application/json" \
    --body "$body" --output none 2>&1)"; then
    echo "$err" | head -c 1000 >&2; echo >&2
    if grep -qiE 'Authorization_RequestDenied|Forbidden|Insufficient privileges' <<<"$err"; then
      echo "error: granting $value was refused: the signed-in account is not a Privileged Role Administrator or" >&2
      echo "Global Administrator. Ask one to run:" >&2
      echo "  infra/grant-graph-permissions.sh --mode $mode --object-id $object_id" >&2
      exit 4
    fi
    die "granting $value failed"
  fi
  echo "granted: $value ($role_id)"
  granted=$((granted + 1))
done

# Least privilege in grant mode: say so when the identity holds other permissions.
if [ -n "$extra" ]; then
  echo "warning: the identity also holds these permissions, which it does not need:" >&2
  while IFS=$'\t' read -r id name; do echo "  $name" >&2; done <<<"$extra"
fi

if $check; then
  if [ "$missing" -gt 0 ]; then
    echo "check: $missing permission(s) missing for consent mode $mode"
    exit 5
  fi
  echo "check: every permission of consent mode $mode is present"
elif $dry_run; then
  echo "dry run: nothing changed"
elif [ "$granted" -gt 0 ]; then
  echo "done: $granted permission(s) granted. The identity's token is cached for up to 24 hours, so a function"
  echo "that already fetched a Graph token can take that long to see them (provision answers 502 naming a"
  echo "missing permission until then). Publish the package only now."
else
  echo "done: nothing to grant"
fi
if [ "$mode" = admin ] && ! $check; then
  echo "admin mode: after provision, an administrator opens the adminConsentUrl it answers, once."
fi
