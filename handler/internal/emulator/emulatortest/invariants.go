package emulatortest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/emulator"
)

// The contract's names the oracle checks against (../shared/spec/interface.md).
const (
	defaultUniqueName = "scepman"
	defaultSecretName = "AppConfig--AuthConfig--ApplicationKey"
	defaultOverlap    = 48 * time.Hour // APPREG_SECRET_OVERLAP_HOURS
	tagKeyID          = "keyId"        // the Key Vault tag naming the credential
	tagAppID          = "appId"        // the Key Vault tag naming the application
	audienceMyOrg     = "AzureADMyOrg"
	accessRole        = "Role" // an application permission in requiredResourceAccess
)

// Permission is an application permission the application must request and hold exactly once.
type Permission struct {
	ResourceAppID string // the resource's appId
	AppRoleID     string // the app role's id
	Value         string // the app role's value, for messages
}

// Level0 is the contract's permission level 0, the default: Graph Directory.Read.All and the Intune
// API's scep_challenge_provider.
var Level0 = []Permission{
	{emulator.GraphAppID, "7ab1d382-f21e-4acd-a863-ba3e13f7da61", "Directory.Read.All"},
	{emulator.IntuneAPIAppID, "39d724e8-6a34-4930-9a36-364082c35716", "scep_challenge_provider"},
}

// Phase is how far a tenant must have come when it is checked.
type Phase int

const (
	// Always holds at every moment, also right after a failed or killed run: the application and the
	// secret exist (unless Want.NoneYet); the current Key Vault version names a credential the application
	// holds, with that credential's secretText as value, its endDateTime as exp, and the application's
	// appId as tag. While the secret is soft-deleted, the same holds for the current version of the
	// deleted secret: what a recovery brings back works. And, when Want.Now is set, no credential that a
	// replaced version names was removed inside its overlap (Want.Now before the successor's creation
	// plus the overlap): whoever still holds it keeps working.
	Always Phase = iota
	// Converged adds the desired state after a successful run: one application with the uniqueName, in
	// the organisation's audience, whose requiredResourceAccess is exactly the permissions; one service
	// principal; exactly one app role assignment per permission and none other; a secret, live (not
	// soft-deleted), whose current version is enabled; and what Want asks exactly (Credentials,
	// Versions, AllNamed).
	Converged
	// Cleaned adds, after a rotation that ran past the orphan rule: no credential that no version names
	// is older than Want.OrphanAge, and no replaced credential outlived its overlap. It needs Want.Now and
	// Want.OrphanAge.
	Cleaned
)

