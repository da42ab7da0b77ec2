// Package config loads the function app's settings from the environment, once, at start. Every variable
// name lives here. Load never stops at the first problem: it reports every invalid setting by name, with
// the value it expected, so that an admin fixes them all in one go.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/ncrontab"
)

// Names of the environment variables (app settings) the function app reads.
const (
	EnvKeyVaultURL       = "APPREG_KEY_VAULT_URL"
	EnvDisplayName       = "APPREG_DISPLAY_NAME"
	EnvUniqueName        = "APPREG_UNIQUE_NAME"
	EnvPermissionLevel   = "APPREG_PERMISSION_LEVEL"
	EnvSecretName        = "APPREG_SECRET_NAME"
	EnvSecretLifetime    = "APPREG_SECRET_LIFETIME_DAYS"
	EnvSecretRenewBefore = "APPREG_SECRET_RENEW_BEFORE_DAYS"
	EnvSecretOverlap     = "APPREG_SECRET_OVERLAP_HOURS"
	EnvRemediate         = "APPREG_REMEDIATE"
	EnvGraphEndpoint     = "APPREG_GRAPH_ENDPOINT"
	EnvARMEndpoint       = "APPREG_ARM_ENDPOINT"
	EnvComplianceSched   = "APPREG_COMPLIANCE_SCHEDULE"
	EnvRotationSched     = "APPREG_ROTATION_SCHEDULE"
	EnvRefreshSiteIDs    = "APPREG_REFRESH_SITE_IDS"
	EnvClientID          = "AZURE_CLIENT_ID"
	EnvConsent           = "APPREG_CONSENT"
	EnvAuthorityHost     = "AZURE_AUTHORITY_HOST"
	EnvInstances         = "APPREG_INSTANCES"
	EnvFederatedAppID    = "APPREG_FEDERATED_APP_ID"
	EnvPort              = "FUNCTIONS_CUSTOMHANDLER_PORT"
	EnvIdentityEndpoint  = "IDENTITY_ENDPOINT"
	EnvIdentityHeader    = "IDENTITY_HEADER"
)

// Defaults of the contract.
const (
	DefaultDisplayName      = "SCEPman"
	DefaultUniqueName       = "scepman"
	DefaultSecretName       = "AppConfig--AuthConfig--ApplicationKey"
	DefaultLifetimeDays     = 180
	DefaultRenewBeforeDays  = 30
	DefaultOverlapHours     = 48
	DefaultGraphEndpoint    = "https://graph.microsoft.com"
	DefaultARMEndpoint      = "https://management.azure.com"
	DefaultAuthorityHost    = "https://login.microsoftonline.com"
	ConsentGrant            = "grant" // the function grants admin consent itself
	ConsentAdmin            = "admin" // an administrator consents once; the function never writes an assignment
	DefaultComplianceSched  = "0 0 */6 * * *"
	DefaultRotationSchedule = "0 30 3 * * *"
	MaxPermissionLevel      = 2
)

// Config is every setting of the function app, parsed.
type Config struct {
	KeyVaultURL     string
	DisplayName     string
	UniqueName      string
	PermissionLevel int
	SecretName      string
	SecretLifetime  time.Duration
	RenewBefore     time.Duration
	Overlap         time.Duration
	Remediate       bool
	GraphEndpoint   string
	ARMEndpoint     string // Azure Resource Manager root (no trailing slash), for the consumer refresh
	ComplianceSched string
	RotationSched   string
	RefreshSiteIDs  []string
	ClientID        string
	Port            string
	Consent         string // ConsentGrant or ConsentAdmin
	AuthorityHost   string // Entra ID's token service root (no trailing slash)
	// Instances are the registrations the function app keeps right: those of APPREG_INSTANCES, or the
	// one instance DefaultInstance made of the settings above. Never empty once Load succeeded.
	Instances []Instance
	// InstancesSet is true when APPREG_INSTANCES is set: the HTTP functions then answer every instance
	// at once unless asked for one.
	InstancesSet bool
	// FederatedAppID is the client id of the multi-tenant application that reaches other tenants.
	FederatedAppID string
}

// SettingError is one invalid setting.
type SettingError struct {
	Name     string // the variable
	Value    string // what was given ("" when unset)
	Expected string // what a valid value looks like
}

