package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	secretNameRE    = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	secretVersionRE = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
)

// Key Vault actions and the roles that grant them.
var vaultActionRoles = map[string][]string{
	"getSecret":    {VaultRoleSecretsOfficer, VaultRoleAdministrator, VaultRoleSecretsUser},
	"setSecret":    {VaultRoleSecretsOfficer, VaultRoleAdministrator},
	"readMetadata": {VaultRoleSecretsOfficer, VaultRoleAdministrator, VaultRoleSecretsUser, VaultRoleReader},
	"delete":       {VaultRoleSecretsOfficer, VaultRoleAdministrator},
	"readDeleted":  {VaultRoleSecretsOfficer, VaultRoleAdministrator},
	"recover":      {VaultRoleSecretsOfficer, VaultRoleAdministrator},
}

// vaultDataActions are the RBAC data actions of the actions whose name is not secrets/<action>/action.
var vaultDataActions = map[string]string{
	"delete":      "Microsoft.KeyVault/vaults/secrets/delete",
	"readDeleted": "Microsoft.KeyVault/vaults/deletedsecrets/read",
}

const maxKeyVaultResults = 25

// vaultBase is the vault URL without the trailing slash.
func (t *Tenant) vaultBase() string { return "https://" + t.vaultHost }

// vaultRoute maps a Key Vault request to its operation. Every handler first completes the recoveries
// whose delay has passed.
func (t *Tenant) vaultRoute(req *request) (route, bool) {
	rt, ok := t.vaultRouteOf(req)
	if ok {
		h := rt.handle
		rt.handle = func(r *request) answer {
			t.settleRecoveries()
			return h(r)
		}
	}
	return rt, ok
}

// vaultRouteOf maps a Key Vault request to its operation.
func (t *Tenant) vaultRouteOf(req *request) (route, bool) {
	segs := req.segs
	if len(segs) > 0 && strings.EqualFold(segs[0], "deletedsecrets") {
		return t.deletedSecretRoute(req)
	}
	if len(segs) == 0 || !strings.EqualFold(segs[0], "secrets") {
		return route{}, false
	}
	m := req.method
	get := func(op string, h func(*request) answer) (route, bool) {
		if m != http.MethodGet {
			return route{}, false
		}
		return route{op: op, handle: h}, true
	}
	switch {
	case len(segs) == 1 || (len(segs) == 2 && segs[1] == ""):
		return get(OpListSecrets, t.listSecrets)
	case len(segs) == 2 && m == http.MethodPut:
		name := segs[1]
		return route{op: OpSetSecret, write: true, handle: func(r *request) answer { return t.setSecret(r, name) }}, true
	case len(segs) == 2 && m == http.MethodDelete:
		name := segs[1]
		return route{op: OpDeleteSecret, write: true, handle: func(r *request) answer { return t.deleteSecret(r, name) }}, true
	case len(segs) == 2 || (len(segs) == 3 && segs[2] == ""):
		name := segs[1]
		return get(OpGetSecret, func(r *request) answer { return t.getSecret(r, name, "") })
	case (len(segs) == 3 || (len(segs) == 4 && segs[3] == "")) && strings.EqualFold(segs[2], "versions"):
		name := segs[1]
		return get(OpListSecretVersions, func(r *request) answer { return t.listSecretVersions(r, name) })
	case len(segs) == 3 && m == http.MethodPatch:
		name, version := segs[1], segs[2]
		return route{op: OpUpdateSecretProperties, write: true, handle: func(r *request) answer { return t.updateSecret(r, name, version) }}, true
	case len(segs) == 3:
		name, version := segs[1], segs[2]
		return get(OpGetSecret, func(r *request) answer { return t.getSecret(r, name, version) })
	}
	return route{}, false
}

// vaultChallenge is Key Vault's 401 with the challenge the SDK answers.
func (t *Tenant) vaultChallenge(req *request, message string) *answer {
	ans := t.errorAnswer(req, http.StatusUnauthorized, "Unauthorized", message)
	ans.header.Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://%s/%s", resource="%s"`, LoginHost, t.tenantID, AudienceVault))
	return &ans
}

