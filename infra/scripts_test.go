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

var scripts = []string{"deploy.sh", "grant-graph-permissions.sh", "provision-script.sh"}

func TestShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skip("shellcheck is not installed (apt-get install shellcheck); make lint-sh and CI run it")
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
case "$1 $2" in
  "account show") [ -e "$FAKE_AZ/signed-in" ] || { echo "Please run 'az login' to setup account." >&2; exit 1; }; echo '{"name":"sub"}'; exit 0 ;;
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
