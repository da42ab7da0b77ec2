package emulator

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// State is the emulated tenant's directory and vault. Snapshot returns a deep copy; Mutate hands the live
// state to a function under the tenant's lock. Times are UTC, truncated to seconds.
//
// The lookup methods return pointers into the State's slices: inside Mutate they change the live state,
// on a Snapshot only the copy.
type State struct {
	Applications []Application
	// DeletedApplications are soft-deleted applications (deletedItems): their uniqueName stays taken.
	DeletedApplications []Application
	ServicePrincipals   []ServicePrincipal
	AppRoleAssignments  []AppRoleAssignment
	Secrets             []Secret
	// DeletedSecrets are soft-deleted Key Vault secrets (GET /deletedsecrets): their name cannot be reused
	// until they are recovered or purged.
	DeletedSecrets []DeletedSecret
}

// Application is a Graph application object.
type Application struct {
	ID                     string // object id
	AppID                  string // client id
	DisplayName            string
	UniqueName             string
	SignInAudience         string
	Description            string
	Notes                  string
	Tags                   []string
	IdentifierURIs         []string
	RequiredResourceAccess []RequiredResourceAccess
	PasswordCredentials    []PasswordCredential
	// FederatedIdentityCredentials are the external tokens the application accepts as client assertions
	// (RegisterFederatedApp: the managed identity's).
	FederatedIdentityCredentials []FederatedIdentityCredential
	Owners                       []string // object ids of the owners (the creator)
	CreatedDateTime              time.Time
	DeletedDateTime              time.Time // set on DeletedApplications
	// VisibleAt is when the object has replicated (wall clock); zero: visible.
	VisibleAt time.Time
}

// RequiredResourceAccess is one entry of an application's requiredResourceAccess.
type RequiredResourceAccess struct {
	ResourceAppID  string
	ResourceAccess []ResourceAccess
}

// ResourceAccess is one permission of a RequiredResourceAccess.
type ResourceAccess struct {
	ID   string
	Type string // "Role" or "Scope"
}

// PasswordCredential is a client secret of an application.
type PasswordCredential struct {
	KeyID         string
	DisplayName   string
	Hint          string
	SecretText    string // what addPassword returned (Graph never shows it again)
	StartDateTime time.Time
	EndDateTime   time.Time
	VisibleAt     time.Time
	// AddedAt is when addPassword added it (wall clock), for the sign-in acceptance delay; zero: long ago.
	AddedAt time.Time
}

// FederatedIdentityCredential is a federated identity credential of an application: a token whose iss
// and sub are Issuer and Subject and whose aud is one of Audiences signs the application in (matched
// case-sensitively, as Entra does).
type FederatedIdentityCredential struct {
	ID          string
	Name        string
	Issuer      string
	Subject     string
	Audiences   []string
	Description string
}

// ServicePrincipal is a Graph service principal.
type ServicePrincipal struct {
	ID                     string
	AppID                  string
	DisplayName            string
	ServicePrincipalType   string // "Application" or "ManagedIdentity"
	AppOwnerOrganizationID string
	AccountEnabled         bool
	Tags                   []string
	Notes                  string
	AppRoles               []AppRole
	Owners                 []string
	// ServicePrincipalNames are the names a token request may use for the resource besides its appId
	// (identifier URIs such as https://graph.microsoft.com).
	ServicePrincipalNames []string
	VisibleAt             time.Time
}

// AppRole is an application permission a service principal offers.
type AppRole struct {
	ID                 string
	Value              string
	DisplayName        string
	Description        string
	AllowedMemberTypes []string
	IsEnabled          bool
}

// AppRoleAssignment grants an app role of a resource service principal to a principal.
type AppRoleAssignment struct {
	ID                   string
	AppRoleID            string
	PrincipalID          string
	PrincipalDisplayName string
	PrincipalType        string
	ResourceID           string
	ResourceDisplayName  string
	CreatedDateTime      time.Time
	VisibleAt            time.Time
}

// Secret is a Key Vault secret with its versions, oldest first: the last one is the current version.
type Secret struct {
	Name     string
	Versions []SecretVersion
}

// DeletedSecret is a soft-deleted Key Vault secret with all its versions, oldest first.
type DeletedSecret struct {
	Name               string
	Versions           []SecretVersion
	DeletedDate        time.Time
	ScheduledPurgeDate time.Time
	// RecoveredAt is set while a recovery runs: when it completes (wall clock). The secret moves back to
	// Secrets at the first Key Vault request (or test call) after it.
	RecoveredAt time.Time
}

