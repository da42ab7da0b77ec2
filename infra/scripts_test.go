package infra

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck is not installed (apt-get install shellcheck); make lint-sh and CI run it")
	}
	scripts, err := filepath.Glob("*.sh") // every script, as make lint-sh checks them
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts found: %v", err)
	}
	out, err := exec.Command(sc, append(append([]string{"-x"}, scripts...), "../.ci/run")...).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
}

// run runs a script of infra/ with bash and the given environment (and nothing else from ours but PATH and
// HOME, unless env sets them), and returns its exit code, stdout and stderr.
func run(t *testing.T, env map[string]string, script string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

const testKey = "test-function-key-0123456789abcdef"

// provisionBody is what the function answers a successful provision (spec/interface.md).
const provisionBody = `{"tenantId":"11111111-1111-1111-1111-111111111111","appId":"22222222-2222-2222-2222-222222222222",
 "objectId":"o","servicePrincipalId":"s","displayName":"SCEPman","uniqueName":"scepman","permissions":[],
 "secret":{"name":"AppConfig--AuthConfig--ApplicationKey",
   "id":"https://contoso-kv.vault.azure.net/secrets/AppConfig--AuthConfig--ApplicationKey/0123456789abcdef0123456789abcdef",
   "keyId":"k","expiresOn":"2027-05-27T03:30:00Z"},
 "changes":["application created","secret stored"]}`

type answer struct {
	status int
	body   string
}

func TestProvisionScript(t *testing.T) {
	needTools(t, "bash", "curl", "jq")
	for _, tc := range []struct {
		name     string
		answers  []answer // in turn; the last one repeats
		retry    string   // RETRY_SECONDS
		wantCode int
		wantCall int    // how many calls the function gets
		wantErr  string // in stderr
	}{
		{name: "answers at once", answers: []answer{{201, provisionBody}}, retry: "600", wantCall: 1},
		{name: "retries while the function starts", retry: "600", wantCall: 5, answers: []answer{
			{404, "not found"}, {503, "starting"}, {502, "<html>bad gateway</html>"}, {401, ""}, {200, provisionBody}}},
		{name: "the function's own 502 is final", retry: "600", wantCode: 1, wantCall: 1,
			answers: []answer{{502, `{"error":{"code":"Authorization_RequestDenied","message":"the managed identity lacks Application.ReadWrite.OwnedBy"}}`}},
			wantErr: "Application.ReadWrite.OwnedBy"},
		{name: "an invalid setting is final", retry: "600", wantCode: 1, wantCall: 1,
			answers: []answer{{500, `{"error":{"code":"InvalidConfiguration","message":"APPREG_FEDERATED_APP_ID: required once an instance names another tenant"}}`}},
			wantErr: "APPREG_FEDERATED_APP_ID"},
		{name: "a 500 without the function's envelope is retried", retry: "600", wantCall: 2,
			answers: []answer{{500, "<html>starting</html>"}, {200, provisionBody}}},
		{name: "bad request is final", retry: "600", wantCode: 1, wantCall: 1,
			answers: []answer{{400, `{"error":{"code":"BadRequest","message":"body must be empty or {}"}}`}}, wantErr: "HTTP 400"},
		{name: "gives up at the deadline", retry: "0", wantCode: 1, wantCall: 1,
			answers: []answer{{503, "starting"}}, wantErr: "no answer after 1 attempts"},
		{name: "answer without a secret id", retry: "600", wantCode: 1, wantCall: 1,
			answers: []answer{{200, `{"tenantId":"t","appId":"a","secret":null}`}}, wantErr: "without a usable secret id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			calls := 0
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				calls++
				body, _ := io.ReadAll(r.Body)
				if r.Method != http.MethodPost || r.URL.Path != "/api/provision" || r.Header.Get("x-functions-key") != testKey || string(body) != "{}" {
					t.Errorf("call %d: %s %s key %q body %q, want POST /api/provision with the key and {}", calls, r.Method, r.URL.Path, r.Header.Get("x-functions-key"), body)
				}
				a := tc.answers[min(calls, len(tc.answers))-1]
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(a.status)
				io.WriteString(w, a.body)
			}))
			t.Cleanup(srv.Close)
			dir := t.TempDir()
			ca := filepath.Join(dir, "ca.pem")
			must(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644))
			out := filepath.Join(dir, "outputs.json")

			code, stdout, stderr := run(t, map[string]string{
				"FUNCTION_HOST": strings.TrimPrefix(srv.URL, "https://"), "FUNCTION_KEY": testKey,
				"AZ_SCRIPTS_OUTPUT_PATH": out, "RETRY_SECONDS": tc.retry, "RETRY_INTERVAL": "0", "CURL_CA_BUNDLE": ca,
			}, "provision-script.sh")
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			if calls != tc.wantCall {
				t.Errorf("the function got %d calls, want %d", calls, tc.wantCall)
			}
			if tc.wantErr != "" && !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr does not contain %q:\n%s", tc.wantErr, stderr)
			}
			if strings.Contains(stdout+stderr, testKey) {
				t.Errorf("the function key appears in the script's output")
			}
			if tc.wantCode != 0 {
				return
			}
			var got map[string]string
			b, err := os.ReadFile(out)
			must(t, err)
			must(t, json.Unmarshal(b, &got))
			want := map[string]string{
				"appId":           "22222222-2222-2222-2222-222222222222",
				"tenantId":        "11111111-1111-1111-1111-111111111111",
				"secretUri":       "https://contoso-kv.vault.azure.net/secrets/AppConfig--AuthConfig--ApplicationKey/",
				"secretName":      "AppConfig--AuthConfig--ApplicationKey",
				"keyVaultUrl":     "https://contoso-kv.vault.azure.net/",
				"adminConsentUrl": "",
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("outputs = %v, want %v", got, want)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fakeAz is an az stand-in for grant-graph-permissions.sh, deploy.sh and provision-script.sh: it replays
// what Azure answers from the files of $FAKE_AZ (the Graph service principal, the identity, its app role
// assignments, the deployment's outputs, the function key) and appends every call to $FAKE_AZ/calls. A POST
// of an app role assignment adds it to the assignments file, as Graph would. A file <name>-fail holding N
// makes the next N calls of that kind fail with Azure's answer for it, then they succeed:
//
//	publish-fail  config-zip: 400 BlobUploadFailedException (the storage role is still propagating)
//	keys-fail     listkeys: "Encountered an error (ServiceUnavailable) from host runtime."
//
// forbid-grant makes every Graph POST answer 403 Authorization_RequestDenied (not a privileged admin);
// create-err holds the error of az deployment group create, create.json its outputs.
//
// For federated-app.sh: tenant holds the signed-in tenant (az account show --query tenantId), mi-sp.json the
// managed identity's service principal (absent: not in this tenant), apps.json the applications (az ad app
// list, show, create, update) and fics.json the federated credentials of the one application under test;
// forbid-app makes creating or changing an application answer Insufficient privileges; fic-fail holding N
// makes the next N credential creations answer that the application does not exist (replication).
const fakeAz = `#!/bin/bash
set -euo pipefail
echo "$*" >> "$FAKE_AZ/calls"
# fail KIND: true when a failure of that kind is still due (and counts it down).
fail() {
  local f="$FAKE_AZ/$1-fail" n
  [ -e "$f" ] || return 1
  n="$(cat "$f")"
  [ "$n" -gt 0 ] || return 1
  echo $(( n - 1 )) > "$f"
}
# flag NAME ARGS...: prints the value of option NAME among ARGS; false when absent.
flag() {
  local name="$1"; shift
  while [ $# -gt 0 ]; do
    if [ "$1" = "$name" ]; then printf '%s' "${2:-}"; return 0; fi
    shift
  done
  return 1
}
apps="$FAKE_AZ/apps.json" fics="$FAKE_AZ/fics.json"
forbidden() {
  if [ -e "$FAKE_AZ/forbid-app" ]; then
    echo 'ERROR: Insufficient privileges to complete the operation.' >&2
    exit 1
  fi
}
ad_app() {
  [ -e "$apps" ] || echo '[]' > "$apps"
  [ -e "$fics" ] || echo '[]' > "$fics"
  local id f name a r u
  id="$(flag --id "$@" || true)"
  case "$1 ${2:-}" in
    "list "*)
      f="$(flag --filter "$@")"; name="$(sed -E "s/^displayName eq '(.*)'$/\\1/; s/''/'/g" <<<"$f")"
      jq --arg n "$name" '[.[] | select(.displayName == $n)]' "$apps" ;;
    "show "*)
      jq -e --arg id "$id" '.[] | select(.appId == $id or .id == $id)' "$apps" \
        || { echo "ERROR: Resource '$id' does not exist or one of its queried reference-property objects are not present." >&2; exit 3; } ;;
    "create "*)
      forbidden
      jq --arg n "$(flag --display-name "$@")" --arg a "$(flag --sign-in-audience "$@")" \
        --argjson r "$(flag --required-resource-accesses "$@")" --arg u "$(flag --web-redirect-uris "$@" || true)" \
        '. + [{id: "fed-obj-\(length)", appId: "fed-app-\(length)", displayName: $n, signInAudience: $a,
          requiredResourceAccess: $r, web: {redirectUris: (if $u == "" then [] else [$u] end)}}]' "$apps" > "$apps.tmp"
      mv "$apps.tmp" "$apps"
      jq '.[-1]' "$apps" ;;
    "update "*)
      forbidden
      a="$(flag --sign-in-audience "$@" || true)"; r="$(flag --required-resource-accesses "$@" || echo null)"
      u="$(flag --web-redirect-uris "$@" || true)"
      jq --arg id "$id" --arg a "$a" --argjson r "$r" --arg u "$u" 'map(if .appId == $id or .id == $id then
          (if $a != "" then .signInAudience = $a else . end) | (if $r != null then .requiredResourceAccess = $r else . end)
          | (if $u != "" then .web.redirectUris = [$u] else . end) else . end)' "$apps" > "$apps.tmp"
      mv "$apps.tmp" "$apps" ;;
    "federated-credential list") cat "$fics" ;;
    "federated-credential create")
      forbidden
      if fail fic; then
        echo "ERROR: Resource '$id' does not exist or one of its queried reference-property objects are not present." >&2
        exit 3
      fi
      jq --argjson p "$(flag --parameters "$@")" '. + [$p + {id: "fic-\(length)"}]' "$fics" > "$fics.tmp"
      mv "$fics.tmp" "$fics" ;;
    *) echo "fake az: unexpected call: ad app $*" >&2; exit 2 ;;
  esac
}
case "$1 $2" in
  "account show")
    [ -e "$FAKE_AZ/signed-in" ] || { echo "Please run 'az login' to setup account." >&2; exit 1; }
    if [[ "$*" == *"--query tenantId"* ]]; then cat "$FAKE_AZ/tenant"; else echo '{"name":"sub"}'; fi
    exit 0 ;;
  "ad sp")
    [ -e "$FAKE_AZ/mi-sp.json" ] || { echo "ERROR: Resource '$(flag --id "$@")' does not exist or one of its queried reference-property objects are not present." >&2; exit 3; }
    cat "$FAKE_AZ/mi-sp.json"; exit 0 ;;
  "ad app") ad_app "${@:3}"; exit 0 ;;
  "functionapp identity") cat "$FAKE_AZ/identity.json"; exit 0 ;;
  "group show") exit 0 ;;
  "keyvault list-deleted") cat "$FAKE_AZ/deleted.json" 2>/dev/null || echo '[]'; exit 0 ;;
  "functionapp deployment")
    if fail publish; then
      echo "ERROR: Status Code: 400, Details: {\"Message\":\"An error occurred while uploading the package: BlobUploadFailedException: This request is not authorized to perform this operation using this permission. Status: 403 (AuthorizationPermissionMismatch)\"}" >&2
      exit 1
    fi
    [ ! -e "$FAKE_AZ/publish-err" ] || { cat "$FAKE_AZ/publish-err" >&2; exit 1; }
    exit 0 ;;
  "deployment group")
    if [ "$3" = create ]; then
      [ ! -e "$FAKE_AZ/create-err" ] || { cat "$FAKE_AZ/create-err" >&2; exit 1; }
      cat "$FAKE_AZ/create.json"; exit 0
    fi
    query="$(printf '%s\n' "$@" | grep '^properties.outputs.' || true)"
    name="${query#properties.outputs.}"; name="${name%.value}"
    cat "$FAKE_AZ/outputs/$name"; exit 0 ;;
esac
[ "$1" = rest ] || { echo "fake az: unexpected call: $*" >&2; exit 2; }
method="" url="" body=""
while [ $# -gt 0 ]; do
  case "$1" in
    --method) method="$2"; shift 2 ;;
    --url) url="$2"; shift 2 ;;
    --body) body="$2"; shift 2 ;;
    *) shift ;;
  esac
done
case "$method $url" in
  "post /subscriptions/"*"/providers/Microsoft.Web/sites/"*"/host/default/listkeys?api-version="*)
    if fail keys; then
      echo "ERROR: Bad Request({\"Code\":\"BadRequest\",\"Message\":\"Encountered an error (ServiceUnavailable) from host runtime.\"})" >&2
      exit 1
    fi
    cat "$FAKE_AZ/key" ;;
  "GET https://graph.microsoft.com/v1.0/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')"*) cat "$FAKE_AZ/graph.json" ;;
  "GET https://graph.microsoft.com/v1.0/servicePrincipals/"*"/appRoleAssignments"*) jq '{value: .}' "$FAKE_AZ/assignments.json" ;;
  "GET https://graph.microsoft.com/v1.0/servicePrincipals/"*) echo '{"id":"mi","displayName":"func-appreg","servicePrincipalType":"ManagedIdentity"}' ;;
  "POST https://graph.microsoft.com/v1.0/servicePrincipals/"*"/appRoleAssignments")
    if [ -e "$FAKE_AZ/forbid-grant" ]; then
      echo 'ERROR: Forbidden({"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}})' >&2
      exit 1
    fi
    jq --argjson b "$body" '. + [$b + {id: "new-\(length)"}]' "$FAKE_AZ/assignments.json" > "$FAKE_AZ/a.tmp" && mv "$FAKE_AZ/a.tmp" "$FAKE_AZ/assignments.json" ;;
  *) echo "fake az: unexpected request: $method $url" >&2; exit 2 ;;
esac
`

const (
	graphSP      = "99999999-9999-9999-9999-999999999999"
	miObjectID   = "33333333-3333-3333-3333-333333333333"
	ownedBy      = "18a4783c-866b-4cc7-a460-3d5e5662c884"
	readAll      = "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30"
	assignRW     = "06b708a9-e830-4db3-a914-8e69da51d44f"
	appReadWrite = "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9"
)

func graphJSON(ownedByID string) string {
	role := func(id, value string) string {
		return fmt.Sprintf(`{"id":%q,"value":%q,"allowedMemberTypes":["Application"]}`, id, value)
	}
	return `{"id":"` + graphSP + `","appRoles":[` + strings.Join([]string{
		role(ownedByID, "Application.ReadWrite.OwnedBy"), role(readAll, "Application.Read.All"),
		role(assignRW, "AppRoleAssignment.ReadWrite.All"), role(appReadWrite, "Application.ReadWrite.All"),
		`{"id":"dddddddd-dddd-dddd-dddd-dddddddddddd","value":"Application.Read.All","allowedMemberTypes":["User"]}`,
	}, ",") + `]}`
}

func assignment(role string) string {
	return fmt.Sprintf(`{"id":"asg-%s","principalId":%q,"resourceId":%q,"appRoleId":%q}`, role[:8], miObjectID, graphSP, role)
}

// fakeAzDir installs the fake az first on PATH and returns its state folder and the PATH to use.
func fakeAzDir(t *testing.T, signedIn bool, graph string, assigned ...string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	must(t, os.Mkdir(bin, 0o755))
	must(t, os.WriteFile(filepath.Join(bin, "az"), []byte(fakeAz), 0o755))
	if signedIn {
		must(t, os.WriteFile(filepath.Join(dir, "signed-in"), nil, 0o644))
	}
	must(t, os.WriteFile(filepath.Join(dir, "graph.json"), []byte(graph), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "assignments.json"), []byte("["+strings.Join(assigned, ",")+"]"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "identity.json"), []byte(`{"principalId":"`+miObjectID+`","type":"SystemAssigned"}`), 0o644))
	return dir, bin + ":" + os.Getenv("PATH")
}

