package appreg

import (
	"context"
	"testing"
	"time"
)

// A service's Retry-After is a floor under the back-off: when it would outlast the deadline, the retry
// gives up at once instead of trying again too early.
func TestRetryHonoursRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter time.Duration
		wantCalls  int // calls before the retry gives up (the deadline is far from a minute away)
	}{
		{name: "no Retry-After: the back-off tries again", retryAfter: 0, wantCalls: 3},
		{name: "a Retry-After beyond the deadline: no second try", retryAfter: time.Minute, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			t.Cleanup(cancel)
			throttled := &ServiceError{Service: ServiceGraph, Kind: ErrThrottled, Status: 429, RetryAfter: tt.retryAfter}
			calls := 0
			err := Backoff{Base: time.Millisecond, Max: 2 * time.Millisecond}.retry(ctx, "reading", transient, func() error {
				calls++
				if calls == tt.wantCalls && tt.retryAfter == 0 {
					return nil
				}
				return throttled
			})
			if calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d (err %v)", calls, tt.wantCalls, err)
			}
			if tt.retryAfter > 0 && err != throttled {
				t.Errorf("err = %v, want the throttling error", err)
			}
		})
	}
}

// A service that answers nothing but transient errors is given up on after the patience, long before the
// deadline; a wait for replication (a sentinel retried on purpose) breaks the run and is not counted.
func TestRetryPatience(t *testing.T) {
	down := &ServiceError{Service: ServiceGraph, Kind: ErrUnavailable, Status: 503}
	tests := []struct {
		name    string
		answers func(call int) error // the answer of call n (from 1); nil ends the retry
		wantErr error
		minGone time.Duration // the retry must have lasted at least this long
		maxGone time.Duration // and at most this long
	}{
		{name: "only 503s: given up after the patience", answers: func(int) error { return down },
			wantErr: down, minGone: 30 * time.Millisecond, maxGone: 2 * time.Second},
		{name: "replication waits break the run of 503s", answers: func(n int) error {
			switch {
			case n > 40:
				return nil
			case n%2 == 0:
				return ErrNotFound
			}
			return down
		}, wantErr: nil, minGone: 0, maxGone: 5 * time.Second},
		{name: "replication errors are not counted", answers: func(n int) error {
			if n > 40 {
				return nil
			}
			return &ServiceError{Service: ServiceGraph, Kind: ErrNotReplicated, Status: 400}
		}, wantErr: nil, minGone: 0, maxGone: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			t.Cleanup(cancel)
			b := Backoff{Base: time.Millisecond, Max: 4 * time.Millisecond, Patience: 40 * time.Millisecond}
			calls, start := 0, time.Now()
			err := b.retry(ctx, "reading", transientOr(ErrNotFound), func() error {
				calls++
				return tt.answers(calls)
			})
			gone := time.Since(start)
			if err != tt.wantErr {
				t.Fatalf("err = %v after %d calls, want %v", err, calls, tt.wantErr)
			}
			if gone < tt.minGone || gone > tt.maxGone {
				t.Errorf("retried for %v, want between %v and %v", gone, tt.minGone, tt.maxGone)
			}
		})
	}
}
