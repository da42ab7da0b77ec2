package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/azure"
)

// Graph error codes that decide a classification on their own.
const (
	codeResourceNotFound     = "Request_ResourceNotFound"
	codeSameKeyValue         = "Request_MultipleObjectsWithSameKeyValue"
	codeConcurrency          = "Directory_ConcurrencyViolation"
	codeLifetimePolicy       = "CredentialInvalidLifetimeAsPerAppPolicy"
	codePasswordsForbidden   = "CredentialTypeNotAllowedAsPerAppPolicy"
	codeObjectConflict       = "ObjectConflict" // in error.details, with the conflicting property as target
	propertyUniqueName       = "uniqueName"
	maxMessageInServiceError = 500
)

// Messages that Graph gives no distinct code for (all come as 400 Request_BadRequest or 404
// Request_ResourceNotFound). They are matched, case-insensitively, on Graph's own error message only,
// never on err.Error(); each phrase is the stable core of the documented message.
const (
	// "Resource '<id>' does not exist or one of its queried reference-property objects are not present."
	msgNotPresent = "does not exist or one of its queried reference-property objects are not present"
	// "The appId '<id>' of the service principal does not reference a valid application object."
	msgNoValidApplication = "does not reference a valid application object"
	// "Permission being assigned already exists on the object"
	msgAlreadyExists = "already exists"
	// "Another object with the same value for property uniqueName already exists."
	msgSameUniqueName = "same value for property uniquename"
	// 403 Authorization_RequestDenied "When using this permission, the backing application of the service
	// principal being created must in the local tenant": under Application.ReadWrite.OwnedBy while the
	// fresh application replicates (hamilton appNotReplicated, azure-cli role/custom.py).
	msgBackingApplication = "backing application of the service principal being created must in the local tenant"
	// 400 "Not a valid reference update.": an app role assignment to a principal that has not replicated
	// (terraform-provider-azuread app_role_assignment_resource.go).
	msgNotValidReference = "not a valid reference update"
)

// Advice for the causes of a 403 that a missing permission does not explain.
const (
	adviceNotOwner = "the function's managed identity holds " + NeedApplicationOwnedBy + " but does not own this application, " +
		"and that permission manages only the applications the identity created. This happens when the function app " +
		"was recreated with a new system-assigned identity: use a user-assigned identity (it outlives the function app), " +
		"or add this identity as an owner of the application (Entra admin center > App registrations > the application > Owners)"
	advicePasswordsForbidden = "the tenant's app management policy forbids client secrets for this application: ask an administrator " +
		"to exempt it from the policy's password restriction (Entra admin center > Enterprise applications > App management policies, " +
		"or the application's own appManagementPolicy)"
)

// graphError is what an SDK error tells about Graph's answer.
type graphError struct {
	status  int
	code    string
	message string
	details []detail
}

type detail struct{ code, target, message string }

// classify turns an error of the SDK into a *appreg.ServiceError, once. The end of the caller's own
// context is returned unclassified. a is the call's recorded answer (may be nil).
func (d *Directory) classify(ctx context.Context, o op, a *answer, err error) error {
	if err == nil {
		return nil
	}
	ge, isOData, ok := inspect(err)
	if a != nil && ge.status == 0 {
		// kiota loses the status when an error body cannot be parsed (e.g. a gateway's HTML page).
		if s, _ := a.get(); s >= 400 {
			ge.status, ok = s, true
		}
	}
	if !ok && isOData {
		// An OData error without a status: never call its Error(), which panics without an error object.
		return &appreg.ServiceError{Service: appreg.ServiceGraph, Kind: appreg.ErrRejected, Code: ge.code,
			Message: clip(ge.message)}
	}
	if !ok {
		se, isFailure := azure.ClassifyFailure(ctx, appreg.ServiceGraph, err)
		if !isFailure {
			return err
		}
		return se
	}
	se := &appreg.ServiceError{Service: appreg.ServiceGraph, Status: ge.status, Code: ge.code, Message: clip(ge.message)}
	se.Kind = kindOf(o, ge)
	d.explain(ctx, o, se)
	return se
}

// explain says what a classified failure means when Graph's code alone does not: for a 403, whether the
// identity's token lacks the permission the operation needs (Need) or holds it, in which case a write to
// an application under Application.ReadWrite.OwnedBy was refused because the identity does not own it.
// The token's roles are the evidence; without them the permission is named as before.
func (d *Directory) explain(ctx context.Context, o op, se *appreg.ServiceError) {
	switch se.Kind {
	case appreg.ErrPasswordsForbidden:
		se.Advice = advicePasswordsForbidden
		return
	case appreg.ErrForbidden:
	default:
		return
	}
	se.Need = o.need
	roles, ok := d.roles(ctx)
	if !ok || o.need == "" || !slices.Contains(roles, o.need) {
		return
	}
	se.Need = ""
	if o.owned && o.need == NeedApplicationOwnedBy && !slices.Contains(roles, roleApplicationReadWriteAll) {
		se.Advice = adviceNotOwner
	}
}