func assignedRoles(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "assignments.json"))
	must(t, err)
	var list []struct{ PrincipalID, ResourceID, AppRoleID string }
	must(t, json.Unmarshal(b, &list))
	var roles []string
	for _, a := range list {
		if a.PrincipalID != miObjectID || (a.ResourceID != graphSP && a.ResourceID != "r2") {
			t.Errorf("assignment %+v is not from the identity to Microsoft Graph (or the test's other resource)", a)
		}
		roles = append(roles, a.AppRoleID)
	}
	return roles
}

func TestGrantGraphPermissions(t *testing.T) {
	needTools(t, "bash", "jq")
	grant := []string{"--mode", "grant"}
	admin := []string{"--mode", "admin"}
	byObject := []string{"--object-id", miObjectID}
	args := func(parts ...[]string) []string { return slices.Concat(parts...) }
	for _, tc := range []struct {
		name      string
		signedIn  bool
		forbid    bool // Graph refuses the grant: the signed-in account is no privileged admin
		graph     string
		assigned  []string
		args      []string
		wantCode  int
		wantRoles []string // assignments afterwards, in order
		wantOut   []string // in stdout+stderr
		notOut    []string
	}{
		{name: "grant mode grants the two missing, keeps the present one", signedIn: true, graph: graphJSON(ownedBy),
			assigned: []string{assignment(readAll)}, args: args(grant, []string{"--app", "func-appreg", "--resource-group", "rg"}),
			wantRoles: []string{readAll, ownedBy, assignRW},
			wantOut:   []string{"granted: Application.ReadWrite.OwnedBy", "present: Application.Read.All", "granted: AppRoleAssignment.ReadWrite.All", "24 hours"}},
		{name: "grant mode second run changes nothing", signedIn: true, graph: graphJSON(ownedBy),
			assigned: []string{assignment(ownedBy), assignment(readAll), assignment(assignRW)}, args: args(grant, byObject),
			wantRoles: []string{ownedBy, readAll, assignRW}, wantOut: []string{"done: nothing to grant"}},
		{name: "dry run", signedIn: true, graph: graphJSON(ownedBy), args: args(grant, byObject, []string{"--dry-run"}),
			wantOut: []string{"would grant: Application.ReadWrite.OwnedBy", "would grant: AppRoleAssignment.ReadWrite.All", "nothing changed"}},
		{name: "grant mode warns about a broader permission it does not remove", signedIn: true, graph: graphJSON(ownedBy),
			assigned: []string{assignment(appReadWrite)}, args: args(grant, byObject),
			wantRoles: []string{appReadWrite, ownedBy, readAll, assignRW},
			wantOut:   []string{"does not need", "Application.ReadWrite.All"}},
		{name: "admin mode grants only the two", signedIn: true, graph: graphJSON(ownedBy), args: args(admin, byObject),
			wantRoles: []string{ownedBy, readAll},
			wantOut:   []string{"granted: Application.ReadWrite.OwnedBy", "granted: Application.Read.All", "adminConsentUrl"},
			notOut:    []string{"AppRoleAssignment.ReadWrite.All"}},
		{name: "admin mode refuses an identity holding AppRoleAssignment.ReadWrite.All", signedIn: true, graph: graphJSON(ownedBy),
			assigned: []string{assignment(ownedBy), assignment(assignRW)}, args: args(admin, byObject), wantCode: 3,
			wantRoles: []string{ownedBy, assignRW},
			wantOut: []string{"may hold only Application.ReadWrite.OwnedBy and Application.Read.All", "AppRoleAssignment.ReadWrite.All",
				"az rest --method DELETE --url 'https://graph.microsoft.com/v1.0/servicePrincipals/" + miObjectID + "/appRoleAssignments/asg-" + assignRW[:8] + "'",
				"Global Administrator"},
			notOut: []string{"granted:"}},
		{name: "admin mode refuses a broader permission too", signedIn: true, graph: graphJSON(ownedBy),
			assigned: []string{assignment(appReadWrite)}, args: args(admin, byObject), wantCode: 3,
			wantRoles: []string{appReadWrite}, wantOut: []string{"Application.ReadWrite.All", "appRoleAssignments/asg-" + appReadWrite[:8]}},
		{name: "admin mode refuses an app role of another resource", signedIn: true, graph: graphJSON(ownedBy),
			assigned: []string{`{"id":"asg-other","principalId":"` + miObjectID + `","resourceId":"r2","resourceDisplayName":"Intune","appRoleId":"x"}`},
			args:     args(admin, byObject), wantCode: 3, wantOut: []string{"app role x of Intune", "appRoleAssignments/asg-other"}},
		{name: "check: all present", signedIn: true, graph: graphJSON(ownedBy),
			assigned: []string{assignment(ownedBy), assignment(readAll)}, args: args(admin, byObject, []string{"--check"}),
			wantRoles: []string{ownedBy, readAll}, wantOut: []string{"every permission of consent mode admin is present"}},
		{name: "check: one missing", signedIn: true, graph: graphJSON(ownedBy),
			assigned: []string{assignment(ownedBy)}, args: args(admin, byObject, []string{"--check"}), wantCode: 5,
			wantRoles: []string{ownedBy}, wantOut: []string{"missing: Application.Read.All"}},
		{name: "not a privileged admin: exit 4 with the command to hand over", signedIn: true, forbid: true, graph: graphJSON(ownedBy),
			args: args(admin, byObject), wantCode: 4,
			wantOut: []string{"Authorization_RequestDenied", "infra/grant-graph-permissions.sh --mode admin --object-id " + miObjectID}},
		{name: "stops when Graph's role id is not the documented one", signedIn: true, graph: graphJSON("eeeeeeee-eeee-eeee-eeee-eeeeeeeeeeee"),
			args: args(grant, byObject), wantCode: 1, wantOut: []string{"expected " + ownedBy}},
		{name: "not signed in", graph: graphJSON(ownedBy), args: args(admin, byObject),
			wantCode: 1, wantOut: []string{"not signed in to Azure: run az login"}},
		{name: "no mode", signedIn: true, graph: graphJSON(ownedBy), args: byObject, wantCode: 2, wantOut: []string{"give --mode admin or --mode grant"}},
		{name: "unknown mode", signedIn: true, graph: graphJSON(ownedBy), args: args([]string{"--mode", "all"}, byObject), wantCode: 2, wantOut: []string{"not all"}},
		{name: "no target", signedIn: true, graph: graphJSON(ownedBy), args: admin, wantCode: 1, wantOut: []string{"give --app and --resource-group, or --object-id"}},
		{name: "help names who must run it", args: []string{"--help"}, graph: graphJSON(ownedBy),
			wantOut: []string{"Privileged Role Administrator or Global Administrator", "cannot", "24 hours", "BEFORE the"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := fakeAzDir(t, tc.signedIn, tc.graph, tc.assigned...)
			if tc.forbid {
				must(t, os.WriteFile(filepath.Join(dir, "forbid-grant"), nil, 0o644))
			}
			code, stdout, stderr := run(t, map[string]string{"PATH": path, "FAKE_AZ": dir}, "grant-graph-permissions.sh", tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output does not contain %q:\nstdout:\n%s\nstderr:\n%s", w, stdout, stderr)
				}
			}
			for _, w := range tc.notOut {
				if strings.Contains(stdout+stderr, w) {
					t.Errorf("output contains %q:\nstdout:\n%s\nstderr:\n%s", w, stdout, stderr)
				}
			}
			if tc.wantRoles != nil {
				if got := assignedRoles(t, dir); fmt.Sprint(got) != fmt.Sprint(tc.wantRoles) {
					t.Errorf("assignments afterwards = %v, want %v", got, tc.wantRoles)
				}
			} else if got := assignedRoles(t, dir); len(got) != len(tc.assigned) {
				t.Errorf("assignments changed to %v", got)
			}
		})
	}
}

