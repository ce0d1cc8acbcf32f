package policy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway/config"
)

func TestBreakerTripsOnRatioIgnoresCancelsAndRecovers(t *testing.T) {
	b := NewBreaker("r/s", &config.CircuitBreaker{FailureRatio: 0.5, MinRequests: 4, OpenTimeout: 50 * time.Millisecond}, nil, nil)
	call := func(outcome error) {
		t.Helper()
		done, err := b.Allow()
		if err != nil {
			t.Fatalf("Allow while %s: %v", b.State(), err)
		}
		done(outcome)
	}
	// Cancellations are excluded: they neither trip nor count.
	for range 10 {
		call(context.Canceled)
	}
	call(nil)
	call(ErrFailed)
	call(nil)
	if b.State() != BreakerClosed {
		t.Fatalf("1 failure in 3 requests tripped the breaker")
	}
	call(ErrFailed) // 2 of 4 failed: ratio 0.5 reached
	if b.State() != BreakerOpen {
		t.Fatalf("state %s after 2 of 4 failed, want open", b.State())
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("Allow while open: %v, want ErrOpen", err)
	}
	if ra := b.RetryAfter(); ra != time.Second {
		t.Fatalf("RetryAfter = %v, want the 1s minimum", ra)
	}
	// After open_timeout one probe goes through; its success closes.
	deadline := time.Now().Add(10 * time.Second)
	for b.State() != BreakerHalfOpen {
		if time.Now().After(deadline) {
			t.Fatal("breaker never half-opened")
		}
		time.Sleep(5 * time.Millisecond)
	}
	done, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("second concurrent probe allowed while half-open: %v", err)
	}
	done(nil)
	if b.State() != BreakerClosed {
		t.Fatalf("state %s after a successful probe, want closed", b.State())
	}
}

func TestBreakerStateHasOneSpelling(t *testing.T) {
	for _, tc := range []struct {
		s     BreakerState
		want  string
		level int
	}{{BreakerClosed, "closed", 0}, {BreakerHalfOpen, "half_open", 1}, {BreakerOpen, "open", 2}} {
		b, _ := tc.s.MarshalText()
		if tc.s.String() != tc.want || string(b) != tc.want || tc.s.Level() != tc.level {
			t.Errorf("%d: %q / %q / %d, want %q / %d", tc.s, tc.s.String(), b, tc.s.Level(), tc.want, tc.level)
		}
	}
}