// itemError classifies the failed answer of one request inside a JSON batch: its status and its body,
// an OData error object, by the same table as a failed call. The SDK's retry handler sees only the
// batch's own answer, so an item's Retry-After (Graph throttles each request of a batch on its own) is
// handed to the engine's retries.
func (d *Directory) itemError(ctx context.Context, o op, status int, headers map[string]string, body []byte) error {
	ge := graphError{status: status}
	var env struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Details []struct {
				Code    string `json:"code"`
				Target  string `json:"target"`
				Message string `json:"message"`
			} `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		ge.code, ge.message = env.Error.Code, env.Error.Message
		for _, dt := range env.Error.Details {
			ge.details = append(ge.details, detail{code: dt.Code, target: dt.Target, message: dt.Message})
		}
	}
	se := &appreg.ServiceError{Service: appreg.ServiceGraph, Status: status, Code: ge.code, Message: clip(ge.message), Kind: kindOf(o, ge)}
	d.explain(ctx, o, se)
	if n, err := strconv.Atoi(strings.TrimSpace(header(headers, "Retry-After"))); err == nil && n > 0 {
		se.RetryAfter = min(time.Duration(n)*time.Second, maxRetryAfter)
	}
	return se
}

// maxRetryAfter caps the wait a batch item's Retry-After asks for.
const maxRetryAfter = time.Minute

// kindOf is the classification table, in order of precedence.
func kindOf(o op, ge graphError) error {
	msg := strings.ToLower(ge.message)
	switch {
	case o.spCreate && ge.status == http.StatusForbidden && strings.Contains(msg, msgBackingApplication):
		// Not a missing permission: the application this service principal is for has not replicated.
		return appreg.ErrNotReplicated
	case ge.status == http.StatusForbidden:
		return appreg.ErrForbidden
	case ge.status == http.StatusTooManyRequests:
		return appreg.ErrThrottled
	case ge.status >= 500 || ge.status == http.StatusRequestTimeout:
		return appreg.ErrUnavailable
	case ge.hasCode(codeConcurrency):
		return appreg.ErrConcurrency
	case ge.hasCode(codeLifetimePolicy):
		return appreg.ErrLifetimePolicy
	case ge.hasCode(codePasswordsForbidden):
		return appreg.ErrPasswordsForbidden
	case ge.uniqueNameConflict(msg):
		return appreg.ErrUniqueNameTaken
	case o.write && (ge.status == http.StatusBadRequest || ge.status == http.StatusNotFound) &&
		(strings.Contains(msg, msgNotPresent) || strings.Contains(msg, msgNoValidApplication)):
		// Our own write refers to an object (the application, a principal) that this replica of the
		// directory does not have yet.
		return appreg.ErrNotReplicated
	case o.assign && (ge.status == http.StatusNotFound || ge.code == codeResourceNotFound ||
		(ge.status == http.StatusBadRequest && strings.Contains(msg, msgNotValidReference))):
		// An assignment for a principal that has not replicated: Graph answers a plain 404 or 400 "Not a
		// valid reference update." as well. The engine assigns only to resources it has read, so a 404
		// here is the fresh principal.
		return appreg.ErrNotReplicated
	case ge.status == http.StatusNotFound || ge.code == codeResourceNotFound:
		return appreg.ErrNotFound
	case ge.status == http.StatusConflict || ge.code == codeSameKeyValue ||
		(ge.status == http.StatusBadRequest && strings.Contains(msg, msgAlreadyExists)):
		return appreg.ErrAlreadyExists
	default: // any other 4xx
		return appreg.ErrRejected
	}
}

func (ge graphError) hasCode(code string) bool {
	if strings.EqualFold(ge.code, code) {
		return true
	}
	for _, dt := range ge.details {
		if strings.EqualFold(dt.code, code) {
			return true
		}
	}
	return false
}

// uniqueNameConflict: 400 "Another object with the same value for property uniqueName already exists."
// (a deleted application keeps its uniqueName for 30 days), with or without an ObjectConflict detail
// naming uniqueName.
func (ge graphError) uniqueNameConflict(lowerMsg string) bool {
	if ge.status != http.StatusBadRequest && ge.status != http.StatusConflict {
		return false
	}
	for _, dt := range ge.details {
		if strings.EqualFold(dt.code, codeObjectConflict) && strings.EqualFold(dt.target, propertyUniqueName) {
			return true
		}
	}
	return strings.Contains(lowerMsg, msgSameUniqueName)
}

// inspect reads the status, code, message and details out of an SDK error, without ever calling
// (*ODataError).Error(), which panics when the body had no error object.
func inspect(err error) (ge graphError, isOData, ok bool) {
	var oe *odataerrors.ODataError
	if errors.As(err, &oe) {
		ge = graphError{status: oe.ResponseStatusCode}
		if me := oe.GetErrorEscaped(); me != nil {
			ge.code = str(me.GetCode())
			ge.message = str(me.GetMessage())
			for _, dt := range me.GetDetails() {
				if dt != nil {
					ge.details = append(ge.details, detail{code: str(dt.GetCode()), target: str(dt.GetTarget()), message: str(dt.GetMessage())})
				}
			}
		}
		return ge, true, ge.status != 0
	}
	var ae *abs.ApiError
	if errors.As(err, &ae) && ae.ResponseStatusCode != 0 {
		return graphError{status: ae.ResponseStatusCode}, false, true
	}
	return graphError{}, false, false
}

func clip(s string) string {
	if len(s) > maxMessageInServiceError {
		return s[:maxMessageInServiceError] + "…"
	}
	return s
}

// noObject is the error for an answer that should have carried an object and did not (kiota returns
// (nil, nil) for a body without a JSON content type).
func noObject(a *answer) error {
	status, ct := 0, ""
	if a != nil {
		status, ct = a.get()
	}
	msg := "the answer carried no object"
	if ct != "" {
		msg += fmt.Sprintf(" (content type %q)", ct)
	}
	return &appreg.ServiceError{Service: appreg.ServiceGraph, Kind: appreg.ErrUnavailable, Status: status, Message: msg}
}

// rejected is a request that we refuse to send because it cannot be right.
func rejected(msg string) error {
	return &appreg.ServiceError{Service: appreg.ServiceGraph, Kind: appreg.ErrRejected, Message: msg}
}