func TestDeployPreflight(t *testing.T) {
	needTools(t, "bash", "jq")
	params := filepath.Join(t.TempDir(), "p.json")
	must(t, os.WriteFile(params, []byte("{}"), 0o644))
	jq, err := exec.LookPath("jq")
	must(t, err)
	// A PATH with jq and dirname but no az.
	noAz := t.TempDir()
	for _, tool := range []string{jq, "/usr/bin/dirname"} {
		if _, err := os.Stat(tool); err != nil {
			t.Skipf("%s: %v", tool, err)
		}
		must(t, os.Symlink(tool, filepath.Join(noAz, filepath.Base(tool))))
	}
	signedOut, signedOutPath := fakeAzDir(t, false, "{}")
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"az missing", map[string]string{"PATH": noAz, "RESOURCE_GROUP": "rg", "PARAMS": params}, "the Azure CLI (az) is not installed"},
		{"not signed in", map[string]string{"PATH": signedOutPath, "FAKE_AZ": signedOut, "RESOURCE_GROUP": "rg", "PARAMS": params}, "not signed in to Azure: run az login"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tc.env, "deploy.sh", "preflight")
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit code %d, stderr %q; want a failure saying %q (stdout %q)", code, stderr, tc.want, stdout)
			}
		})
	}
}

