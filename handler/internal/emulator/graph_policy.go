package emulator

import (
	"net/http"
	"strconv"
	"time"
)

// ---- policy ----

func (t *Tenant) getAppManagementPolicy(req *request) answer {
	if ans := t.checkQuery(req, "$select"); ans != nil {
		return *ans
	}
	if !req.claims.hasRole(RolePolicyReadAll, "Policy.ReadWrite.ApplicationConfiguration", RoleApplicationReadWriteAll, RoleDirectoryReadWriteAll) {
		return denied(req)
	}
	passwords := []any{}
	forbidden := t.graphRealism.cfg.PasswordsForbidden
	if forbidden {
		passwords = append(passwords, map[string]any{
			"restrictionType":                     "passwordAddition",
			"state":                               "enabled",
			"maxLifetime":                         nil,
			"restrictForAppsCreatedAfterDateTime": "2019-01-01T00:00:00Z",
		})
	}
	if t.maxPasswordLifetime > 0 {
		passwords = append(passwords, map[string]any{
			"restrictionType":                     "passwordLifetime",
			"state":                               "enabled",
			"maxLifetime":                         isoDuration(t.maxPasswordLifetime),
			"restrictForAppsCreatedAfterDateTime": "2019-01-01T00:00:00Z",
		})
	}
	obj := map[string]any{
		"id":          defaultPolicyID,
		"displayName": "Default app management tenant policy",
		"description": "Default tenant policy that enforces app management restrictions on applications and service principals.",
		"isEnabled":   t.maxPasswordLifetime > 0 || forbidden,
		"applicationRestrictions": map[string]any{
			"passwordCredentials": passwords,
			"keyCredentials":      []any{},
		},
		"servicePrincipalRestrictions": map[string]any{
			"passwordCredentials": []any{},
			"keyCredentials":      []any{},
		},
	}
	return t.graphEntity(req, http.StatusOK, obj, "policies/defaultAppManagementPolicy/$entity", "microsoft.graph.tenantAppManagementPolicy")
}

// isoDuration formats d as an ISO 8601 duration (P90D, PT36H, P1DT2H3M4S).
func isoDuration(d time.Duration) string {
	d = d.Round(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h := d / time.Hour
	d -= h * time.Hour
	m := d / time.Minute
	d -= m * time.Minute
	s := d / time.Second
	out := "P"
	if days > 0 {
		out += strconv.Itoa(int(days)) + "D"
	}
	if h > 0 || m > 0 || s > 0 {
		out += "T"
		if h > 0 {
			out += strconv.Itoa(int(h)) + "H"
		}
		if m > 0 {
			out += strconv.Itoa(int(m)) + "M"
		}
		if s > 0 {
			out += strconv.Itoa(int(s)) + "S"
		}
	}
	if out == "P" {
		out = "PT0S"
	}
	return out
}