func (p Phase) String() string {
	switch p {
	case Always:
		return "always"
	case Converged:
		return "converged"
	case Cleaned:
		return "cleaned"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// Want is the desired state the invariants are checked against. The zero value is the contract's
// defaults at level 0, without the rules that need a clock.
type Want struct {
	UniqueName  string        // "" -> "scepman"
	SecretName  string        // "" -> "AppConfig--AuthConfig--ApplicationKey"
	Permissions []Permission  // nil -> Level0
	Overlap     time.Duration // 0 -> 48 h
	// OrphanAge is how old a credential that no version names may become before a rotation removes it
	// (appreg.OrphanAge). Cleaned needs it.
	OrphanAge time.Duration
	// Now is the business clock at the check. Zero leaves out the rules that need it (the overlap; Cleaned
	// cannot be checked without it): for tests that change the tenant by hand, as an admin would.
	Now time.Time
	// NoneYet says that the application or the secret may not exist yet (a first provision cut short):
	// under Always their absence is then no violation. Converged and Cleaned always need both.
	NoneYet bool
	// Credentials and Versions, when positive, are the exact number of password credentials the
	// application holds and of versions the secret has (Converged and Cleaned).
	Credentials, Versions int
	// AllNamed: every credential of the application is named by a version of the secret, none left by a
	// run cut short (Converged and Cleaned).
	AllNamed bool
}

func (w Want) defaults() Want {
	if w.UniqueName == "" {
		w.UniqueName = defaultUniqueName
	}
	if w.SecretName == "" {
		w.SecretName = defaultSecretName
	}
	if w.Permissions == nil {
		w.Permissions = Level0
	}
	if w.Overlap == 0 {
		w.Overlap = defaultOverlap
	}
	return w
}

// Verify checks the tenant's state now (Check) and fails the test for every violation, each prefixed
// with step; it returns them so prefixed, for a table.
func Verify(t testing.TB, step string, ten *emulator.Tenant, w Want, phase Phase) []string {
	t.Helper()
	var out []string
	for _, v := range Check(ten.Snapshot(), w, phase) {
		out = append(out, step+": "+v)
		t.Error(step + ": " + v)
	}
	return out
}

// Check returns every invariant of the phase that the state breaks; none when it holds.
func Check(s emulator.State, w Want, phase Phase) []string {
	w = w.defaults()
	c := &checker{s: s, w: w, phase: phase}
	c.app = s.Application(w.UniqueName)
	c.sec = s.Secret(w.SecretName)
	c.cur = c.sec.Current()
	c.deleted = deletedSecret(s, w.SecretName)
	c.always()
	if phase == Always {
		return c.v
	}
	c.converged()
	if phase == Converged || c.app == nil || c.sec == nil {
		return c.v
	}
	c.cleaned()
	return c.v
}

// checker holds what one Check found, and its violations.
type checker struct {
	s       emulator.State
	w       Want
	phase   Phase
	app     *emulator.Application
	sec     *emulator.Secret
	cur     *emulator.SecretVersion
	deleted *emulator.DeletedSecret
	v       []string
}

func (c *checker) bad(format string, args ...any) { c.v = append(c.v, fmt.Sprintf(format, args...)) }

// always: the current version (of the live secret, else of the deleted one) names a credential the
// application holds, and no replaced version's credential went inside its overlap.
func (c *checker) always() {
	versions := []emulator.SecretVersion(nil)
	switch {
	case c.cur != nil:
		versions = c.sec.Versions
		c.current("current version", c.cur)
	case c.deleted != nil && len(c.deleted.Versions) > 0:
		versions = c.deleted.Versions
		c.current("current version of the deleted secret", &c.deleted.Versions[len(c.deleted.Versions)-1])
	case c.phase == Always && !c.w.NoneYet: // Converged says it its own way
		c.bad("Key Vault holds no secret %s (Want.NoneYet says when none is expected yet)", c.w.SecretName)
		if c.app == nil {
			c.bad("there is no application %q (Want.NoneYet says when none is expected yet)", c.w.UniqueName)
		}
	}
	for i := 0; c.app != nil && !c.w.Now.IsZero() && i+1 < len(versions); i++ {
		keyID, next := versions[i].Tags[tagKeyID], versions[i+1]
		if keyID == "" || strings.EqualFold(next.Tags[tagKeyID], keyID) || !c.w.Now.Before(next.Created.Add(c.w.Overlap)) {
			continue
		}
		if appCred(c.app, keyID) == nil {
			c.bad("credential %s was removed inside its overlap: version %s names it, replaced %s before the check", keyID, versions[i].Version, c.w.Now.Sub(next.Created))
		}
	}
}

// current checks one current version against the credential it names.
func (c *checker) current(what string, cur *emulator.SecretVersion) {
	keyID := cur.Tags[tagKeyID]
	switch cred := appCred(c.app, keyID); {
	case c.app == nil:
		c.bad("Key Vault holds a %s (keyId %s) but there is no application %q", what, keyID, c.w.UniqueName)
	case cred == nil:
		c.bad("the %s names keyId %s, which the application lacks", what, keyID)
	case cur.Value != cred.SecretText:
		c.bad("the %s does not hold the secretText of credential %s", what, keyID)
	case !cur.Expires.Equal(cred.EndDateTime):
		c.bad("the %s's exp %s is not credential %s's endDateTime %s", what, cur.Expires, keyID, cred.EndDateTime)
	case cur.Tags[tagAppID] != c.app.AppID:
		c.bad("the %s's appId tag %q is not the application's %s", what, cur.Tags[tagAppID], c.app.AppID)
	}
}

// converged: the desired state of the permissions, a live and enabled secret, and Want's exact counts.
func (c *checker) converged() {
	apps := 0
	for _, a := range c.s.Applications {
		if strings.EqualFold(a.UniqueName, c.w.UniqueName) {
			apps++
		}
	}
	switch {
	case apps != 1:
		c.bad("%d applications with uniqueName %q, want 1", apps, c.w.UniqueName)
	case c.app.SignInAudience != audienceMyOrg:
		c.bad("signInAudience %q, want %s", c.app.SignInAudience, audienceMyOrg)
	}
	if c.app != nil {
		c.permissions()
	}
	switch {
	case c.cur == nil && c.deleted != nil:
		c.bad("Key Vault secret %s is deleted (soft delete) and was not recovered", c.w.SecretName)
	case c.cur == nil:
		c.bad("Key Vault holds no secret %s", c.w.SecretName)
	case !c.cur.Enabled:
		c.bad("the current version of secret %s is disabled: nobody can read it", c.w.SecretName)
	}
	if n := c.w.Credentials; n > 0 && c.app != nil && len(c.app.PasswordCredentials) != n {
		c.bad("%d credentials on the application, want %d", len(c.app.PasswordCredentials), n)
	}
	if n := c.w.Versions; n > 0 && c.sec != nil && len(c.sec.Versions) != n {
		c.bad("%d versions of secret %s, want %d", len(c.sec.Versions), c.w.SecretName, n)
	}
	if u := Unnamed(c.s, c.w); c.w.AllNamed && len(u) > 0 {
		c.bad("credentials that no version names: %v", u)
	}
}

// permissions: requiredResourceAccess exactly the permissions, one service principal, one assignment per
// permission and none other.
func (c *checker) permissions() {
	var got, want []string
	for _, r := range c.app.RequiredResourceAccess {
		for _, a := range r.ResourceAccess {
			got = append(got, r.ResourceAppID+"/"+a.ID+"/"+a.Type)
		}
	}
	for _, p := range c.w.Permissions {
		want = append(want, p.ResourceAppID+"/"+p.AppRoleID+"/"+accessRole)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		c.bad("requiredResourceAccess %v, want exactly %v", got, want)
	}
	sps := 0
	for _, sp := range c.s.ServicePrincipals {
		if strings.EqualFold(sp.AppID, c.app.AppID) {
			sps++
		}
	}
	if sps != 1 {
		c.bad("%d service principals of the application, want 1", sps)
	}
	sp := c.s.ServicePrincipalByAppID(c.app.AppID)
	if sp == nil {
		return
	}
	perRole := map[string]int{}
	for _, a := range c.s.AssignmentsOf(sp.ID) {
		perRole[a.ResourceID+"/"+a.AppRoleID]++
	}
	for _, p := range c.w.Permissions {
		res := c.s.ServicePrincipalByAppID(p.ResourceAppID)
		if res == nil {
			continue // RESOURCE_UNAVAILABLE: nothing to grant
		}
		key := res.ID + "/" + p.AppRoleID
		if perRole[key] != 1 {
			c.bad("%d app role assignments of %s, want 1", perRole[key], p.Value)
		}
		delete(perRole, key)
	}
	for _, k := range slices.Sorted(maps.Keys(perRole)) {
		c.bad("%d app role assignments outside the permissions (%s)", perRole[k], k)
	}
}

// cleaned: no orphan past the orphan age, no replaced credential past its overlap.
func (c *checker) cleaned() {
	if c.w.Now.IsZero() || c.w.OrphanAge <= 0 {
		c.bad("Want.Now and Want.OrphanAge must be set to check the phase %s", Cleaned)
		return
	}
	curKey := ""
	if c.cur != nil {
		curKey = c.cur.Tags[tagKeyID]
	}
	versions := c.sec.Versions
	for _, cred := range c.app.PasswordCredentials {
		if strings.EqualFold(cred.KeyID, curKey) {
			continue
		}
		named := false
		for i, ver := range versions {
			if !strings.EqualFold(ver.Tags[tagKeyID], cred.KeyID) {
				continue
			}
			named = true
			if i+1 < len(versions) && !c.w.Now.Before(versions[i+1].Created.Add(c.w.Overlap)) &&
				!strings.EqualFold(versions[i+1].Tags[tagKeyID], cred.KeyID) {
				c.bad("credential %s outlived its overlap beside the current one", cred.KeyID)
			}
		}
		if !named && !c.w.Now.Before(cred.StartDateTime.Add(c.w.OrphanAge)) {
			c.bad("credential %s, which no version names, is older than %s", cred.KeyID, c.w.OrphanAge)
		}
	}
}

// deletedSecret returns the soft-deleted secret with that name (recovering or not), or nil.
func deletedSecret(s emulator.State, name string) *emulator.DeletedSecret {
	for i := range s.DeletedSecrets {
		if strings.EqualFold(s.DeletedSecrets[i].Name, name) {
			return &s.DeletedSecrets[i]
		}
	}
	return nil
}

func appCred(app *emulator.Application, keyID string) *emulator.PasswordCredential {
	if app == nil || keyID == "" {
		return nil
	}
	return app.PasswordCredential(keyID)
}

// Unnamed lists the credentials of the application (Want.UniqueName) that no version of the secret
// (Want.SecretName) names; the versions of a soft-deleted secret count: a recovery brings them back.
func Unnamed(s emulator.State, w Want) []string {
	w = w.defaults()
	app := s.Application(w.UniqueName)
	if app == nil {
		return nil
	}
	named := map[string]bool{}
	if sec := s.Secret(w.SecretName); sec != nil {
		for _, v := range sec.Versions {
			named[strings.ToLower(v.Tags[tagKeyID])] = true
		}
	}
	if d := deletedSecret(s, w.SecretName); d != nil {
		for _, v := range d.Versions {
			named[strings.ToLower(v.Tags[tagKeyID])] = true
		}
	}
	var out []string
	for _, c := range app.PasswordCredentials {
		if !named[strings.ToLower(c.KeyID)] {
			out = append(out, c.KeyID)
		}
	}
	return out
}

// Age moves every time of the state back by d, as if d had passed on the business clock: credentials'
// start and end, versions' created, updated, nbf and exp, applications' and assignments' created. Black-box
// tests run the handler on the wall clock; this is how they pass the orphan rule and the overlap.
func Age(t *emulator.Tenant, d time.Duration) {
	t.Mutate(func(s *emulator.State) {
		back := func(tm *time.Time) {
			if !tm.IsZero() {
				*tm = tm.Add(-d)
			}
		}
		for i := range s.Applications {
			a := &s.Applications[i]
			back(&a.CreatedDateTime)
			for j := range a.PasswordCredentials {
				back(&a.PasswordCredentials[j].StartDateTime)
				back(&a.PasswordCredentials[j].EndDateTime)
			}
		}
		for i := range s.AppRoleAssignments {
			back(&s.AppRoleAssignments[i].CreatedDateTime)
		}
		for i := range s.Secrets {
			for j := range s.Secrets[i].Versions {
				v := &s.Secrets[i].Versions[j]
				back(&v.Created)
				back(&v.Updated)
				back(&v.NotBefore)
				back(&v.Expires)
			}
		}
	})
}

// Verdict is a table cell's text for a list of violations.
func Verdict(violations []string) string {
	if len(violations) == 0 {
		return "held"
	}
	return "VIOLATED: " + strings.Join(violations, "; ")
}