const functionAppID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Web/sites/func-appreg"

// deployFixture is a fake az with a finished deployment (its outputs), a function key, a parameters file,
// and, when srv is set, the function's host name pointing at srv; env is the environment for deploy.sh.
func deployFixture(t *testing.T, srv *httptest.Server, params string, assigned ...string) (dir string, env map[string]string) {
	t.Helper()
	dir, path := fakeAzDir(t, true, graphJSON(ownedBy), assigned...)
	must(t, os.Mkdir(filepath.Join(dir, "outputs"), 0o755))
	host := "func-appreg.azurewebsites.net"
	env = map[string]string{"PATH": path, "FAKE_AZ": dir, "RESOURCE_GROUP": "rg", "RETRY_INTERVAL": "0", "PUBLISH_INTERVAL": "0"}
	if srv != nil {
		host = strings.TrimPrefix(srv.URL, "https://")
		ca := filepath.Join(dir, "ca.pem")
		must(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644))
		env["CURL_CA_BUNDLE"] = ca
	}
	for name, value := range map[string]string{
		"functionAppName": "func-appreg", "functionAppHostName": host, "functionAppResourceId": functionAppID,
		"functionAppPrincipalId": miObjectID,
	} {
		must(t, os.WriteFile(filepath.Join(dir, "outputs", name), []byte(value+"\n"), 0o644))
	}
	must(t, os.WriteFile(filepath.Join(dir, "key"), []byte(testKey+"\n"), 0o644))
	env["PARAMS"] = filepath.Join(dir, "params.json")
	must(t, os.WriteFile(env["PARAMS"], []byte(params), 0o644))
	env["PACKAGE"] = filepath.Join(dir, "appreg-func.zip")
	must(t, os.WriteFile(env["PACKAGE"], []byte("zip"), 0o644))
	return dir, env
}

// calls returns the fake az's calls of one kind (lines starting with prefix).
func calls(t *testing.T, dir, prefix string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "calls"))
	if os.IsNotExist(err) {
		return nil
	}
	must(t, err)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func countdown(t *testing.T, dir, kind string, n int) {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(dir, kind+"-fail"), []byte(fmt.Sprint(n)), 0o644))
}

