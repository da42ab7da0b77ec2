#!/bin/bash
# Calls POST https://$FUNCTION_HOST/api/provision until the function answers, and writes the outputs a
# deployment needs to $AZ_SCRIPTS_OUTPUT_PATH as JSON: appId, tenantId, secretUri (the secret's versionless
# URI, for an App Service Key Vault reference), secretName, keyVaultUrl, and adminConsentUrl (with
# APPREG_CONSENT=admin while an administrator has not consented yet; empty otherwise).
#
# This file is the scriptContent of infra/provision.json (a Microsoft.Resources/deploymentScripts resource,
# Azure CLI image: bash, curl, jq); infra/deploy.sh provision runs it locally too. The infra tests check that
# provision.json embeds this exact text. After editing it, embed it again:
#   jq --rawfile s infra/provision-script.sh '(.resources[] | select(.type == "Microsoft.Resources/deploymentScripts")
#     | .properties.scriptContent) = $s' infra/provision.json > /tmp/p.json && mv /tmp/p.json infra/provision.json
#
# Environment: FUNCTION_HOST (the app's default host name); FUNCTION_APP_ID (the function app's resource id:
# the script reads the host's default function key with `az rest` listkeys at every attempt, inside its retry
# loop, since listKeys answers "Encountered an error (ServiceUnavailable) from host runtime" until the host has
# started) or FUNCTION_KEY (a function key read beforehand); the key is never printed. AZ_SCRIPTS_OUTPUT_PATH
# (where to write the outputs), RETRY_SECONDS (how long to wait for the function and its key; default 600),
# RETRY_INTERVAL (seconds between attempts; default 15), INSTANCE (optional: one instance of APPREG_INSTANCES,
# called as POST /api/provision?instance=NAME; infra/deploy.sh provision calls each in turn).
set -euo pipefail

: "${FUNCTION_HOST:?FUNCTION_HOST must name the function app host}"
: "${FUNCTION_KEY:=}"
: "${FUNCTION_APP_ID:=}"
[ -n "$FUNCTION_KEY" ] || [ -n "$FUNCTION_APP_ID" ] || { echo "error: set FUNCTION_APP_ID (or FUNCTION_KEY)" >&2; exit 1; }
: "${AZ_SCRIPTS_OUTPUT_PATH:?AZ_SCRIPTS_OUTPUT_PATH must name the output file}"
retry_seconds="${RETRY_SECONDS:-600}"
retry_interval="${RETRY_INTERVAL:-15}"