// vaultAuth checks api-version and the bearer token (answering the challenge).
func (t *Tenant) vaultAuth(req *request) *answer {
	v := req.query.Get("api-version")
	if v == "" {
		ans := t.errorAnswer(req, http.StatusBadRequest, "BadParameter", "The 'api-version' query parameter is missing.")
		return &ans
	}
	t.mu.Lock()
	t.stats.APIVersions[ServiceKeyVault+" "+v]++
	t.mu.Unlock()
	raw := bearerToken(req.header.Get("Authorization"))
	if raw == "" {
		return t.vaultChallenge(req, "AKV10000: Request is missing a Bearer or PoP token.")
	}
	c, err := verifyToken(raw, t.tenantID, AudienceVault, time.Now())
	if err != nil {
		t.logf("emulator: key vault rejects the token of %s: %v", req.target(), err)
		switch {
		case errors.Is(err, errTokenAudience):
			return t.vaultChallenge(req, "AKV10022: Invalid audience. Expected "+AudienceVault+".")
		case errors.Is(err, errTokenExpired):
			return t.vaultChallenge(req, "AKV10021: Token is expired.")
		case errors.Is(err, errTokenIssuer):
			return t.vaultChallenge(req, "AKV10032: Invalid issuer.")
		}
		return t.vaultChallenge(req, "AKV10011: Token signature validation failed.")
	}
	req.claims = c
	t.mu.Lock()
	firewall := t.vaultRealism.firewall
	t.mu.Unlock()
	if firewall {
		return t.vaultFirewallAnswer(c)
	}
	return nil
}

// The handlers below run under t.mu.

// vaultAllowed checks the identity's RBAC roles for an action.
func (t *Tenant) vaultAllowed(req *request, action, resource string) *answer {
	for _, have := range t.vaultRoles {
		for _, r := range vaultActionRoles[action] {
			if strings.EqualFold(have, r) {
				return nil
			}
		}
	}
	c := req.claims
	dataAction, ok := vaultDataActions[action]
	if !ok {
		dataAction = "Microsoft.KeyVault/vaults/secrets/" + action + "/action"
	}
	msg := "Caller is not authorized to perform action on resource.\r\n" +
		"If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n" +
		fmt.Sprintf("Caller: appid=%s;oid=%s;iss=%s\r\n", c.AppID, c.Oid, c.Iss) +
		fmt.Sprintf("Action: '%s'\r\n", dataAction) +
		fmt.Sprintf("Resource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/emulated/providers/microsoft.keyvault/vaults/%s%s'\r\n", t.vaultName, resource) +
		"Assignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\n" +
		fmt.Sprintf("Vault: %s;location=westeurope\r\n", t.vaultName)
	ans := jsonAnswer(http.StatusForbidden, map[string]any{"error": map[string]any{
		"code": "Forbidden", "message": msg, "innererror": map[string]any{"code": "ForbiddenByRbac"},
	}}, "application/json; charset=utf-8")
	return &ans
}

func (t *Tenant) badSecretName(req *request, name string) *answer {
	if secretNameRE.MatchString(name) {
		return nil
	}
	ans := t.errorAnswer(req, http.StatusBadRequest, "BadParameter", "The request URI contains an invalid name: "+name)
	return &ans
}

func (t *Tenant) secretNotFound(req *request, id string) answer {
	return t.errorAnswer(req, http.StatusNotFound, "SecretNotFound", fmt.Sprintf(
		"A secret with (name/id) %s was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", id))
}

func (t *Tenant) vaultJSON(status int, v map[string]any) answer {
	return jsonAnswer(status, v, "application/json; charset=utf-8")
}

// secretJSON is a secret bundle (withValue) or secret properties.
func (t *Tenant) secretJSON(name string, v SecretVersion, withValue bool) map[string]any {
	attrs := map[string]any{
		"enabled":         v.Enabled,
		"created":         v.Created.Unix(),
		"updated":         v.Updated.Unix(),
		"recoveryLevel":   "Recoverable+Purgeable",
		"recoverableDays": 90,
	}
	if !v.NotBefore.IsZero() {
		attrs["nbf"] = v.NotBefore.Unix()
	}
	if !v.Expires.IsZero() {
		attrs["exp"] = v.Expires.Unix()
	}
	out := map[string]any{"id": t.vaultBase() + "/secrets/" + name + "/" + v.Version, "attributes": attrs}
	if len(v.Tags) > 0 {
		out["tags"] = maps.Clone(v.Tags)
	}
	if v.ContentType != "" {
		out["contentType"] = v.ContentType
	}
	if withValue {
		out["value"] = v.Value
	}
	return out
}

