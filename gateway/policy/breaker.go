package policy

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sony/gobreaker/v2"

	"github.com/gatewayco/gateway/gateway/config"
)

// ErrOpen is returned by Breaker.Allow while the breaker refuses calls.
var ErrOpen = errors.New("circuit breaker open")

// ErrFailed marks an outcome that counts as a failure although the call
// returned no error, such as a 5xx answer.
var ErrFailed = errors.New("upstream failed")

// Breaker is one circuit breaker: it trips when at least MinRequests calls
// were made in the last BreakerWindow and FailureRatio of them failed,
// stays open for OpenTimeout, then lets one probe through (half-open) and
// closes again if the probe succeeds.
type Breaker struct {
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	timeout  time.Duration
	now      func() time.Time
	openedAt atomic.Int64 // UnixNano of the last transition to open
	onChange atomic.Pointer[func(string)]
}

// BreakerWindow is the sliding window over which failures are counted, in
// BreakerWindow/10 buckets.
const BreakerWindow = 10 * time.Second

// NewBreaker returns a closed breaker named name (route/service, for
// logs). State changes are logged at warn level on logger (nil discards);
// now is the clock for Retry-After (nil means time.Now). gobreaker itself
// reads the system clock, so tests use short open timeouts.
func NewBreaker(name string, cfg *config.CircuitBreaker, logger hclog.Logger, now func() time.Time) *Breaker {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if now == nil {
		now = time.Now
	}
	b := &Breaker{timeout: cfg.OpenTimeout, now: now}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         name,
		MaxRequests:  1,
		Interval:     BreakerWindow,
		BucketPeriod: BreakerWindow / 10,
		Timeout:      cfg.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			// Requests includes excluded calls; they must not dilute the ratio.
			n := c.Requests - min(c.TotalExclusions, c.Requests)
			return n >= uint32(cfg.MinRequests) && float64(c.TotalFailures) >= cfg.FailureRatio*float64(n)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.openedAt.Store(b.now().UnixNano())
			}
			logger.Warn("circuit breaker state changed", "breaker", name, "from", from.String(), "to", to.String())
			if f := b.onChange.Load(); f != nil {
				(*f)(to.String())
			}
		},
		IsSuccessful: func(err error) bool { return err == nil },
		// A caller that went away (client disconnect, aggregate cancelled
		// its other calls) says nothing about the upstream's health.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
	})
	return b
}

// SetOnStateChange registers f to be told each new state ("closed",
// "half-open", "open"), for metrics; nil removes it.
func (b *Breaker) SetOnStateChange(f func(state string)) {
	if f == nil {
		b.onChange.Store(nil)
		return
	}
	b.onChange.Store(&f)
}

// Allow asks to make one call. On success, done must be called exactly
// once with the call's outcome: nil, ErrFailed (wrapped or not) or the
// transport error. While open it returns an error wrapping ErrOpen.
func (b *Breaker) Allow() (done func(error), err error) {
	done, err = b.cb.Allow()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOpen, err)
	}
	return done, nil
}

// State is "closed", "open" or "half-open".
func (b *Breaker) State() string { return b.cb.State().String() }

// RetryAfter is how long until an open breaker lets a probe through; at
// least one second, since Retry-After has whole-second resolution.
func (b *Breaker) RetryAfter() time.Duration {
	left := b.timeout - b.now().Sub(time.Unix(0, b.openedAt.Load()))
	return max(left, time.Second)
}
