package emulator

import (
	"net/http"
	"regexp"
	"strings"
	"time"
)

// refreshRE matches the path of an App Service's (or slot's) Key Vault reference refresh.
var refreshRE = regexp.MustCompile(`(?i)^(/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.web/sites/[^/]+(?:/slots/[^/]+)?)/config/configreferences/appsettings/refresh$`)

// armRoute maps an ARM request to its operation.
func (t *Tenant) armRoute(req *request) (route, bool) {
	m := refreshRE.FindStringSubmatch("/" + strings.Join(req.segs, "/"))
	if m == nil || req.method != http.MethodPost {
		return route{}, false
	}
	site := m[1]
	return route{op: OpRefreshConfigReferences, write: true, handle: func(r *request) answer {
		return t.refreshConfigReferences(r, site)
	}}, true
}

// armAuth checks api-version and the ARM bearer token.
func (t *Tenant) armAuth(req *request) *answer {
	v := req.query.Get("api-version")
	if v == "" {
		ans := t.errorAnswer(req, http.StatusBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.")
		return &ans
	}
	t.mu.Lock()
	t.stats.APIVersions[ServiceARM+" "+v]++
	t.mu.Unlock()
	raw := bearerToken(req.header.Get("Authorization"))
	var ans answer
	if raw == "" {
		ans = t.errorAnswer(req, http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
	} else if c, err := verifyToken(raw, t.tenantID, AudienceARM, time.Now()); err != nil {
		t.logf("emulator: ARM rejects the token of %s: %v", req.target(), err)
		ans = t.errorAnswer(req, http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid: "+err.Error()+".")
	} else {
		req.claims = c
		return nil
	}
	ans.header.Set("WWW-Authenticate", `Bearer authorization_uri="https://`+LoginHost+`/`+t.tenantID+`", error="invalid_token", error_description="The authentication failed because of missing 'Authorization' header or invalid token."`)
	return &ans
}

// refreshConfigReferences answers the status set by SetSite. Runs under t.mu.
func (t *Tenant) refreshConfigReferences(req *request, site string) answer {
	key := strings.ToLower(site)
	status, ok := t.sites[key]
	if !ok {
		return t.errorAnswer(req, http.StatusNotFound, "ResourceNotFound",
			"The Resource '"+site+"' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")
	}
	t.stats.SiteRefreshes[t.siteNames[key]]++
	if status >= 200 && status < 300 {
		req.applied = true
		if status == http.StatusNoContent {
			return emptyAnswer(status)
		}
		return jsonAnswer(status, map[string]any{}, "application/json; charset=utf-8")
	}
	return t.errorAnswer(req, status, defaultFaultCode(ServiceARM, status), "The refresh of the Key Vault references failed (emulated).")
}
