package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// DefaultInstance is the name of the one instance made of the settings when APPREG_INSTANCES is unset.
const DefaultInstance = "default"

// Instance is one app registration the function app keeps right, in its own tenant or in another one.
type Instance struct {
	Name            string
	TenantID        string // "": the managed identity's own tenant
	DisplayName     string
	UniqueName      string
	PermissionLevel int
	KeyVaultURL     string
	SecretName      string
	Consent         string // ConsentGrant or ConsentAdmin
	RefreshSiteIDs  []string
}

// instanceNameRE is the contract's rule for an instance name.
var instanceNameRE = regexp.MustCompile(`^[a-z0-9-]{1,40}$`)

// instanceJSON is one element of APPREG_INSTANCES; pointers tell an omitted key from an empty one.
type instanceJSON struct {
	Name            *string   `json:"name"`
	TenantID        *string   `json:"tenantId"`
	DisplayName     *string   `json:"displayName"`
	UniqueName      *string   `json:"uniqueName"`
	PermissionLevel *int      `json:"permissionLevel"`
	KeyVaultURL     *string   `json:"keyVaultUrl"`
	SecretName      *string   `json:"secretName"`
	Consent         *string   `json:"consent"`
	RefreshSiteIDs  *[]string `json:"refreshSiteIds"`
}

// loadInstances parses APPREG_INSTANCES over the defaults of c (the settings of the same meaning) and
// reports every violation of the contract's rules through fail. Unset, it is the one instance "default".
func loadInstances(raw string, c Config, fail func(name, value, expected string)) ([]Instance, bool) {
	def := Instance{Name: DefaultInstance, DisplayName: c.DisplayName, UniqueName: c.UniqueName, PermissionLevel: c.PermissionLevel,
		KeyVaultURL: c.KeyVaultURL, SecretName: c.SecretName, Consent: c.Consent, RefreshSiteIDs: c.RefreshSiteIDs}
	if raw == "" {
		return []Instance{def}, false
	}
	const shape = `a JSON array of objects, e.g. [{"name":"contoso","tenantId":"<tenant id>","keyVaultUrl":"https://contoso-kv.vault.azure.net/"}]`
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	var elems []instanceJSON
	if err := dec.Decode(&elems); err != nil || dec.More() {
		fail(EnvInstances, clip(raw), shape+" ("+jsonProblem(err)+"; the keys are name, tenantId, displayName, uniqueName, permissionLevel, keyVaultUrl, secretName, consent, refreshSiteIds)")
		return nil, true
	}
	if len(elems) == 0 {
		fail(EnvInstances, raw, shape+" with at least one instance")
		return nil, true
	}
	var out []Instance
	names := map[string]bool{}
	apps := map[string]string{}    // tenant + uniqueName -> instance
	secrets := map[string]string{} // vault + secret name -> instance
	for i, e := range elems {
		in := def
		at := fmt.Sprintf("%s[%d]", EnvInstances, i)
		if e.Name == nil || !instanceNameRE.MatchString(*e.Name) {
			got := ""
			if e.Name != nil {
				got = *e.Name
			}
			fail(at+".name", got, "1 to 40 characters of a-z, 0-9 and '-'")
			continue
		}
		in.Name = *e.Name
		at = fmt.Sprintf("%s[%d] (%s)", EnvInstances, i, in.Name)
		if names[in.Name] {
			fail(at+".name", in.Name, "a name no other instance has")
			continue
		}
		names[in.Name] = true
		ok := true
		bad := func(key, value, expected string) { fail(at+"."+key, value, expected); ok = false }
		if e.TenantID != nil {
			if in.TenantID = strings.TrimSpace(*e.TenantID); !isGUID(in.TenantID) {
				bad("tenantId", *e.TenantID, "the tenant id (a GUID) where the registration lives, or omitted for the identity's own tenant")
			}
		}
		if e.DisplayName != nil {
			if in.DisplayName = strings.TrimSpace(*e.DisplayName); in.DisplayName == "" || len(in.DisplayName) > 120 {
				bad("displayName", *e.DisplayName, "a display name of 1 to 120 characters")
			}
		}
		if e.UniqueName != nil {
			if in.UniqueName = strings.TrimSpace(*e.UniqueName); !validUniqueName(in.UniqueName) {
				bad("uniqueName", *e.UniqueName, "1 to 120 letters, digits, '.', '_' or '-', starting with a letter or digit")
			}
		}
		if e.PermissionLevel != nil {
			if in.PermissionLevel = *e.PermissionLevel; in.PermissionLevel < 0 || in.PermissionLevel > MaxPermissionLevel {
				bad("permissionLevel", fmt.Sprint(*e.PermissionLevel), "0, 1 or 2")
			}
		}
		if e.KeyVaultURL != nil {
			u, valid := vaultURL(strings.TrimSpace(*e.KeyVaultURL))
			if !valid {
				bad("keyVaultUrl", *e.KeyVaultURL, "the vault's https URL, such as https://contoso-kv.vault.azure.net/")
			}
			in.KeyVaultURL = u
		}
		if e.SecretName != nil {
			if in.SecretName = strings.TrimSpace(*e.SecretName); !validSecretName(in.SecretName) {
				bad("secretName", *e.SecretName, "a Key Vault secret name: 1 to 127 letters, digits or '-'")
			}
		}
		if e.Consent != nil {
			if in.Consent = strings.ToLower(strings.TrimSpace(*e.Consent)); in.Consent != ConsentGrant && in.Consent != ConsentAdmin {
				bad("consent", *e.Consent, `"grant" or "admin"`)
			}
		}
		if e.RefreshSiteIDs != nil {
			in.RefreshSiteIDs = nil
			for _, id := range *e.RefreshSiteIDs {
				if !siteIDRE.MatchString(strings.TrimSpace(id)) {
					bad("refreshSiteIds", id, "App Service resource ids: /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Web/sites/<name>[/slots/<slot>]")
					continue
				}
				in.RefreshSiteIDs = append(in.RefreshSiteIDs, strings.TrimSpace(id))
			}
		}
		if in.KeyVaultURL == "" && ok {
			bad("keyVaultUrl", "", "a vault for its secret: keyVaultUrl, or "+EnvKeyVaultURL+" for every instance")
		}
		if !ok {
			continue
		}
		// Tenants and names are compared as written; an omitted tenantId is the identity's own tenant.
		appKey := strings.ToLower(in.TenantID) + "\x00" + strings.ToLower(in.UniqueName)
		if other, taken := apps[appKey]; taken {
			fail(at+".uniqueName", in.UniqueName, fmt.Sprintf("a uniqueName that instance %q does not use in the same tenant", other))
			continue
		}
		secretKey := in.KeyVaultURL + "\x00" + strings.ToLower(in.SecretName)
		if other, taken := secrets[secretKey]; taken {
			fail(at+".secretName", in.SecretName, fmt.Sprintf("a secret that instance %q does not store in the same vault (%s)", other, in.KeyVaultURL))
			continue
		}
		apps[appKey], secrets[secretKey] = in.Name, in.Name
		out = append(out, in)
	}
	return out, true
}

// jsonProblem says in an admin's words what the decoder found wrong (its own errors name Go types).
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return "more than one JSON value"
	case errors.As(err, &syn):
		return fmt.Sprintf("not valid JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("%q is a JSON %s, which it cannot be", typ.Field, typ.Value)
	case errors.As(err, &typ):
		return fmt.Sprintf("found a JSON %s where an array of objects or an object was expected", typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "the JSON ends too early"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// clip shortens a long value for a message.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
