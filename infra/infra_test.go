package infra

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// builtInRoles is every Azure built-in role the templates may assign, by id, as Microsoft's "Azure built-in
// roles" reference lists them (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var builtInRoles = map[string]string{
	"b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
	"4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
	"b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
	"3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
	"de139f84-1756-47ae-9be6-808fbbe84772": "Website Contributor",
}

// identityRoles are the only roles the function's managed identity may get, each with the type of resource
// it is scoped to: nothing at resource group or subscription scope.
var identityRoles = map[string]string{
	"Key Vault Secrets Officer":    "Microsoft.KeyVault/vaults/",
	"Storage Blob Data Owner":      "Microsoft.Storage/storageAccounts/",
	"Monitoring Metrics Publisher": "Microsoft.Insights/components/",
	"Website Contributor":          "Microsoft.Web/sites/",
}

// contractSettings are the app settings of spec/interface.md with the default each must have in main.json
// ("" for one without a default: the template derives it).
var contractSettings = map[string]string{
	"APPREG_KEY_VAULT_URL":            "",
	"APPREG_DISPLAY_NAME":             "SCEPman",
	"APPREG_UNIQUE_NAME":              "scepman",
	"APPREG_PERMISSION_LEVEL":         "0",
	"APPREG_SECRET_NAME":              "AppConfig--AuthConfig--ApplicationKey",
	"APPREG_SECRET_LIFETIME_DAYS":     "180",
	"APPREG_SECRET_RENEW_BEFORE_DAYS": "30",
	"APPREG_SECRET_OVERLAP_HOURS":     "48",
	"APPREG_REMEDIATE":                "false",
	"APPREG_GRAPH_ENDPOINT":           "https://graph.microsoft.com",
	"APPREG_COMPLIANCE_SCHEDULE":      "0 0 */6 * * *",
	"APPREG_ROTATION_SCHEDULE":        "0 30 3 * * *",
	"APPREG_REFRESH_SITE_IDS":         "[]",
	"APPREG_CONSENT":                  "admin",
	"APPREG_ARM_ENDPOINT":             "",
}

// multiInstanceSettings are the contract settings that main.json writes only when their parameter is not
// empty (unset is their default: one instance, no other tenant), by setting and parameter.
var multiInstanceSettings = map[string]string{
	"APPREG_INSTANCES":        "instances",
	"APPREG_FEDERATED_APP_ID": "federatedAppId",
}

// templateDefaults are the contract settings whose default in main.json differs from the handler's on
// purpose, with the reason (infra/README.md): the template deploys the least privilege a review accepts.
var templateDefaults = map[string]string{
	"APPREG_CONSENT": "the handler defaults to grant; a deployment defaults to admin, so that the identity never holds AppRoleAssignment.ReadWrite.All unless asked",
}

// principalExpr is the one expression by which main.json names the function's managed identity: the
// user-assigned identity (created here or given) or the app's system-assigned one.
const principalExpr = "[if(variables('useUserAssigned'), reference(variables('identityResourceId'), '2023-01-31').principalId, reference(resourceId('Microsoft.Web/sites', parameters('appName')), '2024-04-01', 'Full').identity.principalId)]"

var (
	paramRef     = regexp.MustCompile(`parameters\('([^']+)'\)`)
	variableRef  = regexp.MustCompile(`variables\('([^']+)'\)`)
	guidRE       = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	sensitiveRE  = regexp.MustCompile(`(?i)(password|secret|key|token|credential|connectionstring)s?$`)
	listFunction = regexp.MustCompile(`(?i)\blist[a-z]*\(`)
)

type object = map[string]any

func loadJSON(t *testing.T, path string) object {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v object
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
	return v
}

// templates are the deployable templates of infra/.
var templates = []string{"main.json", "provision.json"}

// scope is one template: a file's, or a nested deployment's with inner expression evaluation, which has
// its own parameters and variables.
type scope struct {
	name     string
	template object
	strs     []string // every string in it, keys included, outside its own nested inner templates
	parent   object   // for a nested template: the deployments resource that holds it
}

// scopes splits a template into itself and its inner-scope nested templates, recursively.
func scopes(name string, tmpl object, parent object) []scope {
	s := scope{name: name, template: tmpl, parent: parent}
	var nested []scope
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			s.strs = append(s.strs, x)
		case []any:
			for _, e := range x {
				walk(e)
			}
		case object:
			inner := false
			if props, ok := x["properties"].(object); ok {
				if eo, ok := props["expressionEvaluationOptions"].(object); ok && strings.EqualFold(fmt.Sprint(eo["scope"]), "inner") {
					inner = true
				}
			}
			for k, e := range x {
				s.strs = append(s.strs, k)
				if inner && k == "properties" {
					props := e.(object)
					for pk, pv := range props {
						s.strs = append(s.strs, pk)
						if pk == "template" {
							nested = append(nested, scopes(fmt.Sprintf("%s > nested %s", name, nestedName(x)), pv.(object), x)...)
							continue
						}
						walk(pv)
					}
					continue
				}
				walk(e)
			}
		}
	}
	walk(tmpl)
	return append([]scope{s}, nested...)
}

// nestedName names a nested deployment for test output by what its template deploys.
func nestedName(d object) string {
	var types []string
	for _, r := range asSlice(d["properties"].(object)["template"].(object)["resources"]) {
		types = append(types, fmt.Sprint(r.(object)["type"]))
	}
	return strings.Join(types, "+")
}

func allScopes(t *testing.T) []scope {
	t.Helper()
	var all []scope
	for _, f := range templates {
		all = append(all, scopes(f, loadJSON(t, f), nil)...)
	}
	return all
}

func refs(re *regexp.Regexp, strs []string) map[string]bool {
	used := map[string]bool{}
	for _, s := range strs {
		for _, m := range re.FindAllStringSubmatch(s, -1) {
			used[m[1]] = true
		}
	}
	return used
}

