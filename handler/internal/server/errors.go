package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/hostproto"
)

// Error codes of the {"error": {"code", "message"}} body.
const (
	CodeBadRequest           = "BadRequest"         // 400: the provision body is not empty or {}
	CodeInvalidContentType   = "InvalidContentType" // 400: a body that is not application/json
	CodeInvalidInvocation    = "InvalidInvocation"  // 400: a malformed host invocation payload
	CodeNotFound             = "NotFound"           // 404: no such route
	CodeMethodNotAllowed     = "MethodNotAllowed"   // 405
	CodeTooLarge             = "RequestTooLarge"    // 413: body over 64 KiB
	CodeInvalidConfiguration = "InvalidConfiguration"
	CodeNonCompliant         = "NonCompliant"    // 500: the compliance timer found errors it did not repair
	CodeInstancesFailed      = "InstancesFailed" // 500: a timer failed for some instances (each named)
	CodeInternal             = "InternalError"
	CodeUpstreamForbidden    = "UpstreamForbidden"            // 502: Graph or Key Vault answered 403
	CodeUpstreamRejected     = "UpstreamRejected"             // 502: Graph or Key Vault refused the request
	CodeUpstreamNotFound     = "UpstreamNotFound"             // 502: an object vanished under the engine
	CodeUpstreamConflict     = "UpstreamConflict"             // 502: an object exists that should not
	CodeLifetimePolicy       = "CredentialLifetimePolicy"     // 502: the tenant's app management policy refused
	CodeUniqueNameTaken      = "UniqueNameTaken"              // 502: a deleted application holds the uniqueName
	CodePasswordsForbidden   = "PasswordCredentialsForbidden" // 502: the tenant's app management policy forbids client secrets
	CodeSecretDisabled       = "SecretDisabled"               // 502: Key Vault refused a disabled version
	CodeSecretDeleted        = "SecretDeleted"                // 502: Key Vault holds the name in soft delete
	CodeIdentityFailed       = "ManagedIdentityFailed"        // 502: the managed identity endpoint gave no token
	CodeUpstreamUnavailable  = "UpstreamUnavailable"          // 503: throttled, unavailable or timed out
	CodeCanceled             = "Canceled"                     // 503: the caller went away
)

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the error object of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// apiError is an error a handler or middleware classified itself.
type apiError struct {
	Status  int
	Code    string
	Message string
	Err     error  // the cause, if any
	ID      string // CodeInternal only: the id of a log line already written about it (a recovered panic)
}

func (e *apiError) Error() string { return e.Message }
func (e *apiError) Unwrap() error { return e.Err }

// ConfigError marks err as an invalid configuration that was found after the server was built (for
// example while building the clients of the settings): it is answered as Options.ConfigErr is, 500
// InvalidConfiguration with err's message.
func ConfigError(err error) error {
	return &apiError{Status: http.StatusInternalServerError, Code: CodeInvalidConfiguration, Message: err.Error(), Err: err}
}

// sentinels maps the engine's classified failures to answers, first match wins.
var sentinels = []struct {
	err    error
	status int
	code   string
}{
	{appreg.ErrIdentity, http.StatusBadGateway, CodeIdentityFailed},
	{appreg.ErrNeedsFederation, http.StatusInternalServerError, CodeInvalidConfiguration},
	{appreg.ErrUniqueNameTaken, http.StatusBadGateway, CodeUniqueNameTaken},
	{appreg.ErrLifetimePolicy, http.StatusBadGateway, CodeLifetimePolicy},
	{appreg.ErrPasswordsForbidden, http.StatusBadGateway, CodePasswordsForbidden},
	{appreg.ErrSecretDisabled, http.StatusBadGateway, CodeSecretDisabled},
	{appreg.ErrSecretDeleted, http.StatusBadGateway, CodeSecretDeleted},
	{appreg.ErrForbidden, http.StatusBadGateway, CodeUpstreamForbidden},
	{appreg.ErrRejected, http.StatusBadGateway, CodeUpstreamRejected},
	{appreg.ErrNotFound, http.StatusBadGateway, CodeUpstreamNotFound},
	{appreg.ErrAlreadyExists, http.StatusBadGateway, CodeUpstreamConflict},
}

