package emulator

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Token audiences (the resource a token is for).
const (
	AudienceGraph = "https://graph.microsoft.com"
	AudienceVault = "https://vault.azure.net"
	AudienceARM   = "https://management.azure.com"
	// AudienceARMUSGov is Azure Government's ARM: the emulator answers ARM at ARMHostUSGov too, with
	// tokens for this audience.
	AudienceARMUSGov = "https://management.usgovcloudapi.net"
	// AudienceTokenExchange is the audience of the managed identity's token that a federated identity
	// credential accepts as a client assertion (resource api://AzureADTokenExchange).
	AudienceTokenExchange = "api://AzureADTokenExchange"
)

// tokenLifetime is how long an access token is valid.
const tokenLifetime = time.Hour

// signingKey signs every token of the process (see the package doc: MSAL's cache is process-wide).
var signingKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
})

// claims is the payload of an access token.
type claims struct {
	Aud   string   `json:"aud"`
	Iss   string   `json:"iss"`
	Tid   string   `json:"tid"`
	Oid   string   `json:"oid"`
	Sub   string   `json:"sub"`
	AppID string   `json:"appid"`
	Idtyp string   `json:"idtyp"`
	Roles []string `json:"roles,omitempty"`
	Iat   int64    `json:"iat"`
	Nbf   int64    `json:"nbf"`
	Exp   int64    `json:"exp"`
	Ver   string   `json:"ver"`
	// Of an application token of the token service (login.go) only:
	AppIDAcr string `json:"appidacr,omitempty"` // "1": the client authenticated with a secret, "2" an assertion
	Idp      string `json:"idp,omitempty"`
	Uti      string `json:"uti,omitempty"`
}

// hasRole tells whether the token carries any of roles.
func (c *claims) hasRole(roles ...string) bool {
	for _, have := range c.Roles {
		for _, want := range roles {
			if strings.EqualFold(have, want) {
				return true
			}
		}
	}
	return false
}

// canonicalResource maps a managed identity resource to the audience of its tokens; ok is false for a
// resource the emulated tenant does not know.
func canonicalResource(resource string) (string, bool) {
	r := strings.TrimSuffix(strings.TrimSuffix(resource, "/.default"), "/")
	switch strings.ToLower(r) {
	case AudienceGraph, "00000003-0000-0000-c000-000000000000":
		return AudienceGraph, true
	case AudienceVault, "cfa8b339-82a2-471a-a3c9-0fc0be7a4093":
		return AudienceVault, true
	case AudienceARM, "https://management.core.windows.net":
		return AudienceARM, true
	case AudienceARMUSGov, "https://management.core.usgovcloudapi.net":
		return AudienceARMUSGov, true
	case "api://azureadtokenexchange":
		return AudienceTokenExchange, true
	}
	return "", false
}

func issuer(tenantID string) string { return "https://sts.windows.net/" + tenantID + "/" }

// FederatedIssuer is the issuer (iss) of a tenant's v2.0 tokens, https://login.microsoftonline.com/{tenant}/v2.0:
// the managed identity's token for api://AzureADTokenExchange carries it, and a federated identity
// credential that trusts the identity names it.
func FederatedIssuer(tenantID string) string { return loginBase + "/" + tenantID + "/v2.0" }

// signToken encodes and signs c as a JWT (HS256, the process's key).
func signToken(c claims) string {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	payload, err := json.Marshal(c)
	if err != nil {
		panic(err) // claims always marshal
	}
	signed := header + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac(signed))
}

func mac(s string) []byte {
	h := hmac.New(sha256.New, signingKey())
	h.Write([]byte(s))
	return h.Sum(nil)
}

// Token validation failures, worded after Entra's messages.
var (
	errTokenMissing   = errors.New("access token is empty")
	errTokenMalformed = errors.New("IDX14100: JWT is not well formed")
	errTokenSignature = errors.New("IDX10511: signature validation failed")
	errTokenAudience  = errors.New("invalid audience")
	errTokenIssuer    = errors.New("invalid issuer or tenant")
	errTokenExpired   = errors.New("lifetime validation failed, the token is expired")
	errTokenNotYet    = errors.New("lifetime validation failed, the token is not yet valid")
)

// bearerToken extracts the token of an Authorization header; "" when there is none.
func bearerToken(header string) string {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// verifyToken checks a JWT signed by the emulator for the tenant and the audience.
func verifyToken(raw, tenantID, audience string, now time.Time) (*claims, error) {
	c, err := parseToken(raw)
	if err != nil {
		return nil, err
	}
	return checkClaims(c, tenantID, audience, now)
}

// verifyDirectoryToken is verifyToken for a token of any tenant of the world (Graph serves each tenant
// from its own directory). It takes t.mu.
func (t *Tenant) verifyDirectoryToken(raw, audience string, now time.Time) (*claims, error) {
	c, err := parseToken(raw)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	d := t.dir(c.Tid)
	t.mu.Unlock()
	tenantID := "not a tenant of the emulated world"
	if d != nil {
		tenantID = d.id
	}
	return checkClaims(c, tenantID, audience, now)
}

// parseToken checks the form and the signature of a JWT signed by the emulator and returns its claims.
func parseToken(raw string) (*claims, error) {
	if raw == "" {
		return nil, errTokenMissing
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errTokenMalformed
	}
	var header struct {
		Alg string `json:"alg"`
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &header) != nil {
		return nil, errTokenMalformed
	}
	if header.Alg != "HS256" {
		return nil, fmt.Errorf("%w: unexpected alg %q", errTokenSignature, header.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, errTokenMalformed
	}
	if !hmac.Equal(sig, mac(parts[0]+"."+parts[1])) {
		return nil, errTokenSignature
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errTokenMalformed
	}
	var c claims
	if err := json.Unmarshal(pb, &c); err != nil {
		return nil, errTokenMalformed
	}
	return &c, nil
}

// checkClaims checks a token's audience, tenant and issuer, and lifetime.
func checkClaims(c *claims, tenantID, audience string, now time.Time) (*claims, error) {
	if strings.TrimSuffix(c.Aud, "/") != audience {
		return nil, fmt.Errorf("%w: %q", errTokenAudience, c.Aud)
	}
	if c.Tid != tenantID || c.Iss != issuer(tenantID) {
		return nil, fmt.Errorf("%w: %q", errTokenIssuer, c.Tid)
	}
	if now.Unix() >= c.Exp {
		return nil, errTokenExpired
	}
	if now.Unix() < c.Nbf-300 { // five minutes of clock skew, as Entra allows
		return nil, errTokenNotYet
	}
	return c, nil
}