func TestTemplatesParse(t *testing.T) {
	for _, f := range append(slices.Clone(templates), parameterExamples...) {
		t.Run(f, func(t *testing.T) {
			v := loadJSON(t, f)
			schema, _ := v["$schema"].(string)
			want := "deploymentTemplate.json#"
			if strings.Contains(f, "parameters") {
				want = "deploymentParameters.json#"
			}
			if !strings.HasPrefix(schema, "https://schema.management.azure.com/schemas/2019-04-01/") || !strings.HasSuffix(schema, want) {
				t.Errorf("$schema = %q, want the 2019-04-01 %s", schema, want)
			}
		})
	}
}

func TestParametersAndVariablesDeclaredAndUsed(t *testing.T) {
	for _, s := range allScopes(t) {
		t.Run(s.name, func(t *testing.T) {
			for _, kind := range []struct {
				section string
				re      *regexp.Regexp
			}{{"parameters", paramRef}, {"variables", variableRef}} {
				declared := map[string]bool{}
				if sec, ok := s.template[kind.section].(object); ok {
					for k := range sec {
						declared[k] = true
					}
				}
				used := refs(kind.re, s.strs)
				for _, u := range slices.Sorted(maps.Keys(used)) {
					if !declared[u] {
						t.Errorf("%s('%s') is used but not declared", kind.section, u)
					}
				}
				for _, d := range slices.Sorted(maps.Keys(declared)) {
					if !used[d] {
						t.Errorf("%s %q is declared but never used", kind.section, d)
					}
				}
			}
			// A nested deployment passes exactly the parameters its template declares.
			if s.parent != nil {
				passed := s.parent["properties"].(object)["parameters"].(object)
				declared := s.template["parameters"].(object)
				if got, want := slices.Sorted(maps.Keys(passed)), slices.Sorted(maps.Keys(declared)); !slices.Equal(got, want) {
					t.Errorf("nested deployment passes %v, its template declares %v", got, want)
				}
			}
		})
	}
}

// parameterExamples are the parameters files to copy: one instance, and an MSP's several instances.
var parameterExamples = []string{"main.parameters.example.json", "main.parameters.msp.example.json"}

func TestParametersExample(t *testing.T) {
	for _, f := range parameterExamples {
		t.Run(f, func(t *testing.T) { checkParametersExample(t, f) })
	}
}

