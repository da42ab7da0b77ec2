package appreg

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Settings are the parts of the configuration the engine works from.
type Settings struct {
	DisplayName     string
	UniqueName      string
	PermissionLevel int
	SecretName      string
	SecretLifetime  time.Duration
	RenewBefore     time.Duration
	Overlap         time.Duration
	Remediate       bool
	// AdminConsent is APPREG_CONSENT=admin: the engine never writes an app role assignment; an
	// administrator consents once through AdminConsentURL.
	AdminConsent bool
	// AuthorityHost is Entra ID's token service root (AZURE_AUTHORITY_HOST), for the consent link.
	AuthorityHost string
}

// DefaultAuthorityHost is Entra ID's token service in the global cloud.
const DefaultAuthorityHost = "https://login.microsoftonline.com"

// AdminConsentURL is the link an administrator of tenantID opens once to consent to the application's
// permissions: {AZURE_AUTHORITY_HOST}/{tenantId}/adminconsent?client_id={appId}.
func (s Settings) AdminConsentURL(tenantID, appID string) string {
	host := strings.TrimRight(s.AuthorityHost, "/")
	if host == "" {
		host = DefaultAuthorityHost
	}
	return host + "/" + tenantID + "/adminconsent?client_id=" + appID
}

// OrphanAge is how old a credential that no secret version names must be before it is removed: no run
// lasts that long, so a concurrent run's fresh credential is never taken.
const OrphanAge = time.Hour

// Observation is the tenant as read at one moment.
type Observation struct {
	TenantID string
	App      *Application                 // nil: no application with the uniqueName
	SP       *ServicePrincipal            // nil: the application has no service principal
	Resource map[string]*ServicePrincipal // by appId; nil value: absent from the tenant
	Assigned []AppRoleAssignment          // granted to SP
	Current  *SecretVersion               // nil: no secret
	// Disabled is set when the current version is disabled: Key Vault refuses to read it, so SCEPman
	// cannot either. Current then holds its metadata (from the list of versions).
	Disabled bool
	// Deleted is the deleted-but-recoverable secret when Current is nil and Key Vault's soft delete
	// holds one under the name; nil otherwise.
	Deleted *DeletedSecret
	// SignIn is what the token service said of the current secret; nil when no sign-in was made (no
	// secret, no application, no resource, or no sign-in check).
	SignIn *SignInResult
	// Versions are the versions of the secret, oldest first: every one when versionsListed, else only
	// the current one (and those stored since by the run), which is all the findings and the removal
	// rule need while no other credential lacks a version here (see needsVersions).
	Versions       []SecretVersion
	versionsListed bool
}

// needsVersions tells whether the removal rule needs versions of the secret that the observation does
// not hold: whether the application has a credential, other than the one the current version names,
// that no version held names.
func (o *Observation) needsVersions() bool {
	if o.App == nil || o.versionsListed {
		return false
	}
	cur := o.currentKeyID()
	for _, c := range o.App.Passwords {
		if c.KeyID != cur && !slices.ContainsFunc(o.Versions, func(v SecretVersion) bool { return v.KeyID() == c.KeyID }) {
			return true
		}
	}
	return false
}

// missesSomething tells whether the observation lacks an object that a lagging read may have hidden: the
// application, its service principal, an admin consent of the level, or the credential the current
// secret names.
func (o *Observation) missesSomething(level int) bool {
	if o.App == nil || o.SP == nil {
		return true
	}
	for _, p := range PermissionsFor(level) {
		if o.Resource[p.ResourceAppID] != nil && !o.consented(p) {
			return true
		}
	}
	if o.Current != nil {
		if _, ok := o.credential(o.Current.KeyID()); !ok {
			return true
		}
	}
	return false
}

// merge adds to o what another read of the directory saw and o did not: the application (and its
// credentials), its service principal, assignments and resource service principals. What one read saw
// exists, whatever another read missed.
func (o *Observation) merge(b *Observation) {
	switch {
	case o.App == nil:
		o.App = b.App
	case b.App != nil && b.App.AppID == o.App.AppID:
		for _, c := range b.App.Passwords {
			if _, ok := o.credential(c.KeyID); !ok {
				o.App.Passwords = append(o.App.Passwords, c)
			}
		}
	}
	if o.SP == nil && b.SP != nil && o.App != nil && b.SP.AppID == o.App.AppID {
		o.SP = b.SP
	}
	for _, a := range b.Assigned {
		if !slices.ContainsFunc(o.Assigned, func(x AppRoleAssignment) bool { return x.ID == a.ID }) {
			o.Assigned = append(o.Assigned, a)
		}
	}
	for appID, sp := range b.Resource {
		if o.Resource[appID] == nil {
			o.Resource[appID] = sp
		}
	}
}

