package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/scepman-appreg/appreg/handler/internal/appreg"
	"github.com/scepman-appreg/appreg/handler/internal/hostproto"
)

// provision: POST /api/provision. Body empty or {}; 201 when this call created the application. With
// several instances and no ?instance, every instance at once (see everyInstance).
func (s *srv) provision(c echo.Context) error {
	if err := emptyObjectBody(c); err != nil {
		return err
	}
	ctx, cancel := withTimeout(c, s.httpTimeout)
	defer cancel()
	run := func(ctx context.Context, in Instance) (int, any, error) {
		res, err := in.Service.Provision(ctx)
		status := http.StatusOK
		if res.Created {
			status = http.StatusCreated
		}
		return status, res, err
	}
	return s.answer(ctx, c, run)
}

// status: GET /api/status, read-only.
func (s *srv) status(c echo.Context) error {
	ctx, cancel := withTimeout(c, s.httpTimeout)
	defer cancel()
	return s.answer(ctx, c, func(ctx context.Context, in Instance) (int, any, error) {
		rep, err := in.Service.Status(ctx)
		return http.StatusOK, rep, err
	})
}

// compliance: the compliance timer's invocation, over every instance. A non-compliant verdict fails the
// run (500), after every finding was logged on its own line: the host drops the answer of a failed run.
func (s *srv) compliance(c echo.Context) error {
	if _, err := s.timerInvocation(c, "compliance"); err != nil {
		return err
	}
	ctx, cancel := withTimeout(c, s.timerTimeout)
	defer cancel()
	return s.timer(ctx, c, "compliance", func(ctx context.Context, l *slog.Logger, in Instance) (any, []string, error) {
		res, err := in.Service.Compliance(ctx)
		if err != nil {
			return nil, nil, err
		}
		var logs []string
		if res.Remediated != nil || res.After != nil {
			logFindings(ctx, l, "before", res.Before.AppID, res.Before.Findings)
			logs = append(logs, summary("before remediation", res.Before))
		}
		if res.Remediated != nil {
			for _, ch := range res.Remediated.Changes {
				l.Info("remediation change", "function", "compliance", "change", ch)
				logs = append(logs, "remediated: "+ch)
			}
		}
		final := res.Before
		if res.After != nil {
			final = *res.After
		}
		logFindings(ctx, l, "", final.AppID, final.Findings)
		logs = append(logs, summary("compliance", final))
		if !res.Compliant {
			return res, logs, &apiError{Status: http.StatusInternalServerError, Code: CodeNonCompliant,
				Message: "the app registration is not compliant: " + errorCodes(final.Findings)}
		}
		l.Info("compliance run succeeded", "function", "compliance", "compliant", true, "findings", len(final.Findings))
		return res, logs, nil
	})
}

// rotate: the rotation timer's invocation, over every instance.
func (s *srv) rotate(c echo.Context) error {
	if _, err := s.timerInvocation(c, "rotate"); err != nil {
		return err
	}
	ctx, cancel := withTimeout(c, s.timerTimeout)
	defer cancel()
	return s.timer(ctx, c, "rotate", func(ctx context.Context, l *slog.Logger, in Instance) (any, []string, error) {
		res, err := in.Service.Rotate(ctx)
		if err != nil {
			return nil, nil, err
		}
		logs := append([]string(nil), res.Changes...)
		for _, r := range res.Refresh {
			level := slog.LevelInfo
			if r.Error != "" {
				level = slog.LevelWarn
			}
			l.Log(ctx, level, "key vault reference refresh", "siteId", r.SiteID, "status", r.Status, "error", r.Error)
		}
		attrs := []any{"function", "rotate", "renewed", res.Renewed, "removedKeyIds", len(res.Removed)}
		if res.Reason != "" {
			attrs = append(attrs, "reason", res.Reason)
		}
		if res.Secret != nil {
			attrs = append(attrs, "keyId", res.Secret.KeyID, "expiresOn", res.Secret.ExpiresOn)
		}
		l.Info("rotation run succeeded", attrs...)
		line := "rotation: secret kept"
		if res.Renewed {
			line = "rotation: secret renewed"
		}
		if res.Reason != "" {
			line += " (" + res.Reason + ")"
		}
		return res, append(logs, line), nil
	})
}

// timerFailed answers a failed timer run 500, as the contract says of both timers, with the failure's
// own code and message (which an HTTP function would answer 502 or 503).
func timerFailed(err error, c echo.Context) error {
	_, code, msg := classify(err, c)
	return &apiError{Status: http.StatusInternalServerError, Code: code, Message: msg, Err: err}
}