func TestDeployProvisionAndStatus(t *testing.T) {
	needTools(t, "bash", "curl", "jq")
	consent := "https://login.microsoftonline.com/11111111-1111-1111-1111-111111111111/adminconsent?client_id=22222222-2222-2222-2222-222222222222"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-functions-key") != testKey {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.Method + " " + r.URL.Path {
		case "POST /api/provision":
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, strings.Replace(provisionBody, `"changes"`, `"adminConsentUrl":"`+consent+`","changes"`, 1))
		case "GET /api/status":
			io.WriteString(w, `{"compliant":true,"appId":"22222222-2222-2222-2222-222222222222","findings":[]}`)
		default:
			t.Errorf("unexpected call %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		command   string
		keysFail  int // listkeys answers ServiceUnavailable this many times first
		retry     string
		wantCode  int
		want      []string
		wantKeyOf int // listkeys calls
	}{
		{command: "provision", wantKeyOf: 1, want: []string{
			"AppConfig:AuthConfig:ApplicationId = 22222222-2222-2222-2222-222222222222",
			"AppConfig:AuthConfig:TenantId      = 11111111-1111-1111-1111-111111111111",
			"@Microsoft.KeyVault(SecretUri=https://contoso-kv.vault.azure.net/secrets/AppConfig--AuthConfig--ApplicationKey/)",
			"opens, once: " + consent,
		}},
		{command: "provision", keysFail: 3, wantKeyOf: 4, want: []string{
			"attempt 1: the function key is not readable yet (ERROR: Bad Request",
			"Encountered an error (ServiceUnavailable) from host runtime.",
			"AppConfig:AuthConfig:ApplicationId = 22222222-2222-2222-2222-222222222222",
		}},
		{command: "provision", keysFail: 100, retry: "0", wantCode: 1, wantKeyOf: 1, want: []string{
			"provision failed: the function key was not readable after 1 attempts", "ServiceUnavailable"}},
		{command: "status", want: []string{`"compliant": true`}, wantKeyOf: 1},
		{command: "status", keysFail: 2, want: []string{`"compliant": true`, "ServiceUnavailable"}, wantKeyOf: 3},
	} {
		t.Run(fmt.Sprintf("%s after %d ServiceUnavailable", tc.command, tc.keysFail), func(t *testing.T) {
			dir, env := deployFixture(t, srv, `{"parameters":{"consentMode":{"value":"admin"}}}`)
			countdown(t, dir, "keys", tc.keysFail)
			if tc.retry != "" {
				env["RETRY_SECONDS"] = tc.retry
			}
			code, stdout, stderr := run(t, env, "deploy.sh", tc.command)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output does not contain %q:\nstdout:\n%s\nstderr:\n%s", w, stdout, stderr)
				}
			}
			if got := calls(t, dir, "rest --method post --url "+functionAppID+"/host/default/listkeys"); len(got) != tc.wantKeyOf {
				t.Errorf("%d listkeys calls, want %d", len(got), tc.wantKeyOf)
			}
			if strings.Contains(stdout+stderr, testKey) {
				t.Errorf("the function key appears in the output")
			}
			b, err := os.ReadFile(filepath.Join(dir, "calls"))
			must(t, err)
			if strings.Contains(string(b), testKey) {
				t.Errorf("the function key was passed to az on a command line")
			}
		})
	}
}

func TestDeployPublish(t *testing.T) {
	needTools(t, "bash", "jq")
	granted := []string{assignment(ownedBy), assignment(readAll)}
	for _, tc := range []struct {
		name        string
		assigned    []string
		publishFail int    // config-zip answers BlobUploadFailedException this many times first
		publishErr  string // then this error for good, if set
		timeout     string // PUBLISH_TIMEOUT
		env         map[string]string
		wantCode    int
		wantPublish int // config-zip calls
		wantOut     []string
	}{
		{name: "at once", assigned: granted, wantPublish: 1, wantOut: []string{"Graph permissions of consent mode admin: present", "published (attempt 1)"}},
		{name: "retries while the storage role propagates", assigned: granted, publishFail: 3, wantPublish: 4, wantOut: []string{
			"attempt 1: storage refused the package (BlobUploadFailedException/403", "attempt 3:", "published (attempt 4)"}},
		{name: "gives up at the limit with a clear error", assigned: granted, publishFail: 1000, timeout: "0", wantCode: 1, wantPublish: 1, wantOut: []string{
			"BlobUploadFailedException", "publishing still fails after 1 attempts", "Storage Blob Data Owner role on the storage account has not taken effect",
			"az role assignment list --assignee " + miObjectID}},
		{name: "another failure is not retried", assigned: granted, wantCode: 1, wantPublish: 1,
			publishErr: "ERROR: (AuthorizationFailed) The client 'me' does not have authorization to perform action 'Microsoft.Web/sites/publish/Action'",
			wantOut:    []string{"AuthorizationFailed", "not a storage authorization failure, so not retried"}},
		{name: "refuses before the Graph grant", wantCode: 1, wantPublish: 0, wantOut: []string{
			"missing: Application.ReadWrite.OwnedBy", "grant the Graph permissions before publishing (infra/deploy.sh grant)", "24 hours"}},
		{name: "refuses an admin-mode identity holding more", assigned: append(slices.Clone(granted), assignment(assignRW)), wantCode: 1, wantPublish: 0,
			wantOut: []string{"AppRoleAssignment.ReadWrite.All", "grant the Graph permissions before publishing"}},
		{name: "SKIP_GRANT_CHECK publishes anyway", env: map[string]string{"SKIP_GRANT_CHECK": "1"}, wantPublish: 1, wantOut: []string{"published (attempt 1)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, env := deployFixture(t, nil, `{"parameters":{"consentMode":{"value":"admin"}}}`, tc.assigned...)
			countdown(t, dir, "publish", tc.publishFail)
			if tc.publishErr != "" {
				must(t, os.WriteFile(filepath.Join(dir, "publish-err"), []byte(tc.publishErr), 0o644))
			}
			if tc.timeout != "" {
				env["PUBLISH_TIMEOUT"] = tc.timeout
			}
			maps.Copy(env, tc.env)
			code, stdout, stderr := run(t, env, "deploy.sh", "publish")
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output does not contain %q:\nstdout:\n%s\nstderr:\n%s", w, stdout, stderr)
				}
			}
			if got := calls(t, dir, "functionapp deployment source config-zip"); len(got) != tc.wantPublish {
				t.Errorf("%d publish calls, want %d", len(got), tc.wantPublish)
			}
		})
	}
}

func TestDeployGrant(t *testing.T) {
	needTools(t, "bash", "jq")
	for _, tc := range []struct {
		name      string
		params    string
		forbid    bool
		wantCode  int
		wantRoles []string
		wantOut   []string
	}{
		{name: "admin mode by default", params: `{"parameters":{}}`, wantRoles: []string{ownedBy, readAll},
			wantOut: []string{"consent mode admin", "granted: Application.Read.All"}},
		{name: "grant mode from the parameters", params: `{"parameters":{"consentMode":{"value":"grant"}}}`, wantRoles: []string{ownedBy, readAll, assignRW},
			wantOut: []string{"granted: AppRoleAssignment.ReadWrite.All"}},
		{name: "not a privileged admin: stops with the command", params: `{"parameters":{}}`, forbid: true, wantCode: 4, wantOut: []string{
			"stopped: the signed-in account may not grant",
			"infra/grant-graph-permissions.sh --mode admin --object-id " + miObjectID,
			"infra/deploy.sh publish", "infra/deploy.sh provision"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, env := deployFixture(t, nil, tc.params)
			if tc.forbid {
				must(t, os.WriteFile(filepath.Join(dir, "forbid-grant"), nil, 0o644))
			}
			code, stdout, stderr := run(t, env, "deploy.sh", "grant")
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output does not contain %q:\nstdout:\n%s\nstderr:\n%s", w, stdout, stderr)
				}
			}
			if got := assignedRoles(t, dir); fmt.Sprint(got) != fmt.Sprint(tc.wantRoles) {
				t.Errorf("assignments afterwards = %v, want %v", got, tc.wantRoles)
			}
		})
	}
}