// credential finds a password credential of the application by keyId.
func (o *Observation) credential(keyID string) (PasswordCredential, bool) {
	if o.App == nil || keyID == "" {
		return PasswordCredential{}, false
	}
	for _, c := range o.App.Passwords {
		if c.KeyID == keyID {
			return c, true
		}
	}
	return PasswordCredential{}, false
}

// currentKeyID is the keyId the current secret version names, "" when there is none.
func (o *Observation) currentKeyID() string {
	if o.Current == nil {
		return ""
	}
	return o.Current.KeyID()
}

// consented tells whether SP holds an assignment of the permission.
func (o *Observation) consented(p Permission) bool {
	res := o.Resource[p.ResourceAppID]
	if o.SP == nil || res == nil {
		return false
	}
	for _, a := range o.Assigned {
		if a.PrincipalID == o.SP.ID && a.ResourceID == res.ID && a.AppRoleID == p.ID {
			return true
		}
	}
	return false
}

// SecretState is the verdict on the current secret.
type SecretState int

// Secret states, from worst to best.
const (
	SecretMissing  SecretState = iota // no Key Vault secret
	SecretDeleted                     // deleted but recoverable (soft delete)
	SecretDisabled                    // the current version is disabled
	SecretNotOnApp                    // its keyId is not a credential of the application
	SecretRejected                    // the token service refuses it (and it is not pending)
	SecretExpired
	SecretExpiring // inside the renewal window
	SecretCurrent
)

// secretState judges the current secret and gives its credential when the application holds it.
func (s Settings) secretState(o *Observation, now time.Time) (SecretState, PasswordCredential) {
	if o.Current == nil {
		if o.Deleted != nil {
			return SecretDeleted, PasswordCredential{}
		}
		return SecretMissing, PasswordCredential{}
	}
	cred, ok := o.credential(o.Current.KeyID())
	switch {
	case o.Disabled:
		return SecretDisabled, cred
	case !ok:
		return SecretNotOnApp, cred
	case !now.Before(cred.End):
		return SecretExpired, cred
	case o.SignIn != nil && o.SignIn.State == SignInRejected:
		return SecretRejected, cred
	case !now.Before(cred.End.Add(-s.RenewBefore)):
		return SecretExpiring, cred
	}
	return SecretCurrent, cred
}

// Removable tells whether a credential other than the current one may go, and why: once the overlap has
// passed since its successor version was stored, or, when no version names it, once it is OrphanAge old.
// The credential the current version names is never removable.
func Removable(c PasswordCredential, current *SecretVersion, versions []SecretVersion, overlap time.Duration, now time.Time) (bool, string) {
	if current != nil && current.KeyID() == c.KeyID {
		return false, "current"
	}
	var latest *SecretVersion
	for i := range versions {
		v := &versions[i]
		if v.KeyID() == c.KeyID && (latest == nil || !v.Created.Before(latest.Created)) {
			latest = v
		}
	}
	if latest == nil {
		if now.Sub(c.Start) >= OrphanAge {
			return true, fmt.Sprintf("no secret version names it and it is older than %s", human(OrphanAge))
		}
		return false, "orphan younger than an hour"
	}
	// Its successor: the first version stored after the latest one naming it.
	var successor time.Time
	for _, v := range versions {
		if v.KeyID() != c.KeyID && v.Created.After(latest.Created) && (successor.IsZero() || v.Created.Before(successor)) {
			successor = v.Created
		}
	}
	if successor.IsZero() && current != nil && current.ID != latest.ID {
		successor = current.Created // stored in the same second
	}
	if successor.IsZero() {
		return false, "no successor stored"
	}
	if !now.Before(successor.Add(overlap)) {
		return true, fmt.Sprintf("replaced %s ago, overlap %s", now.Sub(successor).Round(time.Second), overlap)
	}
	return false, "inside its overlap"
}