func (e *SettingError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s is not set: expected %s", e.Name, e.Expected)
	}
	return fmt.Sprintf("%s=%q is invalid: expected %s", e.Name, e.Value, e.Expected)
}

// Error lists every invalid setting found by Load.
type Error struct{ Settings []*SettingError }

func (e *Error) Error() string {
	parts := make([]string, len(e.Settings))
	for i, s := range e.Settings {
		parts[i] = s.Error()
	}
	return "invalid configuration: " + strings.Join(parts, "; ")
}

// Unwrap lets errors.As find each SettingError.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Settings))
	for i, s := range e.Settings {
		errs[i] = s
	}
	return errs
}

// App Service or slot resource id, as ARM spells it.
var siteIDRE = regexp.MustCompile(`(?i)^/subscriptions/[0-9a-f-]{36}/resourceGroups/[^/]+/providers/Microsoft\.Web/sites/[^/]+(/slots/[^/]+)?$`)

var (
	uniqueNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$`)
	secretNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	guidRE       = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

func validUniqueName(s string) bool { return uniqueNameRE.MatchString(s) }

func validSecretName(s string) bool { return secretNameRE.MatchString(s) }

// Load reads and validates every setting through getenv. On error it still returns the Config with the
// valid settings filled in, and an *Error that names every invalid one.
func Load(getenv func(string) string) (Config, error) {
	var bad []*SettingError
	fail := func(name, value, expected string) { bad = append(bad, &SettingError{name, value, expected}) }
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	intIn := func(name string, def, lo, hi int, expected string) int {
		raw := get(name, strconv.Itoa(def))
		n, err := strconv.Atoi(raw)
		if err != nil || n < lo || n > hi {
			fail(name, raw, expected)
			return def
		}
		return n
	}

	c := Config{
		DisplayName:     get(EnvDisplayName, DefaultDisplayName),
		UniqueName:      get(EnvUniqueName, DefaultUniqueName),
		SecretName:      get(EnvSecretName, DefaultSecretName),
		GraphEndpoint:   strings.TrimRight(get(EnvGraphEndpoint, DefaultGraphEndpoint), "/"),
		ARMEndpoint:     strings.TrimRight(get(EnvARMEndpoint, DefaultARMEndpoint), "/"),
		ComplianceSched: get(EnvComplianceSched, DefaultComplianceSched),
		RotationSched:   get(EnvRotationSched, DefaultRotationSchedule),
		ClientID:        strings.TrimSpace(getenv(EnvClientID)),
		Port:            strings.TrimSpace(getenv(EnvPort)),
		Consent:         strings.ToLower(get(EnvConsent, ConsentGrant)),
		AuthorityHost:   strings.TrimRight(get(EnvAuthorityHost, DefaultAuthorityHost), "/"),
	}

	raw := strings.TrimSpace(getenv(EnvKeyVaultURL))
	instances := strings.TrimSpace(getenv(EnvInstances))
	if u, ok := vaultURL(raw); ok {
		c.KeyVaultURL = u
	} else if raw != "" || instances == "" {
		// With APPREG_INSTANCES the default vault is optional: each instance may name its own.
		fail(EnvKeyVaultURL, raw, "the vault's https URL, such as https://contoso-kv.vault.azure.net/")
	}
	if len(c.DisplayName) > 120 {
		fail(EnvDisplayName, c.DisplayName, "a display name of at most 120 characters")
	}
	if !validUniqueName(c.UniqueName) {
		fail(EnvUniqueName, c.UniqueName, "1 to 120 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	c.PermissionLevel = intIn(EnvPermissionLevel, 0, 0, MaxPermissionLevel, "0, 1 or 2")
	if !validSecretName(c.SecretName) {
		fail(EnvSecretName, c.SecretName, "a Key Vault secret name: 1 to 127 letters, digits or '-'")
	}
	lifetime := intIn(EnvSecretLifetime, DefaultLifetimeDays, 1, 3650, "a whole number of days from 1 to 3650")
	renew := intIn(EnvSecretRenewBefore, DefaultRenewBeforeDays, 0, 3649, "a whole number of days from 0 to 3649")
	overlap := intIn(EnvSecretOverlap, DefaultOverlapHours, 0, 8760, "a whole number of hours from 0 to 8760")
	c.SecretLifetime = time.Duration(lifetime) * 24 * time.Hour
	c.RenewBefore = time.Duration(renew) * 24 * time.Hour
	c.Overlap = time.Duration(overlap) * time.Hour
	if renew >= lifetime {
		fail(EnvSecretRenewBefore, strconv.Itoa(renew),
			fmt.Sprintf("fewer days than %s (%d), or every new secret would be due at once", EnvSecretLifetime, lifetime))
	}
	if overlap > 0 && time.Duration(overlap)*time.Hour >= c.SecretLifetime {
		fail(EnvSecretOverlap, strconv.Itoa(overlap), fmt.Sprintf("fewer hours than the secret lifetime (%d days)", lifetime))
	}

	switch r := strings.ToLower(get(EnvRemediate, "false")); r {
	case "true", "1":
		c.Remediate = true
	case "false", "0":
	default:
		fail(EnvRemediate, getenv(EnvRemediate), "true or false")
	}
	if !rootURL(c.GraphEndpoint) {
		fail(EnvGraphEndpoint, c.GraphEndpoint, "an https root URL without a path, such as https://graph.microsoft.com")
	}
	if !rootURL(c.ARMEndpoint) {
		fail(EnvARMEndpoint, c.ARMEndpoint, "an https root URL without a path, such as https://management.azure.com "+
			"(https://management.usgovcloudapi.net for Azure Government)")
	}
	if !rootURL(c.AuthorityHost) {
		fail(EnvAuthorityHost, c.AuthorityHost, "an https root URL without a path, such as https://login.microsoftonline.com "+
			"(https://login.microsoftonline.us for Azure Government)")
	}
	if c.Consent != ConsentGrant && c.Consent != ConsentAdmin {
		fail(EnvConsent, getenv(EnvConsent), `"grant" (the function grants admin consent; its identity holds AppRoleAssignment.ReadWrite.All) `+
			`or "admin" (an administrator consents once)`)
	}
	for _, s := range []struct{ name, value string }{{EnvComplianceSched, c.ComplianceSched}, {EnvRotationSched, c.RotationSched}} {
		if _, err := ncrontab.Parse(s.value); err != nil {
			fail(s.name, s.value, "an NCRONTAB expression with six fields, seconds first, such as \"0 30 3 * * *\" ("+err.Error()+")")
		}
	}
	for _, id := range strings.Split(getenv(EnvRefreshSiteIDs), ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		if !siteIDRE.MatchString(id) {
			fail(EnvRefreshSiteIDs, id, "comma-separated App Service resource ids: /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Web/sites/<name>[/slots/<slot>]")
			continue
		}
		c.RefreshSiteIDs = append(c.RefreshSiteIDs, id)
	}
	if c.ClientID != "" && !isGUID(c.ClientID) {
		fail(EnvClientID, c.ClientID, "the client id (a GUID) of a user-assigned managed identity, or unset for the system-assigned one")
	}
	if c.Port != "" {
		if n, err := strconv.Atoi(c.Port); err != nil || n < 1 || n > 65535 {
			fail(EnvPort, c.Port, "a TCP port number (the Functions host sets it)")
		}
	}
	c.FederatedAppID = strings.TrimSpace(getenv(EnvFederatedAppID))
	if c.FederatedAppID != "" && !isGUID(c.FederatedAppID) {
		fail(EnvFederatedAppID, c.FederatedAppID, "the client id (a GUID) of the multi-tenant application whose federated credential trusts the function's managed identity")
	}
	if len(bad) == 0 {
		c.Instances, c.InstancesSet = loadInstances(instances, c, fail)
	}
	if len(bad) > 0 {
		return c, &Error{Settings: bad}
	}
	return c, nil
}

// rootURL tells whether v is an https URL with a host and nothing else (no path, query, fragment or user).
func rootURL(v string) bool {
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return false
	}
	_, rest, _ := strings.Cut(v, "://")
	return !strings.ContainsAny(rest, "?#@")
}

// vaultURL normalises a Key Vault URL to https://host/ and tells whether it is one.
func vaultURL(raw string) (string, bool) {
	if raw == "" {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || (u.Path != "" && u.Path != "/") {
		return "", false
	}
	if !strings.Contains(u.Hostname(), ".") {
		return "", false
	}
	return "https://" + strings.ToLower(u.Host) + "/", true
}

func isGUID(s string) bool { return guidRE.MatchString(s) }

// IsConfigError tells whether err came from Load.
func IsConfigError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