// classify maps any error to a status, a code and a message.
func classify(err error, c echo.Context) (int, string, string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status, ae.Code, ae.Message
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return classifyHTTP(he, c)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || errors.Is(err, hostproto.ErrTooLarge) {
		ae := tooLarge(c.Request().ContentLength).(*apiError)
		return ae.Status, ae.Code, ae.Message
	}
	if errors.Is(err, hostproto.ErrMalformed) {
		return http.StatusBadRequest, CodeInvalidInvocation, err.Error()
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.status, s.code, err.Error()
		}
	}
	if appreg.IsTransient(err) || errors.Is(err, context.DeadlineExceeded) {
		return http.StatusServiceUnavailable, CodeUpstreamUnavailable, err.Error()
	}
	if errors.Is(err, context.Canceled) {
		return http.StatusServiceUnavailable, CodeCanceled, err.Error()
	}
	return http.StatusInternalServerError, CodeInternal, err.Error()
}

func classifyHTTP(he *echo.HTTPError, c echo.Context) (int, string, string) {
	status := he.Code
	msg := http.StatusText(status)
	if m, ok := he.Message.(string); ok && m != "" {
		msg = m
	} else if m, ok := he.Message.(error); ok {
		msg = m.Error()
	}
	req := c.Request()
	code := strings.ReplaceAll(http.StatusText(status), " ", "")
	switch status {
	case http.StatusBadRequest:
		code = CodeBadRequest
	case http.StatusNotFound:
		code = CodeNotFound
		if msg == http.StatusText(status) {
			msg = fmt.Sprintf("no function answers %s %s", req.Method, req.URL.Path)
		}
	case http.StatusMethodNotAllowed:
		code = CodeMethodNotAllowed
		if msg == http.StatusText(status) {
			msg = fmt.Sprintf("%s is not allowed on %s", req.Method, req.URL.Path)
			if allow := c.Response().Header().Get(echo.HeaderAllow); allow != "" {
				msg += "; allowed: " + allow
			}
		}
	case http.StatusRequestEntityTooLarge:
		ae := tooLarge(req.ContentLength).(*apiError)
		return ae.Status, ae.Code, ae.Message
	case http.StatusInternalServerError:
		code = CodeInternal
	}
	if code == "" {
		code = fmt.Sprintf("HTTP%d", status)
	}
	return status, code, msg
}

// internalMessage is the answer to an unexpected failure (CodeInternal): it names only the id that the
// log line with the details carries.
func internalMessage(id string) string {
	return fmt.Sprintf("internal error %s: the details are in the function's log", id)
}

// internalID is the id of an unexpected failure: the one already logged with it (a recovered panic), else
// a new one.
func internalID(err error) string {
	var ae *apiError
	for errors.As(err, &ae) {
		if ae.ID != "" {
			return ae.ID
		}
		err = ae.Err
	}
	return newErrorID()
}

// failure classifies a failure, logs it on l ("request failed"), and gives its status and answer. A
// classified failure is answered with its own message. An unexpected one (CodeInternal: an error no rule
// classified, a recovered panic) is answered with a generic message and an id; its text goes to the log
// line only, which carries the same id as errorId.
func (s *srv) failure(c echo.Context, l *slog.Logger, err error) (int, ErrorBody) {
	status, code, msg := classify(err, c)
	attrs := []slog.Attr{slog.String("error", msg)}
	if code == CodeInternal {
		id := internalID(err)
		msg = internalMessage(id)
		attrs = append(attrs, slog.String("errorId", id))
	}
	level := slog.LevelWarn
	if status >= 500 {
		level = slog.LevelError
	}
	req := c.Request()
	l.LogAttrs(req.Context(), level, "request failed", append([]slog.Attr{
		slog.String("method", req.Method),
		slog.String("path", req.URL.Path),
		slog.Int("status", status),
		slog.String("code", code),
	}, attrs...)...)
	return status, ErrorBody{ErrorDetail{Code: code, Message: msg}}
}

// handleError is Echo's HTTPErrorHandler: it logs the failure and answers the contract's error JSON.
// A classified failure is answered with its own message. An unexpected one (CodeInternal: an error no
// rule classified, a recovered panic) is answered with a generic message and an id; its text goes to the
// log line only, which carries the same id as errorId.
func (s *srv) handleError(err error, c echo.Context) {
	l := s.loggerOf(c)
	status, body := s.failure(c, l, err)
	if c.Response().Committed {
		return
	}
	req := c.Request()
	if req.Method == http.MethodHead {
		err = c.NoContent(status)
	} else {
		err = c.JSON(status, body)
	}
	if err != nil {
		l.Error("writing the error answer failed", "error", err.Error())
	}
}
