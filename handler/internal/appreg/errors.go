package appreg

import (
	"errors"
	"fmt"
	"time"
)

// Sentinels into which the adapters classify every failure, once, by status and error code.
var (
	ErrNotFound        = errors.New("not found")
	ErrAlreadyExists   = errors.New("already exists")
	ErrForbidden       = errors.New("forbidden")
	ErrThrottled       = errors.New("throttled")
	ErrUnavailable     = errors.New("service unavailable")
	ErrNotReplicated   = errors.New("a referenced object is not replicated yet")
	ErrConcurrency     = errors.New("concurrent change to the same object")
	ErrLifetimePolicy  = errors.New("credential lifetime refused by the tenant's app management policy")
	ErrUniqueNameTaken = errors.New("uniqueName is held by a deleted application")
	ErrRejected        = errors.New("request rejected")

	// ErrSecretDeleted is Key Vault's 409 ObjectIsDeletedButRecoverable: the secret is soft-deleted and
	// its name cannot be written until it is recovered (or purged).
	ErrSecretDeleted = errors.New("the secret is deleted but recoverable")
	// ErrRecovering is Key Vault's 409 ObjectIsBeingRecovered: a recovery is under way; transient.
	ErrRecovering = errors.New("the secret is being recovered")
	// ErrSecretDisabled is Key Vault's 403 with inner code SecretDisabled: the version read is disabled.
	ErrSecretDisabled = errors.New("the secret's version is disabled")
	// ErrPasswordsForbidden is Graph's 400 CredentialTypeNotAllowedAsPerAppPolicy: the tenant's app
	// management policy forbids password credentials altogether.
	ErrPasswordsForbidden = errors.New("the tenant's app management policy forbids client secrets (password credentials)")
	// ErrIdentity is a failure of the managed identity endpoint itself (no identity enabled, a wrong
	// AZURE_CLIENT_ID, an endpoint that cannot be reached): no service was asked anything.
	ErrIdentity = errors.New("the managed identity could not get a token")
	// ErrSignInRefused is the token service refusing the application's sign-in with the stored secret
	// (AADSTS7000215 wrong or not yet accepted, AADSTS7000222 expired, AADSTS700016 no such application,
	// AADSTS7000112 application disabled); the ServiceError's Code is the AADSTS code.
	ErrSignInRefused = errors.New("the token service refused the sign-in")
	// ErrNeedsFederation is an instance in a tenant other than the managed identity's own while
	// APPREG_FEDERATED_APP_ID is unset: a setting is missing.
	ErrNeedsFederation = errors.New("another tenant needs APPREG_FEDERATED_APP_ID")
)

// Service names used in ServiceError.
const (
	ServiceGraph    = "Microsoft Graph"
	ServiceKeyVault = "Key Vault"
	ServiceIdentity = "managed identity"
	ServiceSignIn   = "Entra ID token service"
)

// ServiceError is a failure answered by Graph or Key Vault, classified by the adapter.
type ServiceError struct {
	Service string // ServiceGraph or ServiceKeyVault
	Kind    error  // one of the sentinels above
	Status  int    // HTTP status, 0 when no answer came
	Code    string // the service's error code
	Message string // the service's message (never holds a secret)
	// Need names what the managed identity lacks when Kind is ErrForbidden: a Graph application
	// permission, or a Key Vault role.
	Need string
	// Advice names the cause of a failure and what to do about it when the service's answer says more
	// than a missing permission (an application the identity does not own, a vault firewall, a policy):
	// written after the message instead of Need.
	Advice string
	// RetryAfter is how long the service asked to wait before the next try (its Retry-After), 0 when it
	// did not say or the SDK already waited. The engine's retries wait at least that long.
	RetryAfter time.Duration
}

func (e *ServiceError) Error() string {
	s := e.Service
	if e.Status != 0 {
		s += fmt.Sprintf(" answered %d", e.Status)
	}
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	switch {
	case e.Advice != "":
		s += " (" + e.Advice + ")"
	case e.Need != "":
		s += fmt.Sprintf(" (the function's managed identity needs %s)", e.Need)
	}
	return s
}

func (e *ServiceError) Unwrap() error { return e.Kind }

// IsTransient tells whether an error is worth retrying: throttling, unavailability, replication delay,
// concurrency violations and a Key Vault recovery under way.
func IsTransient(err error) bool {
	return errors.Is(err, ErrThrottled) || errors.Is(err, ErrUnavailable) ||
		errors.Is(err, ErrNotReplicated) || errors.Is(err, ErrConcurrency) || errors.Is(err, ErrRecovering)
}
