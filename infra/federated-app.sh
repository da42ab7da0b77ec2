#!/bin/bash
# Creates (or repairs) the multi-tenant application through which the function reaches its customers'
# tenants without any secret, with the federated identity credential that trusts the function's managed
# identity; prints APPREG_FEDERATED_APP_ID and, for each customer tenant, the admin consent link. See usage.
set -euo pipefail

GRAPH_APP_ID="00000003-0000-0000-c000-000000000000" # Microsoft Graph, the same in every tenant
# value=id of each Microsoft Graph application permission (app role), as the Microsoft Graph permissions
# reference lists them (the same ids as infra/grant-graph-permissions.sh).
OWNED_BY="Application.ReadWrite.OwnedBy=18a4783c-866b-4cc7-a460-3d5e5662c884"
READ_ALL="Application.Read.All=9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30"
ASSIGN="AppRoleAssignment.ReadWrite.All=06b708a9-e830-4db3-a914-8e69da51d44f"
# The public cloud's token service and the audience of the managed identity's token that the function
# presents (api://AzureADTokenExchange; national clouds use other audiences, which the function does not ask for).
AUTHORITY="https://login.microsoftonline.com"
AUDIENCE="api://AzureADTokenExchange"
MAX_CREDENTIALS=20 # federated identity credentials per application, Entra ID's limit

usage() {
  cat <<'USAGE'
Usage:
  infra/federated-app.sh --resource-group <group> [--params <file>] [options]
  infra/federated-app.sh --object-id <managed identity principal id> [--tenant <customer tenant id>]... [options]

Creates, in the home tenant (the tenant az is signed in to, which must be the function's managed
identity's), the multi-tenant application (signInAudience AzureADMultipleOrgs) through which the function
reaches instances in other tenants, or repairs it when it exists:

  requiredResourceAccess   Microsoft Graph application permissions that a customer's admin consent grants:
                             Application.ReadWrite.OwnedBy     always
                             Application.Read.All              always
                             AppRoleAssignment.ReadWrite.All   only with --mode grant
  federated credential     issuer https://login.microsoftonline.com/<home tenant>/v2.0, subject the managed
                           identity's principal (object) id, audience api://AzureADTokenExchange
                           (at most 20 per application; one is enough for one function app)

The application holds no secret and no certificate. It prints APPREG_FEDERATED_APP_ID (main.json parameter
federatedAppId) and, for each customer tenant, the link a Privileged Role Administrator or Global
Administrator of that tenant opens once:
  https://login.microsoftonline.com/<customer tenant>/adminconsent?client_id=<APPREG_FEDERATED_APP_ID>
Running it again changes nothing when everything is in place.

Who runs it: an account of the home tenant that may create applications (Application Developer,
Application Administrator or Cloud Application Administrator, or any user where users may register
applications); it becomes the application's owner. To repair an existing application: an owner of it, or
Application Administrator / Cloud Application Administrator.

Options:
  --resource-group RG   read the identity (functionAppPrincipalId) and the function's host name from the
                        deployment of infra/deploy.sh infra (DEPLOYMENT_NAME, default appreg) in RG
  --object-id ID        the managed identity's principal (object) id instead
  --params FILE         the main.json parameters file: the customer tenants are the tenantId of its
                        instances (other than the home tenant), --mode defaults to grant when one of those
                        instances has consent grant (or inherits consentMode grant), and its federatedAppId,
                        if set, names the application to repair
  --mode MODE           admin or grant: the Graph permissions the consent grants (see above); default admin,
                        or from --params
  --tenant ID           a customer tenant to print the consent link for (repeatable)
  --app-id ID           the application to repair (its appId); default: the one with --display-name
  --display-name NAME   default "SCEPman app registration function (federated)"
  --credential-name N   name of the federated credential; default appreg-<principal id>
  --redirect-uri URL    the web redirect URI the consent page returns to; default https://<function host>/
                        with --resource-group, none otherwise
  --dry-run             read only: print what would be created or changed
  -h, --help            this text

Environment: DEPLOYMENT_NAME (default appreg); FIC_RETRY_SECONDS (default 120) and FIC_RETRY_INTERVAL
(default 10): how long adding the credential to a new application retries "does not exist" (replication).

Exit codes: 0 done, 1 error, 2 bad usage, 4 the signed-in account may not create or change the application,
6 the application already has 20 federated credentials.
USAGE
}

die() { echo "error: $*" >&2; exit 1; }

group="" object_id="" params="" mode="" app_id="" dry_run=false redirect="" cred_name="" created=false
display_name="SCEPman app registration function (federated)"
tenants=()
while [ $# -gt 0 ]; do
  case "$1" in
    --resource-group|-g) group="${2:-}"; shift 2 ;;
    --object-id) object_id="${2:-}"; shift 2 ;;
    --params) params="${2:-}"; shift 2 ;;
    --mode) mode="${2:-}"; shift 2 ;;
    --tenant) tenants+=("${2:-}"); shift 2 ;;
    --app-id) app_id="${2:-}"; shift 2 ;;
    --display-name) display_name="${2:-}"; shift 2 ;;
    --credential-name) cred_name="${2:-}"; shift 2 ;;
    --redirect-uri) redirect="${2:-}"; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; echo "error: unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$mode" in
  ""|admin|grant) ;;
  *) echo "error: --mode is admin or grant, not $mode" >&2; exit 2 ;;