// timerInvocation checks and decodes a timer invocation and logs what the host said about it. Any JSON
// object is an invocation; only a body that is not one is an error (400).
func (s *srv) timerInvocation(c echo.Context, function string) (hostproto.TimerInvocation, error) {
	req := c.Request()
	if err := requireJSON(req, false); err != nil {
		return hostproto.TimerInvocation{}, err
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return hostproto.TimerInvocation{}, err
	}
	inv, err := hostproto.DecodeTimer(body, hostproto.BindingTimer)
	if err != nil {
		return inv, err
	}
	attrs := []any{"function", function, "isPastDue", inv.Timer.IsPastDue}
	if st := inv.Timer.ScheduleStatus; st != nil {
		attrs = append(attrs, "scheduleLast", st.Last, "scheduleNext", st.Next)
	}
	if inv.Sys != nil && inv.Sys.MethodName != "" && !strings.EqualFold(inv.Sys.MethodName, function) {
		attrs = append(attrs, "methodName", inv.Sys.MethodName)
	}
	if r := inv.Retry; r != nil {
		attrs = append(attrs, "retryCount", r.RetryCount, "maxRetryCount", r.MaxRetryCount)
		if r.Exception != nil {
			attrs = append(attrs, "previousError", r.Exception.Message)
		}
	}
	l := s.loggerOf(c)
	l.Info("timer invocation", attrs...)
	if len(inv.Warnings) > 0 {
		// The payload is read for logging only: any JSON object runs the function (contract, "Timer payloads").
		l.Warn("timer payload not in the host's usual shape; the function runs anyway", "function", function, "warnings", inv.Warnings)
	}
	return inv, nil
}

// emptyObjectBody reads the provision request's body and checks it with CheckProvisionBody.
func emptyObjectBody(c echo.Context) error {
	req := c.Request()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return err
	}
	return CheckProvisionBody(req.Header.Get(echo.HeaderContentType), body)
}

// CheckProvisionBody is the decoder of the forwarded provision request: it accepts an empty body (any
// content type) or the JSON object {} with Content-Type application/json, and refuses anything else with
// a 400 whose message says what is wrong (code InvalidContentType or BadRequest). It is pure: the size
// limit is the middleware's.
func CheckProvisionBody(contentType string, body []byte) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	if err := contentTypeError(contentType, true); err != nil {
		return err
	}
	const want = "expected an empty body or the JSON object {}"
	bad := func(format string, a ...any) error {
		return &apiError{Status: http.StatusBadRequest, Code: CodeBadRequest, Message: fmt.Sprintf(format, a...) + ": " + want}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return bad("the body is not JSON (%v)", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return bad("the body is %s", jsonKind(tok))
	}
	if dec.More() {
		key, err := dec.Token()
		if err != nil {
			return bad("the body is not JSON (%v)", err)
		}
		return bad("unknown field %q", shorten(fmt.Sprint(key)))
	}
	if _, err := dec.Token(); err != nil { // the closing }
		return bad("the body is not JSON (%v)", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("the body has data after the JSON object")
	}
	return nil
}

// requireJSON checks that the request says its body is application/json. For the provision body the
// content type matters only when there is a body (optional says so in the message).
func requireJSON(req *http.Request, optional bool) error {
	return contentTypeError(req.Header.Get(echo.HeaderContentType), optional)
}

func contentTypeError(ct string, optional bool) error {
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && strings.EqualFold(mt, echo.MIMEApplicationJSON) {
		return nil
	}
	what := "an invocation"
	if optional {
		what = "a body"
	}
	got := "no Content-Type"
	if ct != "" {
		got = fmt.Sprintf("Content-Type %q", shorten(ct))
	}
	return &apiError{Status: http.StatusBadRequest, Code: CodeInvalidContentType,
		Message: fmt.Sprintf("%s with %s: expected Content-Type application/json", what, got)}
}

func jsonKind(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "not a JSON value"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	default:
		return "a number"
	}
}

func shorten(s string) string {
	if len(s) <= 64 {
		return s
	}
	cut := 64
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut-- // never split a character
	}
	return s[:cut] + "…"
}

// logFindings writes every finding as its own line: warnings at Warn, errors at Error.
func logFindings(ctx context.Context, l *slog.Logger, phase, appID string, fs []appreg.Finding) {
	for _, f := range fs {
		level := slog.LevelWarn
		if f.Severity == appreg.SeverityError {
			level = slog.LevelError
		}
		attrs := []slog.Attr{slog.String("code", f.Code), slog.String("severity", f.Severity), slog.String("message", f.Message), slog.String("appId", appID)}
		if phase != "" {
			attrs = append(attrs, slog.String("phase", phase))
		}
		l.LogAttrs(ctx, level, "finding", attrs...)
	}
}

// summary is one Logs line for a report.
func summary(what string, r appreg.StatusReport) string {
	verdict := "compliant"
	if !r.Compliant {
		verdict = "not compliant"
	}
	if len(r.Findings) == 0 {
		return fmt.Sprintf("%s: %s, no findings", what, verdict)
	}
	codes := make([]string, len(r.Findings))
	for i, f := range r.Findings {
		codes[i] = f.Code
	}
	return fmt.Sprintf("%s: %s, findings: %s", what, verdict, strings.Join(codes, ", "))
}

// errorCodes lists the codes of the error findings, or says there were none.
func errorCodes(fs []appreg.Finding) string {
	var codes []string
	for _, f := range fs {
		if f.Severity == appreg.SeverityError {
			codes = append(codes, f.Code)
		}
	}
	if len(codes) == 0 {
		return "the engine reported it so without error findings"
	}
	return fmt.Sprintf("%d error finding(s): %s", len(codes), strings.Join(codes, ", "))
}