func TestDeployInfra(t *testing.T) {
	needTools(t, "bash", "jq")
	outputs := func(model string) string {
		return `{"functionAppName":{"value":"func-appreg"},"keyVaultName":{"value":"kv-scepman"},"keyVaultPermissionModel":{"value":"` + model + `"}}`
	}
	deleted := `[{"name":"kvabc123","properties":{"vaultId":"/subscriptions/s/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/kvabc123","deletionDate":"2026-01-01T00:00:00Z","scheduledPurgeDate":"2026-04-01T00:00:00Z"}},
 {"name":"kvother","properties":{"vaultId":"/subscriptions/s/resourceGroups/elsewhere/providers/Microsoft.KeyVault/vaults/kvother"}}]`
	for _, tc := range []struct {
		name      string
		params    string
		outputs   string
		deleted   string
		createErr string
		wantCode  int
		wantOut   []string
		notOut    []string
	}{
		{name: "access-policy vault", params: `{"parameters":{"existingKeyVaultName":{"value":"kv-scepman"}}}`, outputs: outputs("accessPolicy"),
			wantOut: []string{"keyVaultPermissionModel: accessPolicy", "uses access policies (read from the vault)", "get, list, set, recover", "every secret of that vault", "next: infra/deploy.sh grant"}},
		{name: "rbac vault", params: `{"parameters":{"existingKeyVaultName":{"value":"kv-scepman"},"keyVaultRoleScope":{"value":"secret"}}}`, outputs: outputs("rbac"),
			wantOut: []string{"uses Azure RBAC (read from the vault)", "Key Vault Secrets Officer at keyVaultRoleScope (secret)"}},
		{name: "warns about a soft-deleted vault of this group", params: `{"parameters":{}}`, outputs: outputs("rbac"), deleted: deleted,
			wantOut: []string{"soft-deleted vaults of resource group rg", "kvabc123 (deleted 2026-01-01T00:00:00Z"}, notOut: []string{"kvother"}},
		{name: "a soft-deleted name collides: says how out", params: `{"parameters":{}}`, deleted: deleted, wantCode: 1,
			createErr: `ERROR: {"code": "ConflictError", "message": "A vault with the same name already exists in deleted state. You need to either recover or purge existing key vault."}`,
			wantOut:   []string{"deleted state", "recoverKeyVault", "keyVaultNameSalt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, env := deployFixture(t, nil, tc.params)
			must(t, os.WriteFile(filepath.Join(dir, "create.json"), []byte(tc.outputs), 0o644))
			if tc.deleted != "" {
				must(t, os.WriteFile(filepath.Join(dir, "deleted.json"), []byte(tc.deleted), 0o644))
			}
			if tc.createErr != "" {
				must(t, os.WriteFile(filepath.Join(dir, "create-err"), []byte(tc.createErr), 0o644))
			}
			code, stdout, stderr := run(t, env, "deploy.sh", "infra")
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output does not contain %q:\nstdout:\n%s\nstderr:\n%s", w, stdout, stderr)
				}
			}
			for _, w := range tc.notOut {
				if strings.Contains(stdout+stderr, w) {
					t.Errorf("output contains %q", w)
				}
			}
		})
	}
}

const (
	homeTenant  = "11111111-1111-1111-1111-111111111111"
	fabrikam    = "6f1c2b3a-0000-4000-8000-00000000fab1"
	northwind   = "9d8e7f6a-0000-4000-8000-0000000000b2"
	fedAppName  = "SCEPman app registration function (federated)"
	graphAppID  = "00000003-0000-0000-c000-000000000000"
	exchangeAud = "api://AzureADTokenExchange"
)

// rra is the requiredResourceAccess federated-app.sh asks for: Microsoft Graph application permissions,
// their ids sorted.
func rra(roles ...string) string {
	slices.Sort(roles)
	var access []string
	for _, r := range roles {
		access = append(access, `{"id":"`+r+`","type":"Role"}`)
	}
	return `[{"resourceAppId":"` + graphAppID + `","resourceAccess":[` + strings.Join(access, ",") + `]}]`
}

// ficJSON is a federated identity credential as Graph lists it.
func ficJSON(name, issuer, subject string) string {
	return fmt.Sprintf(`{"id":"id-%s","name":%q,"issuer":%q,"subject":%q,"audiences":[%q]}`, name, name, issuer, subject, exchangeAud)
}