esac
if [ -n "$group" ] && [ -n "$object_id" ]; then
  echo "error: give --resource-group or --object-id, not both" >&2; exit 2
fi
if [ -z "$group" ] && [ -z "$object_id" ]; then
  usage >&2; echo "error: give --resource-group (the deployment) or --object-id (the managed identity)" >&2; exit 2
fi
[ -z "$params" ] || [ -f "$params" ] || die "no parameters file $params"
[ -n "$display_name" ] || die "--display-name must not be empty"

command -v jq >/dev/null || die "jq is required"
command -v az >/dev/null || die "the Azure CLI (az) is not installed: https://learn.microsoft.com/cli/azure/install-azure-cli"
az account show --only-show-errors >/dev/null 2>&1 || die "not signed in to Azure: run az login (in the function's own tenant)"

is_guid() { [[ "$1" =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]]; }
lower() { tr '[:upper:]' '[:lower:]' <<<"$1"; }

home="$(az account show --query tenantId --output tsv --only-show-errors)" || die "cannot read the signed-in tenant"
is_guid "$home" || die "cannot read the signed-in tenant (got $home)"

if [ -n "$group" ]; then
  deployment="${DEPLOYMENT_NAME:-appreg}"
  output() {
    az deployment group show --resource-group "$group" --name "$deployment" \
      --query "properties.outputs.$1.value" --output tsv --only-show-errors
  }
  object_id="$(output functionAppPrincipalId)" \
    || die "no deployment $deployment in $group: run infra/deploy.sh infra first, or give --object-id"
  if [ -z "$redirect" ]; then
    host="$(output functionAppHostName)" || host=""
    [ -z "$host" ] || redirect="https://${host}/"
  fi
fi
is_guid "$object_id" || die "not a principal (object) id: $object_id"
# The subject of a federated credential is compared case-sensitively with the token's, which is lower case.
object_id="$(lower "$object_id")"

# The identity must live in the signed-in tenant: a federated credential trusts an identity of its own
# application's tenant only.
principal="$(az ad sp show --id "$object_id" --output json --only-show-errors 2>/dev/null)" \
  || die "no service principal $object_id in tenant $home: sign in to the function's own tenant (az login --tenant <its tenant>), or check --object-id"
echo "managed identity: $(jq -r '.displayName // "?"' <<<"$principal") ($object_id, $(jq -r '.servicePrincipalType // "?"' <<<"$principal")), home tenant $home"
[ "$(jq -r '.servicePrincipalType // ""' <<<"$principal")" = ManagedIdentity ] \
  || echo "warning: $object_id is not a managed identity" >&2

