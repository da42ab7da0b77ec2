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