func TestFederatedApp(t *testing.T) {
	needTools(t, "bash", "jq")
	issuer := "https://login.microsoftonline.com/" + homeTenant + "/v2.0"
	byObject := []string{"--object-id", miObjectID}
	mspParams := `{"parameters":{"consentMode":{"value":"admin"},"instances":{"value":[
		{"name":"contoso"},
		{"name":"fabrikam","tenantId":"` + fabrikam + `","consent":"grant"},
		{"name":"northwind","tenantId":"` + strings.ToUpper(northwind) + `"},
		{"name":"home-again","tenantId":"` + homeTenant + `","uniqueName":"scepman2"}]}}}`
	existing := func(audience, roles string) string {
		return `[{"id":"obj-1","appId":"app-1","displayName":"` + fedAppName + `","signInAudience":"` + audience + `","requiredResourceAccess":` + roles + `,"web":{"redirectUris":[]}}]`
	}
	twenty := make([]string, 20)
	for i := range twenty {
		twenty[i] = ficJSON(fmt.Sprintf("other-%d", i), issuer, fmt.Sprintf("44444444-4444-4444-4444-%012d", i))
	}
	for _, tc := range []struct {
		name       string
		args       []string
		params     string // written to a parameters file, passed with --params
		noIdentity bool   // the identity is not in the signed-in tenant
		forbid     bool   // the signed-in account may not create applications
		apps, fics string // the tenant's applications and the federated credentials of app-1
		runs       int    // how many times to run (default 1)
		ficFail    int    // adding the credential answers "does not exist" this many times first
		ficRetry   string // FIC_RETRY_SECONDS
		wantCode   int
		wantCalls  []string // exact az calls (after "ad app ", in order) among the ad app calls
		wantOut    []string
		notOut     []string
		wantApp    string // requiredResourceAccess of the application afterwards
		wantFICs   int
		wantRedir  string
	}{
		{name: "creates the application and its credential, admin mode", args: append(slices.Clone(byObject), "--tenant", fabrikam),
			wantCalls: []string{
				"list --filter displayName eq '" + fedAppName + "' --output json --only-show-errors",
				"create --display-name " + fedAppName + " --sign-in-audience AzureADMultipleOrgs --required-resource-accesses " + rra(ownedBy, readAll) + " --output json --only-show-errors",
				`federated-credential create --id fed-app-0 --parameters {"name":"appreg-` + miObjectID + `","issuer":"` + issuer + `","subject":"` + miObjectID +
					`","description":"SCEPman app registration function: its managed identity reaches customer tenants without a secret","audiences":["` + exchangeAud + `"]} --output none --only-show-errors`,
			},
			wantOut: []string{"APPREG_FEDERATED_APP_ID=fed-app-0", "\"federatedAppId\": {\"value\": \"fed-app-0\"}",
				fabrikam + ": https://login.microsoftonline.com/" + fabrikam + "/adminconsent?client_id=fed-app-0",
				"Privileged Role Administrator or Global Administrator", "federated credentials: 1 of at most 20"},
			notOut:  []string{"AppRoleAssignment.ReadWrite.All"},
			wantApp: rra(ownedBy, readAll), wantFICs: 1},
		{name: "a second run changes nothing", args: byObject, runs: 2, wantApp: rra(ownedBy, readAll), wantFICs: 1,
			wantOut: []string{"as wanted", "present: federated credential appreg-" + miObjectID, "<customer tenant id>/adminconsent?client_id=fed-app-0"}},
		{name: "from the deployment and the parameters: grant mode, the other tenants, the redirect", args: []string{"--resource-group", "rg"}, params: mspParams,
			wantApp: rra(ownedBy, readAll, assignRW), wantFICs: 1, wantRedir: "https://func-appreg.azurewebsites.net/",
			wantOut: []string{"mode grant: instance fabrikam (tenant " + fabrikam + ") has consent grant",
				fabrikam + ": https://login.microsoftonline.com/" + fabrikam + "/adminconsent?client_id=fed-app-0",
				strings.ToUpper(northwind) + ": https://login.microsoftonline.com/" + strings.ToUpper(northwind) + "/adminconsent",
				"Application.ReadWrite.OwnedBy, Application.Read.All, AppRoleAssignment.ReadWrite.All"},
			notOut: []string{homeTenant + ": https://login.microsoftonline.com/" + homeTenant + "/adminconsent"}},
		{name: "--mode admin against an instance with consent grant warns", args: []string{"--resource-group", "rg", "--mode", "admin"}, params: mspParams,
			wantApp: rra(ownedBy, readAll), wantFICs: 1, wantOut: []string{"instance fabrikam (tenant " + fabrikam + ") has consent grant, but --mode admin"}},
		{name: "repairs an existing application and narrows it to admin mode", args: append(slices.Clone(byObject), "--app-id", "app-1"),
			apps: existing("AzureADMyOrg", rra(ownedBy, readAll, assignRW)), fics: "[" + ficJSON("appreg-"+miObjectID, issuer, miObjectID) + "]",
			wantCalls: []string{
				"show --id app-1 --output json --only-show-errors",
				"update --id app-1 --sign-in-audience AzureADMultipleOrgs --required-resource-accesses " + rra(ownedBy, readAll) + " --only-show-errors",
				"federated-credential list --id app-1 --output json --only-show-errors",
			},
			wantApp: rra(ownedBy, readAll), wantFICs: 1,
			wantOut: []string{"signInAudience AzureADMyOrg: to AzureADMultipleOrgs", "tenants that consented keep it", "Revoking or narrowing a consent",
				"APPREG_FEDERATED_APP_ID=app-1"}},
		{name: "adds the function's address as redirect URI, keeping the others", args: []string{"--resource-group", "rg"},
			apps: `[{"id":"obj-1","appId":"app-1","displayName":"` + fedAppName + `","signInAudience":"AzureADMultipleOrgs","requiredResourceAccess":` +
				rra(ownedBy, readAll) + `,"web":{"redirectUris":["https://other.example/"]}}]`,
			wantCalls: []string{
				"list --filter displayName eq '" + fedAppName + "' --output json --only-show-errors",
				"update --id app-1 --web-redirect-uris https://other.example/ https://func-appreg.azurewebsites.net/ --only-show-errors",
				"federated-credential list --id app-1 --output json --only-show-errors",
				`federated-credential create --id app-1 --parameters {"name":"appreg-` + miObjectID + `","issuer":"` + issuer + `","subject":"` + miObjectID +
					`","description":"SCEPman app registration function: its managed identity reaches customer tenants without a secret","audiences":["` + exchangeAud + `"]} --output none --only-show-errors`,
			},
			wantApp: rra(ownedBy, readAll), wantFICs: 1, wantOut: []string{"web redirect URI: https://func-appreg.azurewebsites.net/"}},
		{name: "the application of the parameters file's federatedAppId", args: byObject,
			params: `{"parameters":{"federatedAppId":{"value":"app-1"}}}`, apps: existing("AzureADMultipleOrgs", rra(ownedBy, readAll)),
			wantApp: rra(ownedBy, readAll), wantFICs: 1, wantOut: []string{"created: federated credential", "APPREG_FEDERATED_APP_ID=app-1"}},
		{name: "widening to grant mode asks consenting tenants to consent again", args: append(slices.Clone(byObject), "--mode", "grant"),
			apps: existing("AzureADMultipleOrgs", rra(ownedBy, readAll)), wantApp: rra(ownedBy, readAll, assignRW), wantFICs: 1,
			wantOut: []string{"must consent again"}},
		{name: "names the other credentials that can sign in as the application", args: byObject,
			apps: existing("AzureADMultipleOrgs", rra(ownedBy, readAll)), fics: "[" + ficJSON("github-deploy", "https://token.actions.githubusercontent.com", "repo:contoso/x:ref:refs/heads/main") + "]",
			wantApp: rra(ownedBy, readAll), wantFICs: 2,
			wantOut: []string{"can sign in as the application too", "github-deploy: issuer https://token.actions.githubusercontent.com", "federated credentials: 2 of at most 20"}},
		{name: "stops at 20 federated credentials", args: byObject, apps: existing("AzureADMultipleOrgs", rra(ownedBy, readAll)),
			fics: "[" + strings.Join(twenty, ",") + "]", wantCode: 6, wantApp: rra(ownedBy, readAll), wantFICs: 20,
			wantOut: []string{"already has 20 federated credentials, the most Entra ID allows (20)", "az ad app federated-credential delete --id app-1"},
			notOut:  []string{"APPREG_FEDERATED_APP_ID="}},
		{name: "a credential of the same name for another identity is not overwritten", args: byObject, apps: existing("AzureADMultipleOrgs", rra(ownedBy, readAll)),
			fics: "[" + ficJSON("appreg-"+miObjectID, issuer, "55555555-5555-5555-5555-555555555555") + "]", wantCode: 1, wantApp: rra(ownedBy, readAll), wantFICs: 1,
			wantOut: []string{"exists with another issuer or subject"}},
		{name: "retries the credential while the new application replicates", args: byObject, ficFail: 2, wantApp: rra(ownedBy, readAll), wantFICs: 1,
			wantOut: []string{"the new application is not visible yet (replication)", "created: federated credential", "APPREG_FEDERATED_APP_ID=fed-app-0"}},
		{name: "gives up on the credential after FIC_RETRY_SECONDS", args: byObject, ficFail: 100, ficRetry: "0", wantCode: 1, wantApp: rra(ownedBy, readAll),
			wantOut: []string{"creating the federated credential failed", "does not exist"}, notOut: []string{"APPREG_FEDERATED_APP_ID="}},
		{name: "dry run creates nothing", args: append(slices.Clone(byObject), "--dry-run"), wantFICs: 0,
			wantOut: []string{"would create: application", "would create: federated credential appreg-" + miObjectID, "dry run: nothing changed"},
			notOut:  []string{"APPREG_FEDERATED_APP_ID="}},
		{name: "the account may not create applications: exit 4", args: byObject, forbid: true, wantCode: 4,
			wantOut: []string{"Insufficient privileges", "Application Developer"}},
		{name: "the identity is not in the signed-in tenant", args: byObject, noIdentity: true, wantCode: 1,
			wantOut: []string{"no service principal " + miObjectID + " in tenant " + homeTenant, "az login --tenant"}},
		{name: "several applications of that name", args: byObject, wantCode: 1, wantOut: []string{"give --app-id"},
			apps: `[{"appId":"a","displayName":"` + fedAppName + `"},{"appId":"b","displayName":"` + fedAppName + `"}]`},
		{name: "an upper-case object id is the lower-case subject", args: []string{"--object-id", strings.ToUpper(miObjectID)}, wantApp: rra(ownedBy, readAll), wantFICs: 1,
			wantOut: []string{"subject " + miObjectID}},
		{name: "no identity", args: []string{"--mode", "admin"}, wantCode: 2, wantOut: []string{"give --resource-group (the deployment) or --object-id"}},
		{name: "unknown mode", args: append(slices.Clone(byObject), "--mode", "all"), wantCode: 2, wantOut: []string{"not all"}},
		{name: "help says who consents and the limits", args: []string{"--help"},
			wantOut: []string{"AzureADMultipleOrgs", "Privileged Role Administrator or Global", "at most 20", "api://AzureADTokenExchange", "adminconsent?client_id="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, env := deployFixture(t, nil, `{"parameters":{}}`)
			must(t, os.WriteFile(filepath.Join(dir, "tenant"), []byte(homeTenant+"\n"), 0o644))
			if !tc.noIdentity {
				must(t, os.WriteFile(filepath.Join(dir, "mi-sp.json"), []byte(`{"id":"`+miObjectID+`","displayName":"id-func-appreg","servicePrincipalType":"ManagedIdentity"}`), 0o644))
			}
			if tc.forbid {
				must(t, os.WriteFile(filepath.Join(dir, "forbid-app"), nil, 0o644))
			}
			for file, content := range map[string]string{"apps.json": tc.apps, "fics.json": tc.fics} {
				if content != "" {
					must(t, os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644))
				}
			}
			countdown(t, dir, "fic", tc.ficFail)
			env["FIC_RETRY_INTERVAL"] = "0"
			if tc.ficRetry != "" {
				env["FIC_RETRY_SECONDS"] = tc.ficRetry
			}
			args := tc.args
			if tc.params != "" {
				must(t, os.WriteFile(env["PARAMS"], []byte(tc.params), 0o644))
				args = append(slices.Clone(args), "--params", env["PARAMS"])
			}
			var code int
			var stdout, stderr string
			for range max(tc.runs, 1) {
				code, stdout, stderr = run(t, env, "federated-app.sh", args...)
			}
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output does not contain %q:\nstdout:\n%s\nstderr:\n%s", w, stdout, stderr)
				}
			}
			for _, w := range tc.notOut {
				if strings.Contains(stdout+stderr, w) {
					t.Errorf("output contains %q:\nstdout:\n%s\nstderr:\n%s", w, stdout, stderr)
				}
			}
			if tc.wantCalls != nil {
				var got []string
				for _, c := range calls(t, dir, "ad app ") {
					got = append(got, strings.TrimPrefix(c, "ad app "))
				}
				if !slices.Equal(got, tc.wantCalls) {
					t.Errorf("az ad app calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.wantCalls, "\n  "))
				}
			}
			if tc.runs > 1 {
				if got := calls(t, dir, "ad app create"); len(got) != 1 {
					t.Errorf("%d creates over %d runs, want 1", len(got), tc.runs)
				}
				if got := calls(t, dir, "ad app update"); len(got) != 0 {
					t.Errorf("the second run updated the application: %v", got)
				}
			}
			var apps []struct {
				AppID, SignInAudience  string
				RequiredResourceAccess json.RawMessage
				Web                    struct{ RedirectURIs []string }
			}
			if b, err := os.ReadFile(filepath.Join(dir, "apps.json")); err == nil {
				must(t, json.Unmarshal(b, &apps))
			}
			if tc.wantApp != "" {
				if len(apps) != 1 {
					t.Fatalf("%d applications afterwards, want 1", len(apps))
				}
				var got, want any
				must(t, json.Unmarshal(apps[0].RequiredResourceAccess, &got))
				must(t, json.Unmarshal([]byte(tc.wantApp), &want))
				if fmt.Sprint(got) != fmt.Sprint(want) || apps[0].SignInAudience != "AzureADMultipleOrgs" {
					t.Errorf("application afterwards: %s %s, want AzureADMultipleOrgs %s", apps[0].SignInAudience, apps[0].RequiredResourceAccess, tc.wantApp)
				}
				if tc.wantRedir != "" && !slices.Equal(apps[0].Web.RedirectURIs, []string{tc.wantRedir}) {
					t.Errorf("redirect URIs %v, want %s", apps[0].Web.RedirectURIs, tc.wantRedir)
				}
			}
			var fics []struct{ Name, Issuer, Subject string }
			if b, err := os.ReadFile(filepath.Join(dir, "fics.json")); err == nil {
				must(t, json.Unmarshal(b, &fics))
			}
			if len(fics) != tc.wantFICs {
				t.Errorf("%d federated credentials afterwards, want %d", len(fics), tc.wantFICs)
			}
			for _, f := range fics {
				if strings.HasPrefix(f.Name, "appreg-") && (f.Issuer != issuer || (f.Subject != miObjectID && tc.wantCode == 0)) {
					t.Errorf("credential %+v, want issuer %s subject %s", f, issuer, miObjectID)
				}
			}
		})
	}
}

