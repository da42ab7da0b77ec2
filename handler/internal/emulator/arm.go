package emulator

import (
	"maps"
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

// ARMRequestsByHost counts the ARM requests that carried an api-version, by the host name they were sent
// to (ARMHost, ARMHostUSGov), since Start: which cloud's ARM a client reached.
func (t *Tenant) ARMRequestsByHost() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.cloud.armHosts)
}

// armAudience is the audience of the tokens ARM accepts at host: each cloud's ARM takes its own.
func armAudience(host string) string {
	if strings.EqualFold(hostOnly(host), ARMHostUSGov) {
		return AudienceARMUSGov
	}
	return AudienceARM
}

// armAuth checks api-version and the ARM bearer token (for the audience of the host it was sent to).
func (t *Tenant) armAuth(req *request) *answer {
	v := req.query.Get("api-version")
	if v == "" {
		ans := t.errorAnswer(req, http.StatusBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.")
		return &ans
	}
	t.mu.Lock()
	t.stats.APIVersions[ServiceARM+" "+v]++
	if t.cloud.armHosts == nil {
		t.cloud.armHosts = map[string]int{}
	}
	t.cloud.armHosts[strings.ToLower(hostOnly(req.host))]++
	t.mu.Unlock()
	raw := bearerToken(req.header.Get("Authorization"))
	var ans answer
	if raw == "" {
		ans = t.errorAnswer(req, http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
	} else if c, err := verifyToken(raw, t.tenantID, armAudience(req.host), time.Now()); err != nil {
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
