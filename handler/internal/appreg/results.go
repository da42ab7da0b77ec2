package appreg

import "time"

// Severity of a finding.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Finding codes of the contract.
const (
	CodeAppMissing              = "APP_MISSING"
	CodeAudienceWrong           = "AUDIENCE_WRONG"
	CodePermissionMissing       = "PERMISSION_MISSING"
	CodePermissionUnexpected    = "PERMISSION_UNEXPECTED"
	CodeServicePrincipalMissing = "SERVICE_PRINCIPAL_MISSING"
	CodeConsentMissing          = "CONSENT_MISSING"
	CodeResourceUnavailable     = "RESOURCE_UNAVAILABLE"
	CodeSecretMissing           = "SECRET_MISSING"
	CodeSecretNotOnApp          = "SECRET_NOT_ON_APP"
	CodeSecretExpiring          = "SECRET_EXPIRING"
	CodeSecretExpired           = "SECRET_EXPIRED"
	CodeCredentialStale         = "CREDENTIAL_STALE"
	CodeSecretDeleted           = "SECRET_DELETED"
	CodeSecretDisabled          = "SECRET_DISABLED"
	CodeSecretPending           = "SECRET_PENDING"
	CodeSecretRejected          = "SECRET_REJECTED"
	CodeRoleNotInToken          = "ROLE_NOT_IN_TOKEN"
	CodeConsentUnexpected       = "CONSENT_UNEXPECTED"
)

// Finding is one difference between the tenant and the desired state.
type Finding struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// PermissionState is one permission of the level in a provision response.
type PermissionState struct {
	ResourceAppID string `json:"resourceAppId"`
	Value         string `json:"value"`
	ID            string `json:"id"`
	Consented     bool   `json:"consented"`
}

// SecretInfo describes the current secret of a provision response; never its value.
type SecretInfo struct {
	Name      string    `json:"name"`
	ID        string    `json:"id"`
	KeyID     string    `json:"keyId"`
	ExpiresOn time.Time `json:"expiresOn"`
	// SignIn is whether the token service accepts the secret: SignInAccepted, SignInPending or
	// SignInRejected; empty when no sign-in was made.
	SignIn string `json:"signIn,omitempty"`
}

// ProvisionResult is the body of POST /api/provision.
type ProvisionResult struct {
	TenantID           string            `json:"tenantId"`
	AppID              string            `json:"appId"`
	ObjectID           string            `json:"objectId"`
	ServicePrincipalID string            `json:"servicePrincipalId"`
	DisplayName        string            `json:"displayName"`
	UniqueName         string            `json:"uniqueName"`
	Permissions        []PermissionState `json:"permissions"`
	Secret             *SecretInfo       `json:"secret"`
	Changes            []string          `json:"changes"`
	Warnings           []Finding         `json:"warnings,omitempty"`
	// AdminConsentURL is where an administrator consents, while a permission is not consented
	// (APPREG_CONSENT=admin, or a consent not in effect yet).
	AdminConsentURL string `json:"adminConsentUrl,omitempty"`
	// Created is true when this call created the application (the handler answers 201).
	Created bool `json:"-"`
}

// SecretStatus is the secret part of GET /api/status.
type SecretStatus struct {
	KeyID      string     `json:"keyId"`
	ExpiresOn  *time.Time `json:"expiresOn,omitempty"`
	RenewAfter *time.Time `json:"renewAfter,omitempty"`
	SignIn     string     `json:"signIn,omitempty"`
}

// StatusReport is the body of GET /api/status.
type StatusReport struct {
	Compliant bool          `json:"compliant"`
	AppID     string        `json:"appId"`
	Findings  []Finding     `json:"findings"`
	Secret    *SecretStatus `json:"secret"`
}

// ComplianceResult is the outcome of the compliance timer.
type ComplianceResult struct {
	Before     StatusReport     `json:"before"`
	Remediated *ProvisionResult `json:"remediated,omitempty"`
	After      *StatusReport    `json:"after,omitempty"`
	// Compliant is the verdict of the run: the last report's.
	Compliant bool `json:"compliant"`
}

// RefreshResult is the answer of one App Service Key Vault reference refresh after a rotation.
type RefreshResult struct {
	SiteID string `json:"siteId"`
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
}

// RotateResult is the outcome of the rotate timer.
type RotateResult struct {
	Renewed bool            `json:"renewed"`
	Reason  string          `json:"reason,omitempty"`
	Secret  *SecretInfo     `json:"secret,omitempty"`
	Removed []string        `json:"removedKeyIds,omitempty"`
	Refresh []RefreshResult `json:"refresh,omitempty"`
	Changes []string        `json:"changes"`
}