// SecretVersion is one version of a Key Vault secret.
type SecretVersion struct {
	Version     string // 32 lowercase hex digits
	Value       string
	ContentType string
	Enabled     bool
	NotBefore   time.Time // zero: none
	Expires     time.Time // zero: none
	Created     time.Time
	Updated     time.Time
	Tags        map[string]string
}

// Application returns the active application with that uniqueName (case-insensitive), or nil.
func (s State) Application(uniqueName string) *Application {
	for i := range s.Applications {
		if strings.EqualFold(s.Applications[i].UniqueName, uniqueName) {
			return &s.Applications[i]
		}
	}
	return nil
}

// ApplicationByID returns the active application with that object id, or nil.
func (s State) ApplicationByID(id string) *Application {
	for i := range s.Applications {
		if strings.EqualFold(s.Applications[i].ID, id) {
			return &s.Applications[i]
		}
	}
	return nil
}

// ApplicationByAppID returns the active application with that client id, or nil.
func (s State) ApplicationByAppID(appID string) *Application {
	for i := range s.Applications {
		if strings.EqualFold(s.Applications[i].AppID, appID) {
			return &s.Applications[i]
		}
	}
	return nil
}

// ServicePrincipalByAppID returns the service principal of a client id, or nil.
func (s State) ServicePrincipalByAppID(appID string) *ServicePrincipal {
	for i := range s.ServicePrincipals {
		if strings.EqualFold(s.ServicePrincipals[i].AppID, appID) {
			return &s.ServicePrincipals[i]
		}
	}
	return nil
}

// ServicePrincipalByID returns the service principal with that object id, or nil.
func (s State) ServicePrincipalByID(id string) *ServicePrincipal {
	for i := range s.ServicePrincipals {
		if strings.EqualFold(s.ServicePrincipals[i].ID, id) {
			return &s.ServicePrincipals[i]
		}
	}
	return nil
}

// AssignmentsOf returns the app role assignments granted to a principal (copies).
func (s State) AssignmentsOf(principalID string) []AppRoleAssignment {
	var out []AppRoleAssignment
	for _, a := range s.AppRoleAssignments {
		if strings.EqualFold(a.PrincipalID, principalID) {
			out = append(out, a)
		}
	}
	return out
}

// Secret returns the Key Vault secret with that name (case-insensitive, as Key Vault), or nil.
func (s State) Secret(name string) *Secret {
	for i := range s.Secrets {
		if strings.EqualFold(s.Secrets[i].Name, name) {
			return &s.Secrets[i]
		}
	}
	return nil
}

// Current returns the current (latest) version, or nil when there is none.
func (s *Secret) Current() *SecretVersion {
	if s == nil || len(s.Versions) == 0 {
		return nil
	}
	return &s.Versions[len(s.Versions)-1]
}

// Version returns the version with that id, or nil.
func (s *Secret) Version(version string) *SecretVersion {
	if s == nil {
		return nil
	}
	for i := range s.Versions {
		if strings.EqualFold(s.Versions[i].Version, version) {
			return &s.Versions[i]
		}
	}
	return nil
}

// PasswordCredential returns the credential with that keyId, or nil.
func (a *Application) PasswordCredential(keyID string) *PasswordCredential {
	for i := range a.PasswordCredentials {
		if strings.EqualFold(a.PasswordCredentials[i].KeyID, keyID) {
			return &a.PasswordCredentials[i]
		}
	}
	return nil
}