// TestDeployProvisionInstances: with instances in the parameters, provision calls each in turn; one that fails
// (a customer tenant that has not consented) does not hide the others, and the step fails naming it.
func TestDeployProvisionInstances(t *testing.T) {
	needTools(t, "bash", "curl", "jq")
	consent := "https://login.microsoftonline.com/" + fabrikam + "/adminconsent?client_id=fed-app-0"
	var mu sync.Mutex
	var got []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("instance") {
		case "fabrikam":
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, `{"error":{"code":"UpstreamForbidden","message":"Entra ID token service answered 400 AADSTS700016: signing in to tenant `+fabrikam+
				` as the federated application fed-app-0: AADSTS700016: Application not found (the federated application fed-app-0 has not been consented in tenant `+
				fabrikam+`: an administrator of that tenant opens `+consent+` once)"}}`)
		default:
			io.WriteString(w, provisionBody)
		}
	}))
	t.Cleanup(srv.Close)
	params := `{"parameters":{"instances":{"value":[{"name":"contoso"},{"name":"fabrikam","tenantId":"` + fabrikam + `"},{"name":"northwind","tenantId":"` + northwind + `"}]}}}`
	_, env := deployFixture(t, srv, params)
	code, stdout, stderr := run(t, env, "deploy.sh", "provision")
	if code != 1 {
		t.Fatalf("exit code %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	want := []string{"POST /api/provision?instance=contoso", "POST /api/provision?instance=fabrikam", "POST /api/provision?instance=northwind"}
	if !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	for _, w := range []string{
		"instance contoso:", "outputs for SCEPman's app settings (instance contoso):", "outputs for SCEPman's app settings (instance northwind):",
		consent, "an administrator of that tenant opens the link in the message once",
		"provision failed for instance(s) fabrikam (the others are provisioned)",
	} {
		if !strings.Contains(stdout+stderr, w) {
			t.Errorf("output does not contain %q:\nstdout:\n%s\nstderr:\n%s", w, stdout, stderr)
		}
	}
	if strings.Contains(stdout+stderr, "24 hours") {
		t.Errorf("a missing consent is explained as the token cache:\n%s", stderr)
	}
	if strings.Contains(stdout+stderr, testKey) {
		t.Errorf("the function key appears in the output")
	}
}