// Diff compares an observation with the desired state and gives the contract's findings, in a stable order.
func (s Settings) Diff(o *Observation, now time.Time) []Finding {
	var fs []Finding
	add := func(code, sev, format string, args ...any) {
		fs = append(fs, Finding{Code: code, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}
	want := PermissionsFor(s.PermissionLevel)

	if o.App == nil {
		add(CodeAppMissing, SeverityError, "no application with uniqueName %q", s.UniqueName)
	} else {
		if o.App.SignInAudience != AudienceMyOrg {
			add(CodeAudienceWrong, SeverityError, "signInAudience is %q, want %q", o.App.SignInAudience, AudienceMyOrg)
		}
		have := map[[2]string]string{} // (resource, id) -> type
		for _, ra := range o.App.RequiredResourceAccess {
			for _, a := range ra.Access {
				have[[2]string{ra.ResourceAppID, a.ID}] = a.Type
			}
		}
		wanted := map[[2]string]bool{}
		for _, p := range want {
			key := [2]string{p.ResourceAppID, p.ID}
			wanted[key] = true
			if have[key] != AccessRole {
				add(CodePermissionMissing, SeverityError, "%s %s is not a required application permission", p.Resource, p.Value)
			}
		}
		for _, ra := range o.App.RequiredResourceAccess {
			for _, a := range ra.Access {
				if !wanted[[2]string{ra.ResourceAppID, a.ID}] || a.Type != AccessRole {
					add(CodePermissionUnexpected, SeverityError, "requiredResourceAccess holds %s (%s), which level %d does not include",
						knownPermission(ra.ResourceAppID, a.ID), a.Type, s.PermissionLevel)
				}
			}
		}
		if o.SP == nil {
			add(CodeServicePrincipalMissing, SeverityError, "application %s has no service principal", o.App.AppID)
		}
	}
	unavailable := map[string]bool{}
	for _, p := range want {
		if o.Resource[p.ResourceAppID] == nil {
			if !unavailable[p.ResourceAppID] {
				unavailable[p.ResourceAppID] = true
				add(CodeResourceUnavailable, SeverityWarning, "%s (appId %s) has no service principal in this tenant: its permissions cannot be granted", p.Resource, p.ResourceAppID)
			}
			continue
		}
		if o.App != nil && !o.consented(p) {
			if s.AdminConsent {
				add(CodeConsentMissing, SeverityError, "%s %s has no admin consent (app role assignment): an administrator consents once at %s",
					p.Resource, p.Value, s.AdminConsentURL(o.TenantID, o.App.AppID))
			} else {
				add(CodeConsentMissing, SeverityError, "%s %s has no admin consent (app role assignment)", p.Resource, p.Value)
			}
		}
	}

	state, cred := s.secretState(o, now)
	switch state {
	case SecretMissing:
		add(CodeSecretMissing, SeverityError, "Key Vault holds no secret %q", s.SecretName)
	case SecretDeleted:
		purge := ""
		if !o.Deleted.ScheduledPurge.IsZero() {
			purge = fmt.Sprintf(", to be purged at %s", o.Deleted.ScheduledPurge.UTC().Format(time.RFC3339))
		}
		add(CodeSecretDeleted, SeverityError, "Key Vault secret %q was deleted at %s and can still be recovered%s: provision recovers it with all its versions",
			s.SecretName, o.Deleted.DeletedOn.UTC().Format(time.RFC3339), purge)
	case SecretDisabled:
		add(CodeSecretDisabled, SeverityError, "the current version of secret %q (keyId %s) is disabled, so SCEPman cannot read it: provision or rotate stores a new version",
			s.SecretName, o.Current.KeyID())
	case SecretNotOnApp:
		if o.App == nil {
			add(CodeSecretNotOnApp, SeverityError, "secret %q names keyId %q, but there is no application", s.SecretName, o.Current.KeyID())
		} else {
			add(CodeSecretNotOnApp, SeverityError, "secret %q names keyId %q, which is not a credential of application %s", s.SecretName, o.Current.KeyID(), o.App.AppID)
		}
	case SecretRejected:
		add(CodeSecretRejected, SeverityError, "the token service refuses the current secret (keyId %s): %s %s",
			o.Current.KeyID(), o.SignIn.Code, o.SignIn.Message)
	case SecretExpired:
		add(CodeSecretExpired, SeverityError, "the current secret (keyId %s) expired at %s", cred.KeyID, cred.End.UTC().Format(time.RFC3339))
	case SecretExpiring:
		add(CodeSecretExpiring, SeverityWarning, "the current secret (keyId %s) expires at %s, inside the renewal window of %s", cred.KeyID, cred.End.UTC().Format(time.RFC3339), human(s.RenewBefore))
	}
	if r := o.SignIn; r != nil && r.State == SignInPending {
		add(CodeSecretPending, SeverityWarning, "the token service does not accept the current secret (keyId %s) yet: %s; its credential is less than %s old, so this is replication",
			o.Current.KeyID(), r.Code, human(PendingWindow))
	}
	if r := o.SignIn; r != nil && r.State == SignInAccepted {
		for _, p := range want {
			roles, signedIn := r.Roles[p.ResourceAppID]
			if signedIn && !slices.Contains(roles, p.Value) {
				add(CodeRoleNotInToken, SeverityWarning, "the token for %s lacks %s in its roles claim: the consent is not in effect yet, or was revoked", p.Resource, p.Value)
			}
		}
	}
	for _, u := range s.unexpectedConsents(o) {
		add(CodeConsentUnexpected, SeverityError, "%s", u.message)
	}
	if o.App != nil {
		for _, c := range o.App.Passwords {
			if ok, why := Removable(c, o.Current, o.Versions, s.Overlap, now); ok {
				add(CodeCredentialStale, SeverityWarning, "credential %s outlived the overlap: %s", c.KeyID, why)
			}
		}
	}
	return fs
}

// unexpectedConsent is an app role assignment (or a role in a token) outside the level.
type unexpectedConsent struct {
	assignment *AppRoleAssignment // nil when only a token shows it
	message    string
}

// unexpectedConsents are the application permissions the service principal holds beyond the level: its
// app role assignments outside the level's (resource, role) pairs, and, as the second witness, roles in a
// token of the sign-in check that the level does not include for that resource.
func (s Settings) unexpectedConsents(o *Observation) []unexpectedConsent {
	want := PermissionsFor(s.PermissionLevel)
	wanted := func(resourceID, roleID string) bool {
		return slices.ContainsFunc(want, func(p Permission) bool {
			r := o.Resource[p.ResourceAppID]
			return r != nil && strings.EqualFold(r.ID, resourceID) && strings.EqualFold(p.ID, roleID)
		})
	}
	var out []unexpectedConsent
	seen := map[string]bool{} // resource appId + "/" + role value
	for _, a := range o.Assigned {
		if o.SP == nil || !strings.EqualFold(a.PrincipalID, o.SP.ID) || wanted(a.ResourceID, a.AppRoleID) {
			continue
		}
		name, resAppID, value := describeRole(o, a.ResourceID, a.AppRoleID)
		seen[resAppID+"/"+value] = true
		// A copy: the caller revokes and deletes from o.Assigned as it goes, which moves the elements.
		out = append(out, unexpectedConsent{assignment: &a, message: fmt.Sprintf(
			"the service principal holds %s (app role assignment %s), which level %d does not include", name, a.ID, s.PermissionLevel)})
	}
	if r := o.SignIn; r != nil && r.State == SignInAccepted {
		for resAppID, roles := range r.Roles {
			for _, role := range roles {
				if seen[resAppID+"/"+role] || slices.ContainsFunc(want, func(p Permission) bool { return p.ResourceAppID == resAppID && p.Value == role }) {
					continue
				}
				seen[resAppID+"/"+role] = true
				out = append(out, unexpectedConsent{message: fmt.Sprintf(
					"the token for %s holds %s in its roles claim, which level %d does not include", resourceName(resAppID), role, s.PermissionLevel)})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].message < out[j].message })
	return out
}

// describeRole names an app role of a resource service principal as well as the observation allows.
func describeRole(o *Observation, resourceID, roleID string) (name, resourceAppID, value string) {
	for appID, sp := range o.Resource {
		if sp == nil || !strings.EqualFold(sp.ID, resourceID) {
			continue
		}
		for _, r := range sp.AppRoles {
			if strings.EqualFold(r.ID, roleID) {
				return resourceName(appID) + " " + r.Value, appID, r.Value
			}
		}
		return fmt.Sprintf("%s app role %s", resourceName(appID), roleID), appID, roleID
	}
	return fmt.Sprintf("app role %s of service principal %s", roleID, resourceID), resourceID, roleID
}

// resourceName is a resource's name from the permission table, or its appId.
func resourceName(appID string) string {
	for _, p := range PermissionsFor(maxLevel) {
		if p.ResourceAppID == appID {
			return p.Resource
		}
	}
	return "resource " + appID
}

// Compliant is true when no finding has severity error.
func Compliant(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == SeverityError {
			return false
		}
	}
	return true
}

// sortVersions orders versions oldest first.
func sortVersions(vs []SecretVersion) {
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].Created.Before(vs[j].Created) })
}

// human writes a duration in days or hours, as the settings are given.
func human(d time.Duration) string {
	plural := func(n time.Duration, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return plural(d/(24*time.Hour), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(d/time.Hour, "hour")
	}
	return d.Round(time.Second).String()
}