// clone returns a deep copy of s.
func (s *State) clone() State {
	c := State{
		Applications:        cloneApps(s.Applications),
		DeletedApplications: cloneApps(s.DeletedApplications),
		ServicePrincipals:   make([]ServicePrincipal, len(s.ServicePrincipals)),
		AppRoleAssignments:  slices.Clone(s.AppRoleAssignments),
		Secrets:             make([]Secret, len(s.Secrets)),
	}
	for i, sp := range s.ServicePrincipals {
		sp.Tags = slices.Clone(sp.Tags)
		sp.Owners = slices.Clone(sp.Owners)
		sp.ServicePrincipalNames = slices.Clone(sp.ServicePrincipalNames)
		sp.AppRoles = slices.Clone(sp.AppRoles)
		for j := range sp.AppRoles {
			sp.AppRoles[j].AllowedMemberTypes = slices.Clone(sp.AppRoles[j].AllowedMemberTypes)
		}
		c.ServicePrincipals[i] = sp
	}
	for i, sec := range s.Secrets {
		sec.Versions = slices.Clone(sec.Versions)
		for j := range sec.Versions {
			sec.Versions[j].Tags = maps.Clone(sec.Versions[j].Tags)
		}
		c.Secrets[i] = sec
	}
	if s.DeletedSecrets != nil {
		c.DeletedSecrets = make([]DeletedSecret, len(s.DeletedSecrets))
		for i, d := range s.DeletedSecrets {
			d.Versions = slices.Clone(d.Versions)
			for j := range d.Versions {
				d.Versions[j].Tags = maps.Clone(d.Versions[j].Tags)
			}
			c.DeletedSecrets[i] = d
		}
	}
	return c
}

func cloneApps(apps []Application) []Application {
	if apps == nil {
		return nil
	}
	out := make([]Application, len(apps))
	for i, a := range apps {
		a.Tags = slices.Clone(a.Tags)
		a.IdentifierURIs = slices.Clone(a.IdentifierURIs)
		a.Owners = slices.Clone(a.Owners)
		a.PasswordCredentials = slices.Clone(a.PasswordCredentials)
		a.FederatedIdentityCredentials = slices.Clone(a.FederatedIdentityCredentials)
		for j := range a.FederatedIdentityCredentials {
			a.FederatedIdentityCredentials[j].Audiences = slices.Clone(a.FederatedIdentityCredentials[j].Audiences)
		}
		a.RequiredResourceAccess = slices.Clone(a.RequiredResourceAccess)
		for j := range a.RequiredResourceAccess {
			a.RequiredResourceAccess[j].ResourceAccess = slices.Clone(a.RequiredResourceAccess[j].ResourceAccess)
		}
		out[i] = a
	}
	return out
}

// normalize fills what a Mutate function left empty: ids, versions, and UTC times.
func (s *State) normalize() {
	fixApp := func(a *Application) {
		if a.ID == "" {
			a.ID = NewGUID()
		}
		if a.AppID == "" {
			a.AppID = NewGUID()
		}
		for j := range a.PasswordCredentials {
			p := &a.PasswordCredentials[j]
			if p.KeyID == "" {
				p.KeyID = NewGUID()
			}
			if p.Hint == "" && len(p.SecretText) >= 3 {
				p.Hint = p.SecretText[:3]
			}
			p.StartDateTime = utcSeconds(p.StartDateTime)
			p.EndDateTime = utcSeconds(p.EndDateTime)
		}
		for j := range a.FederatedIdentityCredentials {
			if a.FederatedIdentityCredentials[j].ID == "" {
				a.FederatedIdentityCredentials[j].ID = NewGUID()
			}
		}
		a.CreatedDateTime = utcSeconds(a.CreatedDateTime)
		a.DeletedDateTime = utcSeconds(a.DeletedDateTime)
	}
	for i := range s.Applications {
		fixApp(&s.Applications[i])
	}
	for i := range s.DeletedApplications {
		fixApp(&s.DeletedApplications[i])
	}
	for i := range s.ServicePrincipals {
		if s.ServicePrincipals[i].ID == "" {
			s.ServicePrincipals[i].ID = NewGUID()
		}
	}
	for i := range s.AppRoleAssignments {
		a := &s.AppRoleAssignments[i]
		if a.ID == "" {
			a.ID = newAssignmentID()
		}
		a.CreatedDateTime = utcSeconds(a.CreatedDateTime)
	}
	for i := range s.Secrets {
		for j := range s.Secrets[i].Versions {
			v := &s.Secrets[i].Versions[j]
			if v.Version == "" {
				v.Version = newSecretVersion()
			}
			v.NotBefore, v.Expires = utcSeconds(v.NotBefore), utcSeconds(v.Expires)
			v.Created, v.Updated = utcSeconds(v.Created), utcSeconds(v.Updated)
		}
	}
}

// utcSeconds returns t in UTC truncated to whole seconds (zero stays zero).
func utcSeconds(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Second)
}

// visible tells whether an object created with that VisibleAt has replicated.
func visible(at time.Time) bool { return at.IsZero() || !time.Now().Before(at) }