# From the parameters file: the customer tenants, the consent mode their instances need, an existing app.
if [ -n "$params" ]; then
  jq -e '.parameters' "$params" >/dev/null 2>&1 || die "$params is not a parameters file"
  if [ "$(jq -r '.parameters.identityType.value // "UserAssigned"' "$params")" = SystemAssigned ]; then
    echo "warning: identityType SystemAssigned: a recreated function app gets a new identity, which this credential does not trust (Microsoft recommends a user-assigned identity for this)" >&2
  fi
  default_consent="$(jq -r '.parameters.consentMode.value // "admin"' "$params")"
  others="$(jq -r --arg home "$(lower "$home")" --arg fallback "$default_consent" '
    .parameters.instances.value // [] | .[]
    | select((.tenantId // "") != "" and ((.tenantId | ascii_downcase) != $home))
    | "\(.tenantId)\t\(.name)\t\(.consent // $fallback | ascii_downcase)"' "$params")"
  while IFS=$'\t' read -r tenant name consent; do
    [ -n "$tenant" ] || continue
    tenants+=("$tenant")
    if [ "$consent" = grant ]; then
      if [ "$mode" = admin ]; then
        echo "warning: instance $name (tenant $tenant) has consent grant, but --mode admin does not ask its tenant for AppRoleAssignment.ReadWrite.All: its consents will fail" >&2
      elif [ -z "$mode" ]; then
        mode=grant
        echo "mode grant: instance $name (tenant $tenant) has consent grant"
      fi
    fi
  done <<<"$others"
  if [ -z "$app_id" ]; then
    app_id="$(jq -r '.parameters.federatedAppId.value // ""' "$params")"
  fi
fi
mode="${mode:-admin}"

roles=("$OWNED_BY" "$READ_ALL")
[ "$mode" = admin ] || roles+=("$ASSIGN")
want_ids="$(printf '%s\n' "${roles[@]}" | cut -d= -f2 | sort | jq -R . | jq -s -c .)"
rra="$(jq -c -n --arg graph "$GRAPH_APP_ID" --argjson ids "$want_ids" \
  '[{resourceAppId: $graph, resourceAccess: [$ids[] | {id: ., type: "Role"}]}]')"
role_names="$(printf '%s\n' "${roles[@]}" | cut -d= -f1 | paste -sd, - | sed 's/,/, /g')"

# refused tells whether an az error is Entra ID refusing the signed-in account.
refused() { grep -qiE 'Authorization_RequestDenied|Insufficient privileges|Forbidden' <<<"$1"; }
stop_refused() {
  head -c 1000 <<<"$1" >&2; echo >&2
  echo "error: Entra ID refused to $2: the signed-in account needs Application Developer (to create), or to own the" >&2
  echo "application, or Application Administrator / Cloud Application Administrator in tenant $home." >&2
  exit 4
}

# The application: the given one, or the one with the display name, or a new one.
if [ -n "$app_id" ]; then
  app="$(az ad app show --id "$app_id" --output json --only-show-errors 2>&1)" \
    || die "no application $app_id in tenant $home: $(head -c 300 <<<"$app")"
else
  filter="displayName eq '${display_name//\'/\'\'}'"
  found="$(az ad app list --filter "$filter" --output json --only-show-errors)" || die "cannot list the applications"
  case "$(jq 'length' <<<"$found")" in
    0) app="" ;;
    1) app="$(jq -c '.[0]' <<<"$found")" ;;
    *) die "several applications are named \"$display_name\": give --app-id" ;;
  esac
fi

if [ -z "$app" ]; then
  if $dry_run; then
    echo "would create: application \"$display_name\", signInAudience AzureADMultipleOrgs, Microsoft Graph $role_names${redirect:+, redirect $redirect}"
    app_id="<new application id>"
  else
    create=(az ad app create --display-name "$display_name" --sign-in-audience AzureADMultipleOrgs
      --required-resource-accesses "$rra" --output json --only-show-errors)
    [ -z "$redirect" ] || create+=(--web-redirect-uris "$redirect")
    if ! app="$("${create[@]}" 2>&1)"; then
      refused "$app" && stop_refused "$app" "create the application"
      die "creating the application failed: $(head -c 1000 <<<"$app")"
    fi
    app_id="$(jq -r '.appId' <<<"$app")"
    created=true
    echo "created: application \"$display_name\" ($app_id), signInAudience AzureADMultipleOrgs, Microsoft Graph $role_names${redirect:+, redirect $redirect}"
  fi
