package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/scepman-appreg/appreg/handler/internal/logctx"
)

// Instance is one registration the server answers for (contract, "Several instances").
type Instance struct {
	Name    string
	Service Service
}

// DefaultInstance is the one instance's name when the server is given a Service alone.
const DefaultInstance = "default"

// DefaultParallel bounds how many instances a timer, or an HTTP call for every instance, runs at once.
const DefaultParallel = 8

// instanceParam is the query parameter that names one instance.
const instanceParam = "instance"

// scoped is ctx and the request's logger for one instance's work: every log line of it carries instance,
// the engine's included (it logs through logctx).
func (s *srv) scoped(ctx context.Context, c echo.Context, in Instance) (context.Context, *slog.Logger) {
	l := s.loggerOf(c).With("instance", in.Name)
	return logctx.With(ctx, l), l
}

// pick resolves ?instance=NAME to that instance (404 when no instance has that name). Without it, the one
// instance when APPREG_INSTANCES is unset, else nil: every instance.
func (s *srv) pick(c echo.Context) (*Instance, error) {
	name := c.QueryParam(instanceParam)
	if name == "" {
		if !s.multi {
			return &s.instances[0], nil
		}
		return nil, nil
	}
	for i := range s.instances {
		if s.instances[i].Name == name {
			return &s.instances[i], nil
		}
	}
	names := make([]string, len(s.instances))
	for i, in := range s.instances {
		names[i] = in.Name
	}
	return nil, &apiError{Status: http.StatusNotFound, Code: CodeNotFound,
		Message: fmt.Sprintf("no instance is named %q; the instances are %s", shorten(name), strings.Join(names, ", "))}
}

// answer runs an HTTP function: for the instance picked, its answer exactly as with one instance; for
// every instance, {"instances": {NAME: its answer or its error envelope}}, 200 when every instance
// succeeded, otherwise the highest status among the failed ones.
func (s *srv) answer(ctx context.Context, c echo.Context, run func(context.Context, Instance) (int, any, error)) error {
	one, err := s.pick(c)
	if err != nil {
		return err
	}
	if one != nil {
		ictx, l := s.scoped(ctx, c, *one)
		c.Set(ctxLogger, l) // the error handler's line carries the instance too
		status, body, err := run(ictx, *one)
		if err != nil {
			return err
		}
		return c.JSON(status, body)
	}
	var mu sync.Mutex
	answers := map[string]any{}
	worst := 0
	s.forEach(ctx, c, func(ctx context.Context, l *slog.Logger, in Instance) {
		var body any
		err := s.safely(l, func() (err error) { _, body, err = run(ctx, in); return err })
		status := http.StatusOK
		if err != nil {
			var eb ErrorBody
			status, eb = s.failure(c, l, err)
			body = eb
		}
		mu.Lock()
		answers[in.Name] = body
		if err != nil {
			worst = max(worst, status)
		}
		mu.Unlock()
	})
	if worst == 0 {
		worst = http.StatusOK
	}
	return c.JSON(worst, map[string]any{"instances": answers})
}

// timer runs a timer's work for every instance, at most DefaultParallel at once; one instance's failure
// never stops another's. The run fails (500) when any instance failed, naming each; with one instance it
// answers as ever.
func (s *srv) timer(ctx context.Context, c echo.Context, function string, run func(context.Context, *slog.Logger, Instance) (any, []string, error)) error {
	if !s.multi {
		ictx, l := s.scoped(ctx, c, s.instances[0])
		c.Set(ctxLogger, l)
		res, logs, err := run(ictx, l, s.instances[0])
		if err != nil {
			return timerFailed(err, c)
		}
		return invocationResponse(c, res, logs)
	}
	var mu sync.Mutex
	results := map[string]any{}
	var logs, failed []string
	s.forEach(ctx, c, func(ctx context.Context, l *slog.Logger, in Instance) {
		var res any
		var lines []string
		err := s.safely(l, func() (err error) { res, lines, err = run(ctx, l, in); return err })
		var failure string
		if err != nil {
			_, eb := s.failure(c, l, err)
			res, failure = eb, in.Name+": "+eb.Error.Code+": "+eb.Error.Message
		}
		mu.Lock()
		defer mu.Unlock()
		results[in.Name] = res
		for _, line := range lines {
			logs = append(logs, in.Name+": "+line)
		}
		if failure != "" {
			failed = append(failed, failure)
		}
	})
	slices.Sort(failed)
	if len(failed) > 0 {
		return &apiError{Status: http.StatusInternalServerError, Code: CodeInstancesFailed,
			Message: fmt.Sprintf("%s failed for %d of %d instances: %s", function, len(failed), len(s.instances), strings.Join(failed, "; "))}
	}
	s.loggerOf(c).Info(function+" run succeeded for every instance", "function", function, "instances", len(s.instances))
	return invocationResponse(c, map[string]any{"instances": results}, logs)
}

// forEach runs fn for every instance, at most DefaultParallel at once, each with its own context and
// logger (see scoped), and waits for all.
func (s *srv) forEach(ctx context.Context, c echo.Context, fn func(context.Context, *slog.Logger, Instance)) {
	sem := make(chan struct{}, DefaultParallel)
	var wg sync.WaitGroup
	for _, in := range s.instances {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ictx, l := s.scoped(ctx, c, in)
			fn(ictx, l, in)
		}()
	}
	wg.Wait()
}

// safely runs fn, turning a panic into the error recoverPanic makes of one: an instance's run happens
// on a goroutine of its own, out of the middleware's reach.
func (s *srv) safely(l *slog.Logger, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.panicked(l, r)
		}
	}()
	return fn()
}
