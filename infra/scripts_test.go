package infra

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
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
				"appId":       "22222222-2222-2222-2222-222222222222",
				"tenantId":    "11111111-1111-1111-1111-111111111111",
				"secretUri":   "https://contoso-kv.vault.azure.net/secrets/AppConfig--AuthConfig--ApplicationKey/",
				"secretName":  "AppConfig--AuthConfig--ApplicationKey",
				"keyVaultUrl": "https://contoso-kv.vault.azure.net/",
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

// fakeAz is an az stand-in for grant-graph-permissions.sh and deploy.sh: it answers from the files of
// $FAKE_AZ (the Graph service principal, the identity, its app role assignments) and appends every call to
// $FAKE_AZ/calls. A POST of an app role assignment adds it to the assignments file, as Graph would.
const fakeAz = `#!/bin/bash
set -euo pipefail
echo "$*" >> "$FAKE_AZ/calls"
case "$1 $2" in
  "account show") [ -e "$FAKE_AZ/signed-in" ] || { echo "Please run 'az login' to setup account." >&2; exit 1; }; echo '{"name":"sub"}'; exit 0 ;;
  "functionapp identity") cat "$FAKE_AZ/identity.json"; exit 0 ;;
  "group show") exit 0 ;;
  "functionapp keys") cat "$FAKE_AZ/key"; exit 0 ;;
  "deployment group")
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
  "GET https://graph.microsoft.com/v1.0/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')"*) cat "$FAKE_AZ/graph.json" ;;
  "GET https://graph.microsoft.com/v1.0/servicePrincipals/"*"/appRoleAssignments"*) jq '{value: .}' "$FAKE_AZ/assignments.json" ;;
  "GET https://graph.microsoft.com/v1.0/servicePrincipals/"*) echo '{"id":"mi","displayName":"func-appreg","servicePrincipalType":"ManagedIdentity"}' ;;
  "POST https://graph.microsoft.com/v1.0/servicePrincipals/"*"/appRoleAssignments")
    jq --argjson b "$body" '. + [$b]' "$FAKE_AZ/assignments.json" > "$FAKE_AZ/a.tmp" && mv "$FAKE_AZ/a.tmp" "$FAKE_AZ/assignments.json" ;;
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
	return fmt.Sprintf(`{"principalId":%q,"resourceId":%q,"appRoleId":%q}`, miObjectID, graphSP, role)
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
		if a.PrincipalID != miObjectID || a.ResourceID != graphSP {
			t.Errorf("assignment %+v is not from the identity to Microsoft Graph", a)
		}
		roles = append(roles, a.AppRoleID)
	}
	return roles
}

func TestGrantGraphPermissions(t *testing.T) {
	needTools(t, "bash", "jq")
	for _, tc := range []struct {
		name      string
		signedIn  bool
		graph     string
		assigned  []string
		args      []string
		wantCode  int
		wantRoles []string // assignments afterwards, in order
		wantOut   []string // in stdout+stderr
	}{
		{name: "grants the two missing, keeps the present one", signedIn: true, graph: graphJSON(ownedBy),
			assigned: []string{assignment(readAll)}, args: []string{"--app", "func-appreg", "--resource-group", "rg"},
			wantRoles: []string{readAll, ownedBy, assignRW},
			wantOut:   []string{"granted: Application.ReadWrite.OwnedBy", "present: Application.Read.All", "granted: AppRoleAssignment.ReadWrite.All", "24 hours"}},
		{name: "second run changes nothing", signedIn: true, graph: graphJSON(ownedBy),
			assigned: []string{assignment(ownedBy), assignment(readAll), assignment(assignRW)}, args: []string{"--object-id", miObjectID},
			wantRoles: []string{ownedBy, readAll, assignRW}, wantOut: []string{"done: nothing to grant"}},
		{name: "dry run", signedIn: true, graph: graphJSON(ownedBy), args: []string{"--object-id", miObjectID, "--dry-run"},
			wantOut: []string{"would grant: Application.ReadWrite.OwnedBy", "would grant: AppRoleAssignment.ReadWrite.All", "nothing changed"}},
		{name: "warns about a broader permission it does not remove", signedIn: true, graph: graphJSON(ownedBy),
			assigned: []string{assignment(appReadWrite)}, args: []string{"--object-id", miObjectID},
			wantRoles: []string{appReadWrite, ownedBy, readAll, assignRW},
			wantOut:   []string{"does not need", "Application.ReadWrite.All"}},
		{name: "stops when Graph's role id is not the documented one", signedIn: true, graph: graphJSON("eeeeeeee-eeee-eeee-eeee-eeeeeeeeeeee"),
			args: []string{"--object-id", miObjectID}, wantCode: 1, wantOut: []string{"expected " + ownedBy}},
		{name: "not signed in", graph: graphJSON(ownedBy), args: []string{"--object-id", miObjectID},
			wantCode: 1, wantOut: []string{"not signed in to Azure: run az login"}},
		{name: "no target", signedIn: true, graph: graphJSON(ownedBy), wantCode: 1, wantOut: []string{"give --app and --resource-group, or --object-id"}},
		{name: "help names who must run it", args: []string{"--help"}, graph: graphJSON(ownedBy),
			wantOut: []string{"Privileged Role Administrator or Global Administrator", "cannot", "24 hours"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := fakeAzDir(t, tc.signedIn, tc.graph, tc.assigned...)
			code, stdout, stderr := run(t, map[string]string{"PATH": path, "FAKE_AZ": dir}, "grant-graph-permissions.sh", tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output does not contain %q:\nstdout:\n%s\nstderr:\n%s", w, stdout, stderr)
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

func TestDeployProvisionAndStatus(t *testing.T) {
	needTools(t, "bash", "curl", "jq")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-functions-key") != testKey {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.Method + " " + r.URL.Path {
		case "POST /api/provision":
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, provisionBody)
		case "GET /api/status":
			io.WriteString(w, `{"compliant":true,"appId":"22222222-2222-2222-2222-222222222222","findings":[]}`)
		default:
			t.Errorf("unexpected call %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	dir, path := fakeAzDir(t, true, "{}")
	must(t, os.Mkdir(filepath.Join(dir, "outputs"), 0o755))
	for name, value := range map[string]string{
		"functionAppName": "func-appreg", "functionAppHostName": strings.TrimPrefix(srv.URL, "https://"),
		"functionAppPrincipalId": miObjectID,
	} {
		must(t, os.WriteFile(filepath.Join(dir, "outputs", name), []byte(value+"\n"), 0o644))
	}
	must(t, os.WriteFile(filepath.Join(dir, "key"), []byte(testKey+"\n"), 0o644))
	ca := filepath.Join(dir, "ca.pem")
	must(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644))
	params := filepath.Join(dir, "params.json")
	must(t, os.WriteFile(params, []byte("{}"), 0o644))
	env := map[string]string{"PATH": path, "FAKE_AZ": dir, "RESOURCE_GROUP": "rg", "PARAMS": params,
		"CURL_CA_BUNDLE": ca, "RETRY_INTERVAL": "0"}

	for _, tc := range []struct {
		command string
		want    []string
	}{
		{"provision", []string{
			"AppConfig:AuthConfig:ApplicationId = 22222222-2222-2222-2222-222222222222",
			"AppConfig:AuthConfig:TenantId      = 11111111-1111-1111-1111-111111111111",
			"@Microsoft.KeyVault(SecretUri=https://contoso-kv.vault.azure.net/secrets/AppConfig--AuthConfig--ApplicationKey/)",
		}},
		{"status", []string{`"compliant": true`}},
	} {
		t.Run(tc.command, func(t *testing.T) {
			code, stdout, stderr := run(t, env, "deploy.sh", tc.command)
			if code != 0 {
				t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, stdout)
				}
			}
			if strings.Contains(stdout+stderr, testKey) {
				t.Errorf("the function key appears in the output")
			}
			calls, err := os.ReadFile(filepath.Join(dir, "calls"))
			must(t, err)
			if strings.Contains(string(calls), testKey) {
				t.Errorf("the function key was passed to az on a command line")
			}
		})
	}
}