for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done
[ -n "$FUNCTION_KEY" ] || command -v az >/dev/null || { echo "error: az is required to read the function key" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# read_key writes the host's default function key to the header file curl reads (mode 0600): the key is
# never on a command line or in the log. With FUNCTION_APP_ID it asks ARM at every call (listkeys fails
# until the host runs); it fails with the reason in $work/key.err.
read_key() {
  local key="$FUNCTION_KEY"
  if [ -z "$key" ]; then
    key="$(az rest --method post --url "${FUNCTION_APP_ID}/host/default/listkeys?api-version=2023-12-01" \
      --query functionKeys.default --output tsv --only-show-errors 2>"$work/key.err")" || return 1
    if [ -z "$key" ]; then
      echo "the host has no default function key yet" > "$work/key.err"
      return 1
    fi
  fi
  ( umask 077; printf 'x-functions-key: %s\n' "$key" > "$work/headers" )
}

url="https://${FUNCTION_HOST}/api/provision"
if [ -n "${INSTANCE:-}" ]; then
  [[ "$INSTANCE" =~ ^[a-z0-9-]{1,40}$ ]] || { echo "error: INSTANCE $INSTANCE is not an instance name" >&2; exit 1; }
  url="${url}?instance=${INSTANCE}"
fi
deadline=$(( $(date +%s) + retry_seconds ))
attempt=0

while :; do
  attempt=$(( attempt + 1 ))
  if ! read_key; then
    reason="$(head -c 300 "$work/key.err" | tr '\n' ' ')"
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "provision failed: the function key was not readable after $attempt attempts over ${retry_seconds}s: $reason" >&2
      exit 1
    fi
    echo "attempt $attempt: the function key is not readable yet ($reason); retrying in ${retry_interval}s"
    sleep "$retry_interval"
    continue
  fi
  status="$(curl -sS -o "$work/body" -w '%{http_code}' --max-time 300 -X POST \
    -H @"$work/headers" -H 'Content-Type: application/json' --data '{}' "$url" 2>"$work/curl.err")" || status=000
  case "$status" in
    200|201)
      break
      ;;
    502)
      # Our own 502 (JSON error envelope) means Graph or Key Vault refused, e.g. a permission the managed
      # identity lacks: waiting will not help. Any other 502 comes from the platform while the app starts.
      if jq -e '.error.code' "$work/body" >/dev/null 2>&1; then
        echo "provision failed: HTTP 502 from the function:" >&2
        jq -c '.error' "$work/body" >&2
        if grep -q 'adminconsent?client_id=' "$work/body"; then
          echo "hint: an administrator of that tenant opens the link in the message once; then provision again." >&2
        elif grep -qiE 'permission|Authorization_RequestDenied|Forbidden' "$work/body"; then
          echo "hint: Graph permissions granted after the identity's first token take effect only when it is renewed," >&2
          echo "  up to 24 hours later (infra/README.md, \"When a step fails\")." >&2
        fi
        exit 1
      fi
      ;;
    500)
      # Our own InvalidConfiguration names a setting to fix (e.g. APPREG_FEDERATED_APP_ID for an instance in
      # another tenant): waiting will not help. Any other 500 may come from a host that is starting.
      if [ "$(jq -r '.error.code // empty' "$work/body" 2>/dev/null)" = InvalidConfiguration ]; then
        echo "provision failed: HTTP 500 from the function, a setting to fix:" >&2
        jq -c '.error' "$work/body" >&2
        exit 1
      fi
      ;;
    000|401|404|408|429|5??)
      # Not reachable yet, keys not loaded yet, functions not indexed yet, or busy: the app is starting.
      ;;
    *)
      echo "provision failed: HTTP $status:" >&2
      head -c 2000 "$work/body" >&2 || true
      echo >&2
      exit 1
      ;;
  esac
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "provision failed: no answer after $attempt attempts over ${retry_seconds}s (last: HTTP $status)" >&2
    if [ "$status" = 000 ]; then cat "$work/curl.err" >&2; else head -c 2000 "$work/body" >&2 || true; fi
    echo >&2
    exit 1
  fi
  echo "attempt $attempt: HTTP $status, the function is not ready yet; retrying in ${retry_interval}s"
  sleep "$retry_interval"
done

app_id="$(jq -r '.appId // empty' "$work/body")"
tenant_id="$(jq -r '.tenantId // empty' "$work/body")"
secret_id="$(jq -r '.secret.id // empty' "$work/body")"
secret_name="$(jq -r '.secret.name // empty' "$work/body")"
consent_url="$(jq -r '.adminConsentUrl // empty' "$work/body")"
# https://<vault>.vault.azure.net/secrets/<name>/<version>: drop the version for a reference that follows
# every rotation.
if ! [[ "$secret_id" =~ ^(https://[^/]+/)secrets/([0-9A-Za-z-]+)/[0-9A-Za-z]+$ ]]; then
  echo "provision answered HTTP $status without a usable secret id: $(jq -c '{appId, secret}' "$work/body")" >&2
  exit 1
fi
vault_url="${BASH_REMATCH[1]}"
secret_uri="${vault_url}secrets/${BASH_REMATCH[2]}/"
if [ -z "$app_id" ] || [ -z "$tenant_id" ]; then
  echo "provision answered HTTP $status without appId or tenantId" >&2
  exit 1
fi

jq -n --arg appId "$app_id" --arg tenantId "$tenant_id" --arg secretUri "$secret_uri" \
  --arg secretName "$secret_name" --arg keyVaultUrl "$vault_url" --arg adminConsentUrl "$consent_url" \
  '{appId: $appId, tenantId: $tenantId, secretUri: $secretUri, secretName: $secretName, keyVaultUrl: $keyVaultUrl,
    adminConsentUrl: $adminConsentUrl}' \
  > "$AZ_SCRIPTS_OUTPUT_PATH"
echo "provisioned (HTTP $status): appId $app_id, tenant $tenant_id, secret $secret_uri"
jq -r '.changes[]? | "  change: " + .' "$work/body"
if [ -n "$consent_url" ]; then
  echo "admin consent missing: an administrator opens this link once to grant the registration's permissions:"
  echo "  $consent_url"
fi