// secretWrite is a parsed set or update body.
type secretWrite struct {
	value       *string
	contentType *string
	enabled     *bool
	nbf, exp    *time.Time
	tags        map[string]string
	hasTags     bool
}

// apply sets the attributes the write names on v; those it leaves out keep their value.
func (w secretWrite) apply(v *SecretVersion) {
	if w.contentType != nil {
		v.ContentType = *w.contentType
	}
	if w.enabled != nil {
		v.Enabled = *w.enabled
	}
	if w.nbf != nil {
		v.NotBefore = *w.nbf
	}
	if w.exp != nil {
		v.Expires = *w.exp
	}
}

func (t *Tenant) parseSecretWrite(req *request, allowValue bool) (secretWrite, *answer) {
	var w secretWrite
	fail := func(msg string) (secretWrite, *answer) {
		ans := t.errorAnswer(req, http.StatusBadRequest, "BadParameter", msg)
		return w, &ans
	}
	obj, err := parseObject(req.body)
	if err != nil {
		return fail("The request body is not valid JSON: " + err.Error())
	}
	for k, raw := range obj {
		switch {
		case k == "value" && allowValue:
			if json.Unmarshal(raw, &w.value) != nil || w.value == nil {
				return fail("Property 'value' must be a string.")
			}
		case k == "contentType":
			if json.Unmarshal(raw, &w.contentType) != nil {
				return fail("Property 'contentType' must be a string.")
			}
		case k == "tags":
			if json.Unmarshal(raw, &w.tags) != nil {
				return fail("Property 'tags' must be an object of strings.")
			}
			if len(w.tags) > 15 {
				return fail("A secret can have at most 15 tags.")
			}
			w.hasTags = true
		case k == "attributes":
			var attrs map[string]json.RawMessage
			if json.Unmarshal(raw, &attrs) != nil {
				return fail("Property 'attributes' must be an object.")
			}
			for ak, av := range attrs {
				switch ak {
				case "enabled":
					if json.Unmarshal(av, &w.enabled) != nil {
						return fail("Attribute 'enabled' must be a boolean.")
					}
				case "nbf", "exp":
					var n *int64
					if json.Unmarshal(av, &n) != nil {
						return fail("Attribute '" + ak + "' must be an integer (Unix seconds).")
					}
					if n != nil {
						tm := time.Unix(*n, 0).UTC()
						if ak == "nbf" {
							w.nbf = &tm
						} else {
							w.exp = &tm
						}
					}
				case "created", "updated", "recoveryLevel", "recoverableDays":
					// read-only, ignored
				default:
					t.unknown = append(t.unknown, fmt.Sprintf("%s: secret attribute %q is not supported by the emulator", req.target(), ak))
					t.logf("EMULATOR: UNSUPPORTED (answered 400): %s: secret attribute %q", req.target(), ak)
					return fail("Unknown attribute '" + ak + "'.")
				}
			}
		default:
			t.unknown = append(t.unknown, fmt.Sprintf("%s: secret property %q is not supported by the emulator", req.target(), k))
			t.logf("EMULATOR: UNSUPPORTED (answered 400): %s: secret property %q", req.target(), k)
			return fail("Unknown property '" + k + "'.")
		}
	}
	if allowValue && w.value == nil {
		return fail("Property 'value' is required.")
	}
	return w, nil
}

func (t *Tenant) setSecret(req *request, name string) answer {
	if ans := t.badSecretName(req, name); ans != nil {
		return *ans
	}
	if ans := t.vaultAllowed(req, "setSecret", "/secrets/"+name); ans != nil {
		return *ans
	}
	if ans := t.deletedConflict(name); ans != nil {
		return *ans
	}
	w, bad := t.parseSecretWrite(req, true)
	if bad != nil {
		return *bad
	}
	now := t.now()
	v := SecretVersion{Version: newSecretVersion(), Value: *w.value, Enabled: true, Created: now, Updated: now, Tags: w.tags}
	w.apply(&v)
	sec := t.state.Secret(name)
	if sec == nil {
		t.state.Secrets = append(t.state.Secrets, Secret{Name: name})
		sec = &t.state.Secrets[len(t.state.Secrets)-1]
	}
	sec.Versions = append(sec.Versions, v)
	t.issue(v.Value)
	req.applied = true
	return t.vaultJSON(http.StatusOK, t.secretJSON(sec.Name, v, true))
}

