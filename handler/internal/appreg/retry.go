package appreg

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/scepman-appreg/appreg/handler/internal/logctx"
)

// Backoff is a capped exponential back-off with full jitter, bounded by the context's deadline and, for a
// service that answers nothing but transient errors, by its patience.
type Backoff struct {
	Base time.Duration // first delay's ceiling
	Max  time.Duration // cap of every delay
	// Patience is the longest one operation keeps retrying an unbroken run of transient errors (5xx, 429,
	// network): a service that has answered nothing else for that long is taken as down for this run, and
	// the run fails with its last answer instead of holding its slot until the deadline (a timer runs many
	// instances; one tenant that is down must not hold up the others). The next run tries again. Waits for
	// Azure to catch up (replication, concurrency, recovery) do not count (serviceDown). Zero: the deadline
	// alone bounds retries.
	Patience time.Duration
}

// DefaultBackoff suits Graph's replication delay (seconds, sometimes tens of seconds) and throttling; its
// patience outlasts any Retry-After Graph or Key Vault gives for throttling (seconds to a minute) and is
// above an HTTP trigger's deadline, so that only timers meet it.
var DefaultBackoff = Backoff{Base: 250 * time.Millisecond, Max: 8 * time.Second, Patience: 150 * time.Second}

// delay is the n-th (from 0) delay: uniform in [ceiling/2, ceiling], ceiling = min(Max, Base*2^n).
func (b Backoff) delay(n int) time.Duration {
	ceil := b.Max
	if n < 30 {
		if c := b.Base << n; c > 0 && c < b.Max {
			ceil = c
		}
	}
	half := ceil / 2
	return half + rand.N(half+1)
}

// retry calls fn until it succeeds, fails with an error retryable does not accept, or the context's
// deadline (or the patience, after transient errors only) would pass before the next try; then it returns
// fn's last error (not the context's, so the caller learns what kept failing).
func (b Backoff) retry(ctx context.Context, what string, retryable func(error) bool, fn func() error) error {
	var down time.Time // when the current unbroken run of transient errors began
	for n := 0; ; n++ {
		err := fn()
		if err == nil || !retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		d := b.delay(n)
		var se *ServiceError
		if errors.As(err, &se) && se.RetryAfter > d {
			d = se.RetryAfter
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return err
		}
		switch {
		case !serviceDown(err):
			down = time.Time{}
		case down.IsZero():
			down = time.Now()
		}
		if b.Patience > 0 && !down.IsZero() && time.Since(down)+d > b.Patience {
			logctx.From(ctx).Warn("giving up: only transient errors", "op", what, "attempts", n+1,
				"for", time.Since(down).Round(time.Millisecond).String(), "err", err.Error())
			return err
		}
		logctx.From(ctx).Debug("retrying", "op", what, "attempt", n+1, "delay", d.String(), "err", err.Error())
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// serviceDown tells the errors that patience counts: the service throttles or does not answer (5xx, 429,
// network). Replication, concurrency and recovery errors are transient too, but they are waits for Azure
// to catch up, which may take minutes (reference section 8), and do not count.
func serviceDown(err error) bool {
	return errors.Is(err, ErrThrottled) || errors.Is(err, ErrUnavailable)
}

// transient accepts the errors worth retrying anywhere.
func transient(err error) bool { return IsTransient(err) }

// transientOr accepts transient errors and the given sentinels (for example ErrNotFound while a fresh
// object replicates).
func transientOr(kinds ...error) func(error) bool {
	return func(err error) bool {
		if IsTransient(err) {
			return true
		}
		for _, k := range kinds {
			if errors.Is(err, k) {
				return true
			}
		}
		return false
	}
}
