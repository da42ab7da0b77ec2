package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/scepman-appreg/appreg/handler/internal/hostproto"
	"github.com/scepman-appreg/appreg/handler/internal/logctx"
)

const ctxLogger = "server.logger"

// maxIDLen bounds the invocation id taken from a header into the logs.
const maxIDLen = 128

// requestLogger puts a logger with the invocationId into the request's context (and Echo's context): the
// host's X-Azure-Functions-InvocationId, else the request id, as Echo's RequestID middleware makes it (the
// caller's X-Request-Id, else a random one), which the answer carries in X-Request-Id.
func (s *srv) requestLogger(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		rid := req.Header.Get(echo.HeaderXRequestID)
		if rid == "" || len(rid) > maxIDLen {
			rid = newRequestID()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, rid)
		id := req.Header.Get(hostproto.HeaderInvocationID)
		if id == "" {
			id = rid
		}
		if len(id) > maxIDLen {
			id = id[:maxIDLen]
		}
		l := s.log.With("invocationId", id)
		c.Set(ctxLogger, l)
		c.SetRequest(req.WithContext(logctx.With(req.Context(), l)))
		return next(c)
	}
}

// newRequestID is 32 random hex digits.
func newRequestID() string { return randomHex(16) }

// newErrorID is 16 random hex digits: the id of an unexpected failure, in its answer and its log line.
func newErrorID() string { return randomHex(8) }

// randomHex is n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// loggerOf is the request's logger.
func (s *srv) loggerOf(c echo.Context) *slog.Logger {
	if l, ok := c.Get(ctxLogger).(*slog.Logger); ok {
		return l
	}
	return s.log
}

// accessLog writes one line per request once the answer is out: method, path (never the query, which may
// hold a function key), status and duration. It hands errors to the error handler itself so that the line
// has the final status. The readiness probe logs at Debug: the host polls it.
func (s *srv) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		req := c.Request()
		level := slog.LevelInfo
		if req.URL.Path == PathReady && req.Method == http.MethodGet {
			level = slog.LevelDebug
		}
		s.loggerOf(c).LogAttrs(req.Context(), level, "request",
			slog.String("method", req.Method),
			slog.String("path", req.URL.Path),
			slog.Int("status", c.Response().Status),
			slog.Float64("durationMs", float64(time.Since(start).Microseconds())/1000),
		)
		return nil
	}
}

// recoverPanic turns a panic into a 500 InternalError, logging the value and the stack with an errorId;
// the answer names only that id (handleError).
func (s *srv) recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				err = s.panicked(s.loggerOf(c), r)
			}
		}()
		return next(c)
	}
}

// panicked logs a recovered panic with its stack and a new error id, and returns the error that answers it
// (CodeInternal: the answer names only the id).
func (s *srv) panicked(l *slog.Logger, r any) error {
	id := newErrorID()
	l.Error("panic", "errorId", id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	return &apiError{Status: http.StatusInternalServerError, Code: CodeInternal, Message: fmt.Sprintf("panic: %v", r), ID: id}
}

// limitBody refuses bodies over hostproto.MaxBodyBytes: at once by Content-Length, else while reading
// (*http.MaxBytesError, answered 413 by the error handler).
func limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > hostproto.MaxBodyBytes {
			return tooLarge(req.ContentLength)
		}
		req.Body = http.MaxBytesReader(c.Response(), req.Body, hostproto.MaxBodyBytes)
		return next(c)
	}
}

func tooLarge(n int64) error {
	size := "the body"
	if n > 0 {
		size = fmt.Sprintf("the body of %d bytes", n)
	}
	return &apiError{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge,
		Message: fmt.Sprintf("%s exceeds the limit of %d bytes", size, hostproto.MaxBodyBytes)}
}