func checkParametersExample(t *testing.T, file string) {
	main := loadJSON(t, "main.json")["parameters"].(object)
	example := loadJSON(t, file)["parameters"].(object)
	for _, name := range slices.Sorted(maps.Keys(main)) {
		if _, hasDefault := main[name].(object)["defaultValue"]; !hasDefault {
			if _, ok := example[name]; !ok {
				t.Errorf("required parameter %q is missing from the example", name)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(example)) {
		decl, ok := main[name].(object)
		if !ok {
			t.Errorf("example sets %q, which main.json does not declare", name)
			continue
		}
		value := example[name].(object)["value"]
		var typeOK bool
		switch strings.ToLower(decl["type"].(string)) {
		case "string", "securestring":
			_, typeOK = value.(string)
		case "int":
			f, isNum := value.(float64)
			typeOK = isNum && f == float64(int64(f))
		case "bool":
			_, typeOK = value.(bool)
		case "array":
			_, typeOK = value.([]any)
		case "object", "secureobject":
			_, typeOK = value.(object)
		}
		if !typeOK {
			t.Errorf("example %q = %v does not have type %v", name, value, decl["type"])
		}
		if allowed, ok := decl["allowedValues"].([]any); ok && !slices.Contains(allowed, value) {
			t.Errorf("example %q = %v is not one of %v", name, value, allowed)
		}
		if sensitiveRE.MatchString(name) {
			t.Errorf("example sets %q, a secret-looking parameter: no secret belongs in a file", name)
		}
	}
}

// siteResource returns the Microsoft.Web/sites resource of main.json.
func siteResource(t *testing.T, tmpl object) object {
	t.Helper()
	for _, r := range tmpl["resources"].([]any) {
		if r := r.(object); r["type"] == "Microsoft.Web/sites" {
			return r
		}
	}
	t.Fatal("main.json has no Microsoft.Web/sites resource")
	return nil
}

func TestFlexConsumptionCustomHandler(t *testing.T) {
	tmpl := loadJSON(t, "main.json")
	site := siteResource(t, tmpl)
	if site["kind"] != "functionapp,linux" {
		t.Errorf("site kind = %v, want functionapp,linux", site["kind"])
	}
	cfg := site["properties"].(object)["functionAppConfig"].(object)
	if rt := cfg["runtime"].(object); rt["name"] != "custom" || rt["version"] != "1.0" {
		t.Errorf("functionAppConfig.runtime = %v, want custom 1.0", rt)
	}
	storage := cfg["deployment"].(object)["storage"].(object)
	if storage["type"] != "blobContainer" {
		t.Errorf("deployment storage type = %v, want blobContainer", storage["type"])
	}
	if auth := fmt.Sprint(storage["authentication"]); !strings.Contains(auth, "SystemAssignedIdentity") || !strings.Contains(auth, "UserAssignedIdentity") {
		t.Errorf("deployment storage authentication = %s, want the managed identity (system- or user-assigned)", auth)
	}
	var plan object
	for _, r := range tmpl["resources"].([]any) {
		if r := r.(object); r["type"] == "Microsoft.Web/serverfarms" {
			plan = r
		}
	}
	if sku := plan["sku"].(object); sku["name"] != "FC1" || sku["tier"] != "FlexConsumption" {
		t.Errorf("plan sku = %v, want FC1 FlexConsumption", sku)
	}
	for _, r := range tmpl["resources"].([]any) {
		if r := r.(object); r["type"] == "Microsoft.Storage/storageAccounts" {
			if r["properties"].(object)["allowSharedKeyAccess"] != false {
				t.Errorf("storage account allows shared keys: the function reaches it with its managed identity")
			}
		}
	}
}

func TestAppSettings(t *testing.T) {
	tmpl := loadJSON(t, "main.json")
	params := tmpl["parameters"].(object)
	settings := map[string]string{}
	for _, s := range tmpl["variables"].(object)["appSettings"].([]any) {
		s := s.(object)
		settings[s["name"].(string)] = fmt.Sprint(s["value"])
	}
	siteSettings := fmt.Sprint(siteResource(t, tmpl)["properties"].(object)["siteConfig"].(object)["appSettings"])
	if !strings.Contains(siteSettings, "variables('appSettings')") {
		t.Fatalf("the site's appSettings do not use variables('appSettings'): %s", siteSettings)
	}

	// The settings the handler reads, from the contract and from local.settings.json.sample.
	want := maps.Clone(contractSettings)
	sample := loadJSON(t, "../local.settings.json.sample")["Values"].(object)
	for k := range sample {
		if _, conditional := multiInstanceSettings[k]; strings.HasPrefix(k, "APPREG_") && !conditional {
			if _, ok := want[k]; !ok {
				want[k] = ""
			}
		}
	}
	for name := range multiInstanceSettings {
		if _, ok := sample[name]; !ok {
			t.Errorf("local.settings.json.sample does not list %s", name)
		}
		if _, ok := settings[name]; ok {
			t.Errorf("%s is always written: it must be absent unless its parameter is set (TestMultiInstanceSettings)", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		value, ok := settings[name]
		if !ok {
			t.Errorf("app setting %s is not set", name)
			continue
		}
		m := paramRef.FindStringSubmatch(value)
		if m == nil {
			if !variableRef.MatchString(value) {
				t.Errorf("app setting %s = %q is fed by no parameter or variable", name, value)
			}
			continue
		}
		def, hasDefault := params[m[1]].(object)["defaultValue"]
		if want[name] == "" {
			continue
		}
		got := fmt.Sprint(def)
		if b, err := json.Marshal(def); err == nil && strings.HasPrefix(string(b), "[") {
			got = string(b)
		}
		if !hasDefault || got != want[name] {
			t.Errorf("app setting %s comes from parameter %s with default %v, want %q", name, m[1], def, want[name])
		}
		if why, ok := templateDefaults[name]; ok && !strings.Contains(fmt.Sprint(params[m[1]].(object)["metadata"]), "default") {
			t.Errorf("parameter %s differs from the handler's default (%s) without saying so in its description", m[1], why)
		}
	}
	if got := settings["APPREG_ARM_ENDPOINT"]; got != "[variables('armEndpoint')]" ||
		!strings.Contains(fmt.Sprint(tmpl["variables"].(object)["armEndpoint"]), "environment().resourceManager") {
		t.Errorf("APPREG_ARM_ENDPOINT = %q, want the cloud's ARM root (environment().resourceManager) without its trailing slash", got)
	}
	if _, ok := settings["AZURE_CLIENT_ID"]; ok {
		t.Errorf("AZURE_CLIENT_ID is set unconditionally: set but empty, it breaks the system-assigned identity")
	}
	ua := regexp.MustCompile(`if\(variables\('useUserAssigned'\), createArray\(createObject\('name', 'AZURE_CLIENT_ID', 'value', reference\(variables\('identityResourceId'\), '2023-01-31'\)\.clientId\)`)
	if !ua.MatchString(siteSettings) {
		t.Errorf("AZURE_CLIENT_ID is not set for a user-assigned identity: %s", siteSettings)
	}
	for _, name := range []string{"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"} {
		if !strings.Contains(siteSettings, "'"+name+"'") {
			t.Errorf("%s is not set", name)
		}
	}
	if settings["AzureWebJobsStorage__credential"] != "managedidentity" || !strings.Contains(settings["AzureWebJobsStorage__accountName"], "storageAccountName") {
		t.Errorf("host storage is not reached with the managed identity: %v", settings)
	}

	// Flex Consumption takes the runtime from functionAppConfig and runs from its deployment container:
	// these settings are rejected or ignored there, and AzureWebJobsStorage would be a shared-key string.
	raw, err := os.ReadFile("main.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
		"WEBSITE_CONTENTSHARE", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "SCM_DO_BUILD_DURING_DEPLOYMENT"} {
		if strings.Contains(string(raw), name) {
			t.Errorf("main.json sets %s, which Flex Consumption does not use", name)
		}
	}
	if _, ok := settings["AzureWebJobsStorage"]; ok {
		t.Errorf("AzureWebJobsStorage is a connection string: use AzureWebJobsStorage__accountName with the identity")
	}
}

// roleAssignment is one role assignment found in a template, with the principal it goes to as the top
// template computes it.
type roleAssignment struct {
	where, role, scope, principal, principalType string
}

func roleAssignments(t *testing.T) []roleAssignment {
	t.Helper()
	var out []roleAssignment
	for _, s := range allScopes(t) {
		for _, r := range s.template["resources"].([]any) {
			r := r.(object)
			if r["type"] != "Microsoft.Authorization/roleAssignments" {
				continue
			}
			props := r["properties"].(object)
			def := fmt.Sprint(props["roleDefinitionId"])
			ids := guidRE.FindAllString(def, -1)
			if len(ids) != 1 {
				t.Errorf("%s: roleDefinitionId %q does not name one built-in role id", s.name, def)
				continue
			}
			principal := fmt.Sprint(props["principalId"])
			if s.parent != nil {
				if m := paramRef.FindStringSubmatch(principal); m != nil {
					principal = fmt.Sprint(s.parent["properties"].(object)["parameters"].(object)[m[1]].(object)["value"])
				}
			}
			scope, _ := r["scope"].(string)
			pt, _ := props["principalType"].(string)
			out = append(out, roleAssignment{where: s.name, role: ids[0], scope: scope, principal: principal, principalType: pt})
		}
	}
	return out
}

// isFunctionIdentity tells whether a principal expression is the function's managed identity.
func isFunctionIdentity(expr string) bool {
	return expr == principalExpr
}

// isProvisionScriptIdentity tells whether a principal expression is provision.json's deployment script
// identity.
func isProvisionScriptIdentity(expr string) bool {
	return strings.Contains(expr, "parameters('scriptIdentityName')") && strings.HasSuffix(expr, ".principalId]")
}

func TestRoleAssignments(t *testing.T) {
	got := map[string]bool{}
	for _, ra := range roleAssignments(t) {
		name, ok := builtInRoles[ra.role]
		if !ok {
			t.Errorf("%s assigns role %s, which is not in the documented table of built-in roles", ra.where, ra.role)
			continue
		}
		switch {
		case isFunctionIdentity(ra.principal):
			wantScope, allowed := identityRoles[name]
			if !allowed {
				t.Errorf("%s gives the function's identity %s, beyond the roles it needs", ra.where, name)
				continue
			}
			if !strings.Contains(ra.scope, wantScope) {
				t.Errorf("%s gives the function's identity %s at scope %q, want a %s resource only", ra.where, name, ra.scope, wantScope)
			}
			if ra.principalType != "ServicePrincipal" {
				t.Errorf("%s: principalType %q, want ServicePrincipal for a managed identity", ra.where, ra.principalType)
			}
			got[name] = true
		case isProvisionScriptIdentity(ra.principal):
			if name != "Website Contributor" || ra.scope != "[format('Microsoft.Web/sites/{0}', parameters('siteName'))]" {
				t.Errorf("%s gives the provisioning script's identity %s at %q, want Website Contributor on the function app only", ra.where, name, ra.scope)
			}
		case name == "Key Vault Secrets User" && strings.Contains(ra.principal, "secretReaderPrincipalIds"):
			if !strings.Contains(ra.scope, "Microsoft.KeyVault/vaults/") {
				t.Errorf("%s gives a secret reader %s at scope %q, want the vault only", ra.where, name, ra.scope)
			}
		default:
			t.Errorf("%s gives %s to %s: neither the function's identity nor a declared secret reader", ra.where, name, ra.principal)
		}
	}
	for name := range identityRoles {
		if !got[name] {
			t.Errorf("the function's identity never gets %s", name)
		}
	}

	// On a vault with access policies, the identity gets secret get, list, set and recover, nothing else.
	for _, s := range allScopes(t) {
		for _, r := range s.template["resources"].([]any) {
			r := r.(object)
			if r["type"] != "Microsoft.KeyVault/vaults/accessPolicies" {
				continue
			}
			for _, p := range r["properties"].(object)["accessPolicies"].([]any) {
				perms := p.(object)["permissions"].(object)
				if len(perms) != 1 || fmt.Sprint(perms["secrets"]) != "[get list set recover]" {
					t.Errorf("%s: access policy permissions %v, want secrets get, list, set, recover only", s.name, perms)
				}
				if obj := fmt.Sprint(p.(object)["objectId"]); obj != "[parameters('principalId')]" {
					t.Errorf("%s: access policy for %s, want the function's identity (parameters('principalId'))", s.name, obj)
				}
			}
		}
	}
}

func TestReadmeListsTheRoles(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for id, name := range builtInRoles {
		if !strings.Contains(string(b), name) || !strings.Contains(string(b), id) {
			t.Errorf("README.md does not list %s (%s)", name, id)
		}
	}
}

func TestNoSecretDefaultsOrOutputs(t *testing.T) {
	for _, s := range allScopes(t) {
		t.Run(s.name, func(t *testing.T) {
			params, _ := s.template["parameters"].(object)
			for _, name := range slices.Sorted(maps.Keys(params)) {
				p := params[name].(object)
				_, hasDefault := p["defaultValue"]
				typ := strings.ToLower(fmt.Sprint(p["type"]))
				if hasDefault && (strings.HasPrefix(typ, "secure") || sensitiveRE.MatchString(name)) {
					t.Errorf("parameter %s (%s) has a default value: no secret or key may have one", name, typ)
				}
			}
			outputs, _ := s.template["outputs"].(object)
			for _, name := range slices.Sorted(maps.Keys(outputs)) {
				o := outputs[name].(object)
				value := fmt.Sprint(o["value"])
				if listFunction.MatchString(value) {
					t.Errorf("output %s = %s calls a list function: keys and secrets are never outputs", name, value)
				}
				if strings.HasPrefix(strings.ToLower(fmt.Sprint(o["type"])), "secure") || sensitiveRE.MatchString(name) {
					t.Errorf("output %s looks like a secret", name)
				}
			}
			for _, r := range s.template["resources"].([]any) {
				r := r.(object)
				props, _ := r["properties"].(object)
				for _, e := range asSlice(props["environmentVariables"]) {
					e := e.(object)
					if v, ok := e["value"].(string); ok && listFunction.MatchString(v) {
						t.Errorf("%v: environment variable %v takes a key in value: use secureValue", r["name"], e["name"])
					}
				}
				if script, ok := props["scriptContent"].(string); ok && regexp.MustCompile(`(?m)^\s*set\s+-[a-z]*x`).MatchString(script) {
					t.Errorf("%v: the script traces its commands (set -x), which would log the key", r["name"])
				}
				if id, ok := r["identity"]; ok && r["type"] == "Microsoft.Resources/deploymentScripts" &&
					!strings.Contains(fmt.Sprint(id), "parameters('scriptIdentityName')") {
					t.Errorf("%v: the deployment script runs as %v, want only its own identity (scriptIdentityName)", r["name"], id)
				}
			}
		})
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func TestProvisionTemplate(t *testing.T) {
	tmpl := loadJSON(t, "provision.json")
	var script object
	for _, r := range tmpl["resources"].([]any) {
		if r := r.(object); r["type"] == "Microsoft.Resources/deploymentScripts" {
			script = r
		}
	}
	if script == nil {
		t.Fatal("provision.json has no deploymentScripts resource")
	}
	props := script["properties"].(object)
	want, err := os.ReadFile("provision-script.sh")
	if err != nil {
		t.Fatal(err)
	}
	if props["scriptContent"] != string(want) {
		t.Errorf("provision.json does not embed provision-script.sh as it is: embed it again with the jq command in the script's header")
	}
	env := map[string]object{}
	for _, e := range asSlice(props["environmentVariables"]) {
		env[e.(object)["name"].(string)] = e.(object)
	}
	// listKeys in a template expression fails once, for good, while the host has not started: the script
	// reads the key itself, inside its retry loop.
	if _, ok := env["FUNCTION_KEY"]; ok {
		t.Errorf("FUNCTION_KEY is passed in: the script must read the key inside its retry loop")
	}
	raw, err := os.ReadFile("provision.json")
	must(t, err)
	if regexp.MustCompile(`(?i)\[[^"]*listKeys\(`).Match(raw) {
		t.Errorf("provision.json calls listKeys in a template expression")
	}
	if app := fmt.Sprint(env["FUNCTION_APP_ID"]["value"]); app != "[resourceId('Microsoft.Web/sites', parameters('functionAppName'))]" {
		t.Errorf("FUNCTION_APP_ID = %q, want the function app's resource id", app)
	}
	loop := regexp.MustCompile(`(?s)while :; do.*read_key.*curl`)
	if !loop.Match(want) || !strings.Contains(string(want), "/host/default/listkeys?api-version=") {
		t.Errorf("provision-script.sh does not read the key with listkeys inside its retry loop")
	}
	id := fmt.Sprint(script["identity"])
	if !strings.Contains(id, "UserAssigned") || !strings.Contains(id, "parameters('scriptIdentityName')") {
		t.Errorf("deployment script identity = %s, want the dedicated user-assigned identity", id)
	}
	if host := fmt.Sprint(env["FUNCTION_HOST"]["value"]); !strings.Contains(host, ".defaultHostName") {
		t.Errorf("FUNCTION_HOST = %q, want the site's defaultHostName (Flex apps may not be <name>.azurewebsites.net)", host)
	}
	outs := tmpl["outputs"].(object)
	for _, name := range []string{"appId", "tenantId", "secretUri", "adminConsentUrl"} {
		if _, ok := outs[name]; !ok {
			t.Errorf("provision.json has no output %s", name)
		}
	}
}

// resourcesOf returns the resources of a scope's template with the given type.
func resourcesOf(s scope, typ string) []object {
	var out []object
	for _, r := range asSlice(s.template["resources"]) {
		if r := r.(object); r["type"] == typ {
			out = append(out, r)
		}
	}
	return out
}

// TestRoleAssignmentNames: a role assignment's name is guid(scope, principal, role). With the principal in
// the seed, a recreated function app (a new identity) gets new names instead of failing with
// RoleAssignmentUpdateNotPermitted on the old ones; and a name must be computable when the deployment
// starts, so the principal id of an identity created in the same deployment reaches it only as a parameter
// of a nested deployment.
func TestRoleAssignmentNames(t *testing.T) {
	for _, s := range allScopes(t) {
		for _, r := range resourcesOf(s, "Microsoft.Authorization/roleAssignments") {
			name := fmt.Sprint(r["name"])
			props := r["properties"].(object)
			principal := fmt.Sprint(props["principalId"])
			role := guidRE.FindString(fmt.Sprint(props["roleDefinitionId"]))
			t.Run(s.name+" "+role, func(t *testing.T) {
				if strings.Contains(name, "reference(") {
					t.Errorf("name %s uses reference(): a name must be known when the deployment starts", name)
				}
				if !strings.HasPrefix(name, "[guid(") {
					t.Fatalf("name %s is not a guid()", name)
				}
				if p := strings.Trim(principal, "[]"); !strings.Contains(name, p) {
					t.Errorf("name %s is not seeded with the principal %s", name, principal)
				}
				if !strings.Contains(name, "'"+role+"'") {
					t.Errorf("name %s is not seeded with the role id %s", name, role)
				}
				// The scope's resource id is part of the seed too.
				scope := fmt.Sprint(r["scope"])
				m := regexp.MustCompile(`format\('([A-Za-z./]+)/\{0\}`).FindStringSubmatch(scope)
				if m == nil || !strings.Contains(name, "resourceId('"+m[1]) {
					t.Errorf("name %s does not contain the resource id of its scope %s", name, scope)
				}
			})
		}
	}
}

// TestIdentity: a user-assigned identity by default, created by the template unless one is given, and
// used everywhere the function authenticates.
func TestIdentity(t *testing.T) {
	tmpl := loadJSON(t, "main.json")
	params := tmpl["parameters"].(object)
	if got := params["identityType"].(object)["defaultValue"]; got != "UserAssigned" {
		t.Errorf("identityType default = %v, want UserAssigned", got)
	}
	vars := tmpl["variables"].(object)
	if got := fmt.Sprint(vars["identityResourceId"]); !strings.Contains(got, "userAssignedIdentityResourceId") ||
		!strings.Contains(got, "resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', parameters('userAssignedIdentityName'))") {
		t.Errorf("identityResourceId = %s, want the given identity or the one created here", got)
	}
	var created object
	for _, r := range asSlice(tmpl["resources"]) {
		if r := r.(object); r["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities" {
			created = r
		}
	}
	if created == nil || created["condition"] != "[variables('createIdentity')]" || created["name"] != "[parameters('userAssignedIdentityName')]" {
		t.Errorf("no user-assigned identity created on condition createIdentity: %v", created)
	}
	site := siteResource(t, tmpl)
	if id := fmt.Sprint(site["identity"]); !strings.Contains(id, "variables('identityResourceId')") {
		t.Errorf("site identity = %s, want the user-assigned identity", id)
	}
	settings := fmt.Sprint(site["properties"].(object)["siteConfig"].(object)["appSettings"])
	for _, name := range []string{"AZURE_CLIENT_ID", "AzureWebJobsStorage__clientId"} {
		if !strings.Contains(settings, "createObject('name', '"+name+"', 'value', reference(variables('identityResourceId'), '2023-01-31').clientId)") {
			t.Errorf("%s is not the user-assigned identity's client id", name)
		}
	}
	if deps := fmt.Sprint(site["dependsOn"]); !strings.Contains(deps, "userAssignedIdentities") {
		t.Errorf("the site does not depend on the identity it uses: %s", deps)
	}
	// Every principalId the function's roles go to is the one expression.
	for _, s := range allScopes(t) {
		if s.parent == nil {
			continue
		}
		if p, ok := s.parent["properties"].(object)["parameters"].(object)["principalId"].(object); ok &&
			strings.HasPrefix(s.name, "main.json") && p["value"] != principalExpr {
			t.Errorf("%s: principalId = %v, want the function's identity", s.name, p["value"])
		}
	}
	if got := tmpl["outputs"].(object)["functionAppPrincipalId"].(object)["value"]; got != principalExpr {
		t.Errorf("functionAppPrincipalId output = %v", got)
	}
}

// vaultDeployment returns the nested deployment that gives the function access to its vault.
func vaultDeployment(t *testing.T) scope {
	t.Helper()
	for _, s := range allScopes(t) {
		if s.parent != nil && strings.Contains(fmt.Sprint(s.parent["name"]), "appreg-keyvault") {
			return s
		}
	}
	t.Fatal("main.json has no appreg-keyvault nested deployment")
	return scope{}
}

// TestKeyVaultAccess: the vault's permission model is read from the vault, not asked for; an RBAC vault gets
// Key Vault Secrets Officer on the vault or on the one secret; an access-policy vault gets the policy.
func TestKeyVaultAccess(t *testing.T) {
	tmpl := loadJSON(t, "main.json")
	for name := range tmpl["parameters"].(object) {
		if strings.Contains(strings.ToLower(name), "permissionmodel") || strings.Contains(strings.ToLower(name), "rbac") {
			t.Errorf("parameter %s asks for the vault's permission model: read it from the vault", name)
		}
	}
	kv := vaultDeployment(t)
	passed := kv.parent["properties"].(object)["parameters"].(object)
	rbac := fmt.Sprint(passed["rbac"].(object)["value"])
	if !strings.Contains(rbac, "reference(variables('vaultResourceId'), '2023-07-01').enableRbacAuthorization") ||
		!strings.Contains(rbac, "contains(reference(variables('vaultResourceId'), '2023-07-01'), 'enableRbacAuthorization')") {
		t.Errorf("rbac = %s, want the vault's properties.enableRbacAuthorization (false when absent)", rbac)
	}
	if got := fmt.Sprint(kv.parent["resourceGroup"]); got != "[variables('vaultResourceGroup')]" {
		t.Errorf("the vault deployment goes to %s, want the vault's resource group", got)
	}
	wantRG := fmt.Sprint(tmpl["variables"].(object)["vaultResourceGroup"])
	if !strings.Contains(wantRG, "existingKeyVaultResourceGroup") || !strings.Contains(wantRG, "resourceGroup().name") {
		t.Errorf("vaultResourceGroup = %s, want the existing vault's group or this one", wantRG)
	}
	conds := map[string]string{}
	for _, r := range asSlice(kv.template["resources"]) {
		r := r.(object)
		conds[fmt.Sprint(r["type"], " ", r["scope"])] = fmt.Sprint(r["condition"])
	}
	for what, want := range map[string]string{
		"Microsoft.Authorization/roleAssignments [format('Microsoft.KeyVault/vaults/{0}', parameters('vaultName'))]":                                       "[and(parameters('rbac'), equals(parameters('roleScope'), 'vault'))]",
		"Microsoft.Authorization/roleAssignments [format('Microsoft.KeyVault/vaults/{0}/secrets/{1}', parameters('vaultName'), parameters('secretName'))]": "[and(parameters('rbac'), equals(parameters('roleScope'), 'secret'))]",
		"Microsoft.KeyVault/vaults/accessPolicies <nil>": "[not(parameters('rbac'))]",
	} {
		if got, ok := conds[what]; !ok || got != want {
			t.Errorf("%s: condition %q, want %q (have %v)", what, got, want, conds)
		}
	}
	scope := tmpl["parameters"].(object)["keyVaultRoleScope"].(object)
	if scope["defaultValue"] != "vault" || fmt.Sprint(scope["allowedValues"]) != "[vault secret]" {
		t.Errorf("keyVaultRoleScope = %v, want vault (default) or secret", scope)
	}
}

// TestKeyVaultName: the default name of a new vault is salted, and a soft-deleted one can be recovered.
func TestKeyVaultName(t *testing.T) {
	tmpl := loadJSON(t, "main.json")
	params := tmpl["parameters"].(object)
	def := fmt.Sprint(params["keyVaultName"].(object)["defaultValue"])
	if !strings.Contains(def, "uniqueString(resourceGroup().id, parameters('appName'), parameters('keyVaultNameSalt'))") {
		t.Errorf("keyVaultName default = %s, want it salted with keyVaultNameSalt", def)
	}
	if strings.Contains(def, "utcNow") || strings.Contains(def, "newGuid") {
		t.Errorf("keyVaultName default = %s changes with every deployment", def)
	}
	if params["keyVaultNameSalt"].(object)["defaultValue"] != "" || params["recoverKeyVault"].(object)["defaultValue"] != false {
		t.Errorf("keyVaultNameSalt or recoverKeyVault do not default to off")
	}
	for _, r := range asSlice(tmpl["resources"]) {
		if r := r.(object); r["type"] == "Microsoft.KeyVault/vaults" {
			if got := r["properties"].(object)["createMode"]; got != "[if(parameters('recoverKeyVault'), 'recover', 'default')]" {
				t.Errorf("vault createMode = %v", got)
			}
		}
	}
}

func TestFlexDefaults(t *testing.T) {
	params := loadJSON(t, "main.json")["parameters"].(object)
	if got := params["instanceMemoryMB"].(object)["defaultValue"]; got != float64(2048) {
		t.Errorf("instanceMemoryMB default = %v, want 2048 (512 is refused in some regions)", got)
	}
	consent := params["consentMode"].(object)
	if fmt.Sprint(consent["allowedValues"]) != "[admin grant]" {
		t.Errorf("consentMode allows %v, want admin and grant", consent["allowedValues"])
	}
}

// TestHostJSONLogging: the handler's stdout reaches Application Insights as category Host.Function.Console at
// Information; with logLevel.default Warning and no rule for that category every line would be dropped.
func TestHostJSONLogging(t *testing.T) {
	host := loadJSON(t, "../host.json")
	logging := host["logging"].(object)
	levels := logging["logLevel"].(object)
	if got := levels["Host.Function.Console"]; got != "Information" {
		t.Errorf("logLevel Host.Function.Console = %v, want Information", got)
	}
	sampling := fmt.Sprint(logging["applicationInsights"].(object)["samplingSettings"].(object)["excludedTypes"])
	if !strings.Contains(sampling, "Trace") {
		t.Errorf("sampling excludes %q: the handler's lines (traces) would be sampled away, want Trace excluded", sampling)
	}
}

// TestReadmeGuides: infra/README.md carries the order, the queries and the failure guide it promises.
func TestReadmeGuides(t *testing.T) {
	b, err := os.ReadFile("README.md")
	must(t, err)
	readme := string(b)
	for _, want := range []string{
		"Host.Function.Console", "invocationId", "client secret stored", "BlobUploadFailedException",
		"ServiceUnavailable", "24 hours", "enableRbacAuthorization", "keyVaultNameSalt", "recoverKeyVault",
		"AppRoleAssignment.ReadWrite.All", "--mode admin", "--mode grant", "adminConsentUrl", "AZURE_CLIENT_ID",
		"Website Contributor", "2048",
		// Split tenancy and many instances.
		"APPREG_INSTANCES", "APPREG_FEDERATED_APP_ID", "instanceKeyVaultIds", "federated-app.sh", "AzureADMultipleOrgs",
		"api://AzureADTokenExchange", "/adminconsent?client_id=<APPREG_FEDERATED_APP_ID>", "AADSTS700016",
		"at most 20", "Revoking or narrowing a consent", "az ad sp delete", "Privileged Role Administrator or Global Administrator",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not mention %q", want)
		}
	}
	if !regexp.MustCompile("(?s)```kusto.*traces.*```").MatchString(readme) {
		t.Errorf("README.md has no Application Insights (kusto) query")
	}
}

// TestMultiInstanceSettings: instances (an array) becomes APPREG_INSTANCES as JSON and federatedAppId becomes
// APPREG_FEDERATED_APP_ID, each only when not empty, so that a deployment without them behaves as before.
func TestMultiInstanceSettings(t *testing.T) {
	tmpl := loadJSON(t, "main.json")
	params := tmpl["parameters"].(object)
	for _, tc := range []struct {
		param, typ string
		def        any
		mentions   string
	}{
		{"instances", "array", []any{}, "APPREG_INSTANCES"},
		{"federatedAppId", "string", "", "APPREG_FEDERATED_APP_ID"},
		{"instanceKeyVaultIds", "array", []any{}, "Key Vault Secrets Officer"},
	} {
		p, ok := params[tc.param].(object)
		if !ok {
			t.Errorf("main.json has no parameter %s", tc.param)
			continue
		}
		if p["type"] != tc.typ || fmt.Sprint(p["defaultValue"]) != fmt.Sprint(tc.def) {
			t.Errorf("parameter %s: type %v default %#v, want %s default %#v", tc.param, p["type"], p["defaultValue"], tc.typ, tc.def)
		}
		if desc := fmt.Sprint(p["metadata"]); !strings.Contains(desc, tc.mentions) {
			t.Errorf("parameter %s: the description does not mention %s: %s", tc.param, tc.mentions, desc)
		}
	}
	for _, key := range []string{"name", "tenantId", "displayName", "uniqueName", "permissionLevel", "keyVaultUrl", "secretName", "consent", "refreshSiteIds"} {
		if desc := fmt.Sprint(params["instances"].(object)["metadata"]); !strings.Contains(desc, key) {
			t.Errorf("the instances parameter does not document the key %s", key)
		}
	}

	vars := tmpl["variables"].(object)
	got, _ := vars["multiInstanceSettings"].(string)
	for setting, want := range map[string]string{
		"APPREG_INSTANCES":        "if(empty(parameters('instances')), createArray(), createArray(createObject('name', 'APPREG_INSTANCES', 'value', string(parameters('instances')))))",
		"APPREG_FEDERATED_APP_ID": "if(empty(parameters('federatedAppId')), createArray(), createArray(createObject('name', 'APPREG_FEDERATED_APP_ID', 'value', parameters('federatedAppId'))))",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("%s is not written exactly when its parameter is not empty: multiInstanceSettings = %s, want it to contain %s", setting, got, want)
		}
	}
	if !strings.HasPrefix(got, "[concat(") {
		t.Errorf("multiInstanceSettings = %s, want a concat of the two conditional settings", got)
	}
	site := fmt.Sprint(siteResource(t, tmpl)["properties"].(object)["siteConfig"].(object)["appSettings"])
	if !strings.Contains(site, "variables('appSettings'), variables('multiInstanceSettings')") {
		t.Errorf("the site's appSettings do not include variables('multiInstanceSettings'): %s", site)
	}
	if out := fmt.Sprint(tmpl["outputs"].(object)["federatedCredentialIssuer"]); !strings.Contains(out, "variables('authorityHost'), subscription().tenantId") ||
		!strings.Contains(out, "/v2.0") {
		t.Errorf("federatedCredentialIssuer output = %s, want {authority}/{the identity's tenant}/v2.0", out)
	}
}

// TestInstanceVaultAccess: each vault of instanceKeyVaultIds gets the same access as the default vault, by
// the vault's own permission model, in the vault's subscription and resource group.
func TestInstanceVaultAccess(t *testing.T) {
	var kv scope
	for _, s := range allScopes(t) {
		if s.parent != nil && strings.Contains(fmt.Sprint(s.parent["name"]), "appreg-instance-kv") {
			kv = s
		}
	}
	if kv.parent == nil {
		t.Fatal("main.json has no appreg-instance-kv nested deployment")
	}
	id := "parameters('instanceKeyVaultIds')[copyIndex()]"
	for field, want := range map[string]string{
		"subscriptionId": "[split(" + id + ", '/')[2]]",
		"resourceGroup":  "[split(" + id + ", '/')[4]]",
	} {
		if got := fmt.Sprint(kv.parent[field]); got != want {
			t.Errorf("%s = %s, want %s", field, got, want)
		}
	}
	if got := fmt.Sprint(kv.parent["copy"].(object)["count"]); got != "[length(parameters('instanceKeyVaultIds'))]" {
		t.Errorf("copy count = %s, want one per instanceKeyVaultIds", got)
	}
	passed := kv.parent["properties"].(object)["parameters"].(object)
	if got := fmt.Sprint(passed["vaultName"].(object)["value"]); got != "[split("+id+", '/')[8]]" {
		t.Errorf("vaultName = %s", got)
	}
	rbac := fmt.Sprint(passed["rbac"].(object)["value"])
	if !strings.Contains(rbac, "reference("+id+", '2023-07-01').enableRbacAuthorization") || !strings.Contains(rbac, "contains(reference("+id+", '2023-07-01'), 'enableRbacAuthorization')") {
		t.Errorf("rbac = %s, want the vault's properties.enableRbacAuthorization (false when absent)", rbac)
	}
	conds := map[string]string{}
	for _, r := range asSlice(kv.template["resources"]) {
		r := r.(object)
		conds[fmt.Sprint(r["type"], " ", r["scope"])] = fmt.Sprint(r["condition"])
	}
	want := map[string]string{
		"Microsoft.Authorization/roleAssignments [format('Microsoft.KeyVault/vaults/{0}', parameters('vaultName'))]": "[parameters('rbac')]",
		"Microsoft.KeyVault/vaults/accessPolicies <nil>":                                                             "[not(parameters('rbac'))]",
	}
	if fmt.Sprint(conds) != fmt.Sprint(want) {
		t.Errorf("resources by condition = %v, want %v", conds, want)
	}
}

// instanceRE is the contract's rule for an instance name; guidText a tenant id.
var (
	instanceRE = regexp.MustCompile(`^[a-z0-9-]{1,40}$`)
	guidText   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// TestMSPExample: the MSP parameters example is valid by the contract's rules for APPREG_INSTANCES, and every
// vault its instances name, other than the default one, is in instanceKeyVaultIds.
func TestMSPExample(t *testing.T) {
	params := loadJSON(t, "main.parameters.msp.example.json")["parameters"].(object)
	value := func(name string) any { return params[name].(object)["value"] }
	keys := map[string]bool{"name": true, "tenantId": true, "displayName": true, "uniqueName": true, "permissionLevel": true,
		"keyVaultUrl": true, "secretName": true, "consent": true, "refreshSiteIds": true}
	defaultVault := fmt.Sprintf("https://%s.vault.azure.net/", value("existingKeyVaultName"))
	granted := map[string]bool{}
	for _, id := range asSlice(value("instanceKeyVaultIds")) {
		parts := strings.Split(id.(string), "/")
		if len(parts) != 9 || parts[6] != "Microsoft.KeyVault" || parts[7] != "vaults" {
			t.Errorf("instanceKeyVaultIds: %s is not a vault's resource id", id)
			continue
		}
		granted[parts[8]] = true
	}
	names, apps, secrets := map[string]bool{}, map[string]bool{}, map[string]bool{}
	others := 0
	for i, e := range asSlice(value("instances")) {
		in := e.(object)
		for k := range in {
			if !keys[k] {
				t.Errorf("instance %d: key %q is not one of the contract's (the handler refuses unknown keys)", i, k)
			}
		}
		name, _ := in["name"].(string)
		if !instanceRE.MatchString(name) || names[name] {
			t.Errorf("instance %d: name %q is not a unique name of a-z, 0-9, '-'", i, name)
		}
		names[name] = true
		tenant, _ := in["tenantId"].(string)
		if tenant != "" {
			if !guidText.MatchString(tenant) {
				t.Errorf("instance %s: tenantId %q is not a GUID", name, tenant)
			}
			others++
		}
		if c, ok := in["consent"]; ok && c != "admin" && c != "grant" {
			t.Errorf("instance %s: consent %v", name, c)
		}
		unique, _ := in["uniqueName"].(string)
		if unique == "" {
			unique = "scepman"
		}
		if apps[tenant+"/"+unique] {
			t.Errorf("instance %s: another instance has uniqueName %s in the same tenant", name, unique)
		}
		apps[tenant+"/"+unique] = true
		vault, _ := in["keyVaultUrl"].(string)
		if vault == "" {
			vault = defaultVault
		}
		secret, _ := in["secretName"].(string)
		if secrets[vault+secret] {
			t.Errorf("instance %s: another instance stores its secret in %s under the same name", name, vault)
		}
		secrets[vault+secret] = true
		if vault != defaultVault {
			host := strings.TrimSuffix(strings.TrimPrefix(vault, "https://"), ".vault.azure.net/")
			if !granted[host] {
				t.Errorf("instance %s: vault %s is not in instanceKeyVaultIds, so the identity could not use it", name, host)
			}
		}
	}
	if others == 0 || !guidText.MatchString(fmt.Sprint(value("federatedAppId"))) {
		t.Errorf("the MSP example should show an instance in another tenant with federatedAppId (got %d, %v)", others, value("federatedAppId"))
	}
}

// TestReadmeForMSPs: the project README has the MSP section and the two settings of the contract.
func TestReadmeForMSPs(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	must(t, err)
	readme := string(b)
	for _, want := range []string{
		"## For MSPs: split tenancy and many instances", "| `APPREG_INSTANCES` | unset |", "| `APPREG_FEDERATED_APP_ID` | unset |",
		"infra/federated-app.sh", "/adminconsent?client_id=<APPREG_FEDERATED_APP_ID>", "20 federated credentials",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not contain %q", want)
		}
	}
	if deploy, msp := strings.Index(readme, "## Deploy"), strings.Index(readme, "## For MSPs"); deploy < 0 || msp < deploy {
		t.Errorf("the MSP section does not follow the Deploy section")
	}
}
