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
}

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
	for _, f := range append(templates, "main.parameters.example.json") {
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

func TestParametersExample(t *testing.T) {
	main := loadJSON(t, "main.json")["parameters"].(object)
	example := loadJSON(t, "main.parameters.example.json")["parameters"].(object)
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
		if strings.HasPrefix(k, "APPREG_") {
			if _, ok := want[k]; !ok {
				want[k] = ""
			}
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
			t.Errorf("app setting %s comes from parameter %s with default %v, want the contract's %q", name, m[1], def, want[name])
		}
	}
	if _, ok := settings["AZURE_CLIENT_ID"]; ok {
		t.Errorf("AZURE_CLIENT_ID is set unconditionally: set but empty, it breaks the system-assigned identity")
	}
	ua := regexp.MustCompile(`if\(variables\('useUserAssigned'\), createArray\(createObject\('name', 'AZURE_CLIENT_ID'`)
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
	return strings.Contains(expr, "identity.principalId") && strings.Contains(expr, "userAssignedIdentityResourceId")
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

	// On an existing vault with access policies, the identity gets secret get, list and set, nothing else.
	for _, s := range allScopes(t) {
		for _, r := range s.template["resources"].([]any) {
			r := r.(object)
			if r["type"] != "Microsoft.KeyVault/vaults/accessPolicies" {
				continue
			}
			for _, p := range r["properties"].(object)["accessPolicies"].([]any) {
				perms := p.(object)["permissions"].(object)
				if len(perms) != 1 || fmt.Sprint(perms["secrets"]) != "[get list set]" {
					t.Errorf("%s: access policy permissions %v, want secrets get, list, set only", s.name, perms)
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
				if _, ok := r["identity"]; ok && r["type"] == "Microsoft.Resources/deploymentScripts" {
					t.Errorf("%v: the deployment script needs no identity and gets none", r["name"])
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
	key := fmt.Sprint(env["FUNCTION_KEY"]["secureValue"])
	if !strings.Contains(key, "listKeys(resourceId('Microsoft.Web/sites/host', parameters('functionAppName'), 'default')") ||
		!strings.HasSuffix(key, ".functionKeys.default]") {
		t.Errorf("FUNCTION_KEY = %q, want the host's default function key from listKeys as a secure value", key)
	}
	if host := fmt.Sprint(env["FUNCTION_HOST"]["value"]); !strings.Contains(host, ".defaultHostName") {
		t.Errorf("FUNCTION_HOST = %q, want the site's defaultHostName (Flex apps may not be <name>.azurewebsites.net)", host)
	}
	outs := tmpl["outputs"].(object)
	for _, name := range []string{"appId", "tenantId", "secretUri"} {
		if _, ok := outs[name]; !ok {
			t.Errorf("provision.json has no output %s", name)
		}
	}
}
