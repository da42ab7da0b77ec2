// Package appreg is the domain of the function app: SCEPman's app registration as it should be (the
// desired state), the tenant as it is (an observation), the findings that tell them apart, and the engine
// that plans and applies the changes. It speaks only its own small types; Microsoft Graph and Key Vault sit
// behind the Directory and Vault interfaces declared here and implemented by the adapter packages graph and
// keyvault. Nothing in this package imports an Azure SDK.
package appreg

import (
	"context"
	"time"
)

// Well-known identifiers of the contract.
const (
	GraphAppID     = "00000003-0000-0000-c000-000000000000" // Microsoft Graph
	IntuneAPIAppID = "c161e42e-d4df-4a3d-9b42-e7a3c31f59d4" // Microsoft Intune API
	UserReadID     = "e1fe6dd8-ba31-4d61-89e7-88639da4683d" // delegated User.Read, added by the portal
	AudienceMyOrg  = "AzureADMyOrg"
	AccessRole     = "Role"  // application permission
	AccessScope    = "Scope" // delegated permission
)

// Access is one entry of a resourceAccess list.
type Access struct {
	ID   string // permission id (an app role id for Role, an oauth2PermissionScope id for Scope)
	Type string // AccessRole or AccessScope
}

// ResourceAccess is one entry of an application's requiredResourceAccess.
type ResourceAccess struct {
	ResourceAppID string
	Access        []Access
}

// PasswordCredential is a client secret of an application, without its value.
type PasswordCredential struct {
	KeyID       string
	DisplayName string
	Hint        string
	Start       time.Time
	End         time.Time
}

// Application is the part of a Graph application object this app reads.
type Application struct {
	ObjectID               string
	AppID                  string
	DisplayName            string
	UniqueName             string
	SignInAudience         string
	RequiredResourceAccess []ResourceAccess
	Passwords              []PasswordCredential
}

// AppSpec is what UpsertApplication writes.
type AppSpec struct {
	DisplayName            string
	SignInAudience         string
	RequiredResourceAccess []ResourceAccess
}

// AppRole is an application permission that a resource service principal offers.
type AppRole struct {
	ID                 string
	Value              string
	Enabled            bool
	AllowedMemberTypes []string
}

// ServicePrincipal is the part of a Graph service principal this app reads.
type ServicePrincipal struct {
	ID          string
	AppID       string
	DisplayName string
	AppRoles    []AppRole
}

// AppRoleAssignment is an admin consent to one application permission.
type AppRoleAssignment struct {
	ID          string
	PrincipalID string // the client's service principal
	ResourceID  string // the resource's service principal
	AppRoleID   string
}

// SecretVersion is one version of a Key Vault secret, without its value.
type SecretVersion struct {
	ID          string // versioned id: https://{vault}/secrets/{name}/{version}
	Name        string
	Version     string
	Enabled     bool
	ContentType string
	Created     time.Time // zero when unknown
	Expires     time.Time // zero when the version has no exp
	Tags        map[string]string
	// Value is the secret's value, when the read returned it (Vault.Secret): it never prints or logs.
	Value SecretValue
}

// Tag names the contract puts on every stored secret.
const (
	TagAppID = "appId"
	TagKeyID = "keyId"
)

// KeyID is the keyId tag: the password credential whose secretText this version holds.
func (v SecretVersion) KeyID() string { return v.Tags[TagKeyID] }

// NewSecret is what SetSecret stores as a new version.
type NewSecret struct {
	Name        string
	Value       string
	ContentType string
	Expires     time.Time
	Tags        map[string]string
}

