package registry

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/time/rate"
)

// Defaults applied by Options for zero fields.
const (
	DefaultWaitTime   = 60 * time.Second
	DefaultMargin     = 5 * time.Second
	DefaultRateLimit  = rate.Limit(20)
	DefaultBurst      = 5
	DefaultBackoffMin = 50 * time.Millisecond
	// DefaultBackoffMax keeps the longest wait after a failure under 5 s,
	// so changes flow again within 5 s of Consul's return after any outage
	// while an absent agent still sees at most one call per 2 s per watch.
	DefaultBackoffMax = 4 * time.Second
)

// Options tune every watch loop. The zero value is ready to use: each zero
// field means the documented default.
type Options struct {
	// WaitTime is the blocking-query wait sent to Consul. Zero means
	// DefaultWaitTime (60s). Consul caps it at 10 minutes.
	WaitTime time.Duration

	// Margin is added to each call's deadline on top of WaitTime and the
	// WaitTime/16 jitter Consul may add, so that a healthy long poll never
	// times out but a half-open connection does. Zero means DefaultMargin (5s).
	Margin time.Duration

	// RateLimit and Burst form a token bucket over the successive calls of one
	// loop, so a Consul that answers instantly every time cannot make a loop
	// spin. Zero means DefaultRateLimit (20 calls/s) and DefaultBurst (5);
	// rate.Inf disables the limit.
	RateLimit rate.Limit
	Burst     int

	// BackoffMin and BackoffMax bound the retry delay after failed calls. The
	// step doubles per consecutive failure from BackoffMin up to BackoffMax,
	// and the actual delay is drawn uniformly from [step/2, step] so that many
	// watches failing together do not retry in lockstep. A success resets it.
	// Zero means DefaultBackoffMin (50ms) and DefaultBackoffMax (4s).
	BackoffMin time.Duration
	BackoffMax time.Duration

	// Logger receives one warning per failed call. Nil discards logs.
	Logger hclog.Logger

	// Status, when non-nil, is told the outcome of every call so /health can
	// report Consul reachability. Nil means outcomes are not reported.
	Status *Status

	// OnError, when non-nil, is called after every failed call (not after
	// cancellations at shutdown), so metrics can count watch errors. It
	// must be cheap and must not block. Nil means nobody counts.
	OnError func()

	// Now, Rand and Sleep exist so tests can make loops deterministic.
	// Now is the clock for the rate limiter and Status; nil means time.Now.
	Now func() time.Time
	// Rand returns a number in [0, 1) used for backoff jitter; nil means
	// math/rand/v2's Float64.
	Rand func() float64
	// Sleep waits for d or until ctx is done, returning ctx.Err() in the
	// latter case. Loops use it for rate-limit and backoff delays only; nil
	// means a timer-based wait.
	Sleep func(ctx context.Context, d time.Duration) error
}

// withDefaults returns a copy with every zero field replaced by its default.
func (o Options) withDefaults() Options {
	if o.WaitTime <= 0 {
		o.WaitTime = DefaultWaitTime
	}
	if o.Margin <= 0 {
		o.Margin = DefaultMargin
	}
	if o.RateLimit <= 0 {
		o.RateLimit = DefaultRateLimit
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	return o
}

// callTimeout is the deadline of one blocking call: Consul may hold a query up
// to WaitTime plus WaitTime/16 of jitter before answering, and the api client
// itself has no timeout, so without this a silently dropped connection would
// stall the watch until TCP keepalive gives up.
func (o Options) callTimeout() time.Duration {
	return o.WaitTime + o.WaitTime/16 + o.Margin
}

// backoff returns the delay before retrying after the given number of
// consecutive failures (1 for the first).
func (o Options) backoff(failures int) time.Duration {
	step := o.BackoffMin
	for i := 1; i < failures && step < o.BackoffMax; i++ {
		step *= 2
	}
	step = min(step, o.BackoffMax)
	half := step / 2
	return half + time.Duration(o.Rand()*float64(step-half))
}

// pace takes one token from limiter, sleeping through o.Sleep so that
// tests control time.
func (o Options) pace(ctx context.Context, limiter *rate.Limiter) error {
	now := o.Now()
	delay := limiter.ReserveN(now, 1).DelayFrom(now)
	if delay <= 0 {
		return ctx.Err()
	}
	return o.Sleep(ctx, delay)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