func (t *Tenant) getSecret(req *request, name, version string) answer {
	if ans := t.badSecretName(req, name); ans != nil {
		return *ans
	}
	if ans := t.vaultAllowed(req, "getSecret", "/secrets/"+name); ans != nil {
		return *ans
	}
	sec := t.state.Secret(name)
	var v *SecretVersion
	id := name
	if version == "" {
		v = sec.Current()
	} else {
		id = name + "/" + version
		if secretVersionRE.MatchString(version) {
			v = sec.Version(version)
		}
	}
	if v == nil {
		return t.secretNotFound(req, id)
	}
	if !v.Enabled {
		ans := jsonAnswer(http.StatusForbidden, map[string]any{"error": map[string]any{
			"code": "Forbidden", "message": "Operation get is not allowed on a disabled secret.",
			"innererror": map[string]any{"code": "SecretDisabled"},
		}}, "application/json; charset=utf-8")
		return ans
	}
	return t.vaultJSON(http.StatusOK, t.secretJSON(sec.Name, *v, true))
}

func (t *Tenant) updateSecret(req *request, name, version string) answer {
	if ans := t.badSecretName(req, name); ans != nil {
		return *ans
	}
	if ans := t.vaultAllowed(req, "setSecret", "/secrets/"+name); ans != nil {
		return *ans
	}
	w, bad := t.parseSecretWrite(req, false)
	if bad != nil {
		return *bad
	}
	sec := t.state.Secret(name)
	var v *SecretVersion
	if secretVersionRE.MatchString(version) {
		v = sec.Version(version)
	}
	if v == nil {
		return t.secretNotFound(req, name+"/"+version)
	}
	w.apply(v)
	if w.hasTags {
		v.Tags = w.tags
	}
	v.Updated = t.now()
	req.applied = true
	return t.vaultJSON(http.StatusOK, t.secretJSON(sec.Name, *v, false))
}

// vaultPage answers one page of a list with an absolute nextLink carrying api-version.
func (t *Tenant) vaultPage(req *request, items []map[string]any) answer {
	size := t.pageSize
	if s := req.query.Get("maxresults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxKeyVaultResults {
			return t.errorAnswer(req, http.StatusBadRequest, "BadParameter", "Invalid maxresults: it must be between 1 and 25.")
		}
		size = min(size, n)
	}
	offset := 0
	if tok := req.query.Get("$skiptoken"); tok != "" {
		n, err := decodeSkipToken(tok)
		if err != nil {
			return t.errorAnswer(req, http.StatusBadRequest, "BadParameter", "Invalid $skiptoken.")
		}
		offset = min(n, len(items))
	}
	end := min(offset+size, len(items))
	body := map[string]any{"value": nonNil(items[offset:end]), "nextLink": nil}
	if end < len(items) {
		link := t.vaultBase() + req.path + "?api-version=" + req.query.Get("api-version") +
			"&$skiptoken=" + encodeSkipToken(end)
		if s := req.query.Get("maxresults"); s != "" {
			link += "&maxresults=" + s
		}
		body["nextLink"] = link
	}
	return t.vaultJSON(http.StatusOK, body)
}

func (t *Tenant) listSecretVersions(req *request, name string) answer {
	if ans := t.badSecretName(req, name); ans != nil {
		return *ans
	}
	if ans := t.vaultAllowed(req, "readMetadata", "/secrets/"+name); ans != nil {
		return *ans
	}
	if t.deletedSecret(name) != nil {
		return t.secretNotFound(req, name)
	}
	var items []map[string]any
	if sec := t.state.Secret(name); sec != nil {
		for _, v := range sec.Versions {
			items = append(items, t.secretJSON(sec.Name, v, false))
		}
	}
	return t.vaultPage(req, items)
}

func (t *Tenant) listSecrets(req *request) answer {
	if ans := t.vaultAllowed(req, "readMetadata", ""); ans != nil {
		return *ans
	}
	secrets := slices.Clone(t.state.Secrets)
	var items []map[string]any
	for _, s := range secrets {
		v := s.Current()
		if v == nil {
			continue
		}
		item := t.secretJSON(s.Name, *v, false)
		item["id"] = t.vaultBase() + "/secrets/" + s.Name
		items = append(items, item)
	}
	return t.vaultPage(req, items)
}
