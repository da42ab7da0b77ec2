// Package server is the function app's HTTP application (Echo v4), as the Functions host reaches it:
// GET / is the host's readiness probe; POST /api/provision and GET /api/status are the forwarded HTTP
// triggers (enableForwardingHttpRequest); POST /compliance and POST /rotate are the timers' invocations in
// the custom-handler protocol (package hostproto).
//
// Handlers return errors; one HTTPErrorHandler turns every error into the contract's
// {"error": {"code", "message"}} with its status, and logs it: a classified failure with its own message,
// an unexpected one (an unclassified error, a recovered panic) with a generic message and an id that the
// log line with the details carries. Every request gets a logger with the invocationId (the host's
// X-Azure-Functions-InvocationId, else Echo's request id) in its context (package logctx), and one
// access-log line. Nothing logs headers, query strings or bodies.
package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/hostproto"
)

// Service is what the handlers run; *appreg.Engine implements it.
type Service interface {
	Provision(ctx context.Context) (appreg.ProvisionResult, error)
	Status(ctx context.Context) (appreg.StatusReport, error)
	Compliance(ctx context.Context) (appreg.ComplianceResult, error)
	Rotate(ctx context.Context) (appreg.RotateResult, error)
}

// Options configure New.
type Options struct {
	// Service runs the work of the one instance, DefaultInstance, when Instances is empty. It may be nil
	// when ConfigErr is set.
	Service Service
	// Instances are the registrations served (APPREG_INSTANCES), in order; empty: Service alone.
	Instances []Instance
	// Multi is true when APPREG_INSTANCES is set: without ?instance the HTTP functions answer every
	// instance, as {"instances": {...}}. Without it, the one instance answers as ever.
	Multi bool
	// ConfigErr, when set, is the invalid configuration: every route but GET / answers 500
	// InvalidConfiguration with its message, and nothing calls Service.
	ConfigErr error
	// Logger receives the JSON log lines; nil: JSON on stdout.
	Logger *slog.Logger
	// HTTPTimeout bounds a forwarded HTTP request's work; 0: DefaultHTTPTimeout.
	HTTPTimeout time.Duration
	// TimerTimeout bounds a timer invocation's work; 0: DefaultTimerTimeout.
	TimerTimeout time.Duration
}

// Defaults of Options. The HTTP default stays under the 230 s that Azure's front end waits for an answer;
// the timer default under host.json's functionTimeout of 10 minutes.
const (
	DefaultHTTPTimeout  = 200 * time.Second
	DefaultTimerTimeout = 9 * time.Minute
)

// Routes of the contract.
const (
	PathReady      = "/"
	PathProvision  = "/api/provision"
	PathStatus     = "/api/status"
	PathCompliance = "/compliance"
	PathRotate     = "/rotate"
)

type srv struct {
	instances    []Instance
	multi        bool
	cfgErr       error
	log          *slog.Logger
	httpTimeout  time.Duration
	timerTimeout time.Duration
}

// New builds the Echo application. It does not listen; the caller starts e.Server (or e.Start).
func New(o Options) *echo.Echo {
	s := &srv{instances: o.Instances, multi: o.Multi, cfgErr: o.ConfigErr, log: o.Logger, httpTimeout: o.HTTPTimeout, timerTimeout: o.TimerTimeout}
	if len(s.instances) == 0 {
		s.instances = []Instance{{Name: DefaultInstance, Service: o.Service}}
	}
	if s.log == nil {
		s.log = slog.New(slog.NewJSONHandler(os.Stdout, nil))
	}
	if s.httpTimeout <= 0 {
		s.httpTimeout = DefaultHTTPTimeout
	}
	if s.timerTimeout <= 0 {
		s.timerTimeout = DefaultTimerTimeout
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Logger.SetOutput(io.Discard) // every error goes through handleError and slog instead
	e.Server.ReadHeaderTimeout = 10 * time.Second
	e.HTTPErrorHandler = s.handleError

	e.Use(
		s.requestLogger,
		s.accessLog,
		s.recoverPanic,
		limitBody,
	)
	e.GET(PathReady, s.ready)
	e.POST(PathProvision, s.provision, s.requireConfig)
	e.GET(PathStatus, s.status, s.requireConfig)
	e.POST(PathCompliance, s.compliance, s.requireConfig)
	e.POST(PathRotate, s.rotate, s.requireConfig)
	return e
}

// ready answers the host's readiness probe at once, also with an invalid configuration: the host must see
// the handler up to route requests that then report the configuration error.
func (s *srv) ready(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// requireConfig stops every request while the configuration is invalid.
func (s *srv) requireConfig(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfgErr != nil {
			return &apiError{Status: http.StatusInternalServerError, Code: CodeInvalidConfiguration, Message: s.cfgErr.Error(), Err: s.cfgErr}
		}
		return next(c)
	}
}

// withTimeout is the request's context with a deadline for the work.
func withTimeout(c echo.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request().Context(), d)
}

// invocationResponse answers a successful invocation: 200 with the host's response JSON.
func invocationResponse(c echo.Context, result any, logs []string) error {
	return c.JSON(http.StatusOK, hostproto.NewResponse(result, logs...))
}