else
  app_id="$(jq -r '.appId' <<<"$app")"
  echo "application: \"$(jq -r '.displayName' <<<"$app")\" ($app_id)"
  update=()
  if [ "$(jq -r '.signInAudience // ""' <<<"$app")" != AzureADMultipleOrgs ]; then
    update+=(--sign-in-audience AzureADMultipleOrgs)
    echo "  signInAudience $(jq -r '.signInAudience // "unset"' <<<"$app"): to AzureADMultipleOrgs"
  fi
  have_ids="$(jq -c --arg graph "$GRAPH_APP_ID" '[.requiredResourceAccess // [] | .[]
    | if .resourceAppId == $graph then (.resourceAccess[] | "\(.type):\(.id)") else "other:\(.resourceAppId)" end] | sort' <<<"$app")"
  if [ "$have_ids" != "$(jq -c '[.[] | "Role:\(.)"] | sort' <<<"$want_ids")" ]; then
    update+=(--required-resource-accesses "$rra")
    echo "  requiredResourceAccess: to Microsoft Graph $role_names only"
    if [ "$mode" = admin ] && jq -e --arg id "${ASSIGN#*=}" 'index("Role:" + $id)' <<<"$have_ids" >/dev/null; then
      echo "warning: the application asked for AppRoleAssignment.ReadWrite.All until now: tenants that consented keep it" >&2
      echo "  until an administrator there removes it (infra/README.md, \"Revoking or narrowing a consent\")." >&2
    fi
    if [ "$mode" = grant ] && ! jq -e --arg id "${ASSIGN#*=}" 'index("Role:" + $id)' <<<"$have_ids" >/dev/null; then
      echo "note: AppRoleAssignment.ReadWrite.All is new: tenants that consented before must consent again (the links below)."
    fi
  fi
  if [ -n "$redirect" ] && ! jq -e --arg r "$redirect" '(.web.redirectUris // []) | index($r)' <<<"$app" >/dev/null; then
    mapfile -t uris < <(jq -r '.web.redirectUris // [] | .[]' <<<"$app") # the option replaces the list: keep the others
    update+=(--web-redirect-uris "${uris[@]}" "$redirect")
    echo "  web redirect URI: $redirect"
  fi
  if [ "${#update[@]}" -gt 0 ]; then
    if $dry_run; then
      echo "would update the application: ${update[*]}"
    elif ! err="$(az ad app update --id "$app_id" "${update[@]}" --only-show-errors 2>&1)"; then
      refused "$err" && stop_refused "$err" "change the application"
      die "updating the application failed: $(head -c 1000 <<<"$err")"
    fi
  else
    echo "  signInAudience AzureADMultipleOrgs, Microsoft Graph $role_names: as wanted"
  fi
fi

# The federated identity credential that trusts the managed identity.
issuer="${AUTHORITY}/${home}/v2.0"
cred_name="${cred_name:-appreg-$(lower "$object_id")}"
if [ "$app_id" = "<new application id>" ] || $created; then
  creds="[]" # a new application has none (and a read right after its creation may not find it yet)
else
  creds="$(az ad app federated-credential list --id "$app_id" --output json --only-show-errors)" \
    || die "cannot list the federated credentials of $app_id"
fi
match="$(jq -c --arg i "$issuer" --arg s "$object_id" '[.[] | select(.issuer == $i and .subject == $s)][0] // empty' <<<"$creds")"
count="$(jq 'length' <<<"$creds")"
if [ -n "$match" ]; then
  if ! jq -e --arg a "$AUDIENCE" '.audiences | index($a)' <<<"$match" >/dev/null; then
    die "federated credential $(jq -r .name <<<"$match") trusts the identity but not for audience $AUDIENCE: delete it (az ad app federated-credential delete --id $app_id --federated-credential-id $(jq -r .name <<<"$match")) and run this again"
  fi
  echo "present: federated credential $(jq -r .name <<<"$match") (issuer $issuer, subject $object_id, audience $AUDIENCE)"