// Directory is Microsoft Graph as the engine needs it. Implementations classify every failure into the
// sentinels of errors.go (wrapped in a *ServiceError) and never return an SDK type.
type Directory interface {
	// TenantID is the directory (tenant) id of the identity the app runs as.
	TenantID(ctx context.Context) (string, error)
	// Application reads the application by uniqueName; ErrNotFound when there is none.
	Application(ctx context.Context, uniqueName string) (Application, error)
	// UpsertApplication creates (created=true) or updates the application with that uniqueName.
	UpsertApplication(ctx context.Context, uniqueName string, spec AppSpec) (created bool, err error)
	// AddPassword adds a client secret and returns it with its value, which Graph shows only once.
	AddPassword(ctx context.Context, objectID, displayName string, end time.Time) (PasswordCredential, string, error)
	// RemovePassword removes a client secret; ErrNotFound when the application lacks it.
	RemovePassword(ctx context.Context, objectID, keyID string) error
	// ServicePrincipal reads the service principal of an appId, with its app roles; ErrNotFound when absent.
	ServicePrincipal(ctx context.Context, appID string) (ServicePrincipal, error)
	// CreateServicePrincipal creates the service principal of an appId; ErrAlreadyExists when there is one.
	CreateServicePrincipal(ctx context.Context, appID string) (ServicePrincipal, error)
	// AppRoleAssignments lists the app role assignments granted to a service principal (all pages).
	AppRoleAssignments(ctx context.Context, principalID string) ([]AppRoleAssignment, error)
	// AssignAppRole grants an app role; ErrAlreadyExists when it is already granted.
	AssignAppRole(ctx context.Context, principalID, resourceID, appRoleID string) (AppRoleAssignment, error)
	// RemoveAppRoleAssignment revokes an app role assignment granted to a service principal;
	// ErrNotFound when it is not there.
	RemoveAppRoleAssignment(ctx context.Context, principalID, assignmentID string) error
	// MaxPasswordLifetime is the longest password lifetime the tenant's default app management policy
	// allows, 0 when it sets none; ErrForbidden when the identity may not read the policy.
	MaxPasswordLifetime(ctx context.Context) (time.Duration, error)
	// Snapshot reads what q asks for in one round trip (a Graph JSON batch when it holds more than one
	// read; a paged list may add requests for its further pages). An application or service principal
	// that does not exist is nil in the result, not an error; the assignments of a service principal
	// that does not exist are ErrNotFound.
	Snapshot(ctx context.Context, q SnapshotQuery) (Snapshot, error)
}

// SnapshotQuery says what Directory.Snapshot reads: reads that need nothing from one another, so that
// they can share one request.
type SnapshotQuery struct {
	UniqueName string   // the application with this uniqueName ("" : none)
	AppID      string   // the service principal of this appId, with its app roles ("": none)
	SPID       string   // the app role assignments granted to the service principal with this id ("": none)
	Resources  []string // the service principals of these appIds, with their app roles
}

// Snapshot is what Directory.Snapshot read. Fields that the query did not ask for are zero.
type Snapshot struct {
	App       *Application                 // nil: no application with the uniqueName
	SP        *ServicePrincipal            // nil: no service principal of the appId
	Assigned  []AppRoleAssignment          // granted to SPID
	Resources map[string]*ServicePrincipal // by appId; nil value: absent from the tenant
}

// Vault is Key Vault's secrets API as the engine needs it.
type Vault interface {
	// Secret reads the current version of a secret, with its value (for the sign-in check only);
	// ErrNotFound when absent (or deleted), ErrSecretDisabled when the current version is disabled.
	Secret(ctx context.Context, name string) (SecretVersion, error)
	// SecretVersions lists every version of a secret (all pages); ErrNotFound or empty when absent.
	SecretVersions(ctx context.Context, name string) ([]SecretVersion, error)
	// SetSecret stores a new version, which becomes the current one; ErrSecretDeleted while the secret
	// is deleted but recoverable, ErrRecovering while its recovery runs.
	SetSecret(ctx context.Context, s NewSecret) (SecretVersion, error)
	// DeletedSecret reads a deleted-but-recoverable secret (soft delete); ErrNotFound when there is none.
	DeletedSecret(ctx context.Context, name string) (DeletedSecret, error)
	// RecoverDeletedSecret starts the recovery of a deleted secret with all its versions. Key Vault
	// finishes it in the background: until then reads answer ErrNotFound and writes ErrRecovering.
	RecoverDeletedSecret(ctx context.Context, name string) error
}

// DeletedSecret is a soft-deleted Key Vault secret, without its value.
type DeletedSecret struct {
	ID             string // the id of its current version when it was deleted
	RecoveryID     string // https://{vault}/deletedsecrets/{name}
	DeletedOn      time.Time
	ScheduledPurge time.Time // zero when unknown
	Tags           map[string]string
}