else
  if jq -e --arg n "$cred_name" 'any(.name == $n)' <<<"$creds" >/dev/null; then
    die "a federated credential named $cred_name exists with another issuer or subject: give another --credential-name, or delete it (az ad app federated-credential delete --id $app_id --federated-credential-id $cred_name)"
  fi
  if [ "$count" -ge "$MAX_CREDENTIALS" ]; then
    echo "error: application $app_id already has $count federated credentials, the most Entra ID allows ($MAX_CREDENTIALS):" >&2
    jq -r '.[] | "  \(.name): issuer \(.issuer), subject \(.subject)"' <<<"$creds" >&2
    echo "delete one that no longer serves (az ad app federated-credential delete --id $app_id --federated-credential-id <name>)," >&2
    echo "or use another application (--display-name)." >&2
    exit 6
  fi
  cred="$(jq -c -n --arg n "$cred_name" --arg i "$issuer" --arg s "$object_id" --arg a "$AUDIENCE" \
    '{name: $n, issuer: $i, subject: $s, description: "SCEPman app registration function: its managed identity reaches customer tenants without a secret", audiences: [$a]}')"
  if $dry_run; then
    echo "would create: federated credential $cred_name (issuer $issuer, subject $object_id, audience $AUDIENCE)"
  else
    # A new application can be unknown to the replica that serves the next request for a while: retry
    # "does not exist" for up to FIC_RETRY_SECONDS.
    deadline=$(( $(date +%s) + ${FIC_RETRY_SECONDS:-120} ))
    until err="$(az ad app federated-credential create --id "$app_id" --parameters "$cred" --output none --only-show-errors 2>&1)"; do
      refused "$err" && stop_refused "$err" "add the federated credential"
      if grep -qiE 'does not exist|Request_ResourceNotFound|NotFound' <<<"$err" && [ "$(date +%s)" -lt "$deadline" ]; then
        echo "  the new application is not visible yet (replication); retrying in ${FIC_RETRY_INTERVAL:-10}s"
        sleep "${FIC_RETRY_INTERVAL:-10}"
        continue
      fi
      die "creating the federated credential failed: $(head -c 1000 <<<"$err")"
    done
    echo "created: federated credential $cred_name (issuer $issuer, subject $object_id, audience $AUDIENCE)"
    count=$(( count + 1 ))
  fi
fi
others="$(jq -r --arg i "$issuer" --arg s "$object_id" '.[] | select((.issuer == $i and .subject == $s) | not) | "  \(.name): issuer \(.issuer), subject \(.subject)"' <<<"$creds")"
if [ -n "$others" ]; then
  echo "warning: these federated credentials can sign in as the application too, in every tenant that consented:" >&2
  echo "$others" >&2
fi
echo "federated credentials: $count of at most $MAX_CREDENTIALS"

echo
if $dry_run; then
  echo "dry run: nothing changed"
  exit 0
fi
echo "APPREG_FEDERATED_APP_ID=$app_id"
echo "  main.json parameter: \"federatedAppId\": {\"value\": \"$app_id\"} (then infra/deploy.sh infra writes the app setting)"
echo
echo "Consent: a Privileged Role Administrator or Global Administrator of each customer tenant opens, once,"
echo "the link of that tenant and accepts. It grants this application, in that tenant only, the Microsoft Graph"
echo "application permissions $role_names."
if [ "${#tenants[@]}" -eq 0 ]; then
  echo "  <customer tenant id>: ${AUTHORITY}/<customer tenant id>/adminconsent?client_id=${app_id}"
else
  printf '%s\n' "${tenants[@]}" | awk '!seen[tolower($0)]++' | while IFS= read -r tenant; do
    is_guid "$tenant" || { echo "warning: tenant $tenant is not a tenant id (a GUID)" >&2; continue; }
    [ "$(lower "$tenant")" != "$(lower "$home")" ] || continue # the home tenant needs no consent: the identity itself works there
    echo "  $tenant: ${AUTHORITY}/${tenant}/adminconsent?client_id=${app_id}"
  done
fi
echo "Until then the instances of that tenant fail with the same link in their message; the others run."
