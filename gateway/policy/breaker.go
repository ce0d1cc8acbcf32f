package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sony/gobreaker/v2"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
)

// ErrOpen is returned by Breaker.Allow while the breaker refuses calls.
var ErrOpen = errors.New("circuit breaker open")

// ErrFailed marks an outcome that counts as a failure although the call
// returned no error, such as a 5xx answer.
var ErrFailed = errors.New("upstream failed")

// BreakerState is a circuit breaker's state, spelled one way everywhere
// it is shown: "closed", "half_open" or "open" in /routes, the dashboard
// and logs, and its Level in the metric.
type BreakerState uint8

// The states of a Breaker, in the order of their Level.
const (
	BreakerClosed BreakerState = iota
	BreakerHalfOpen
	BreakerOpen
)

// String is the state's one spelling.
func (s BreakerState) String() string {
	switch s {
	case BreakerHalfOpen:
		return "half_open"
	case BreakerOpen:
		return "open"
	}
	return "closed"
}

// Level is the metric's value of the state: 0 closed, 1 half-open, 2 open.
func (s BreakerState) Level() int { return int(s) }

// MarshalText makes JSON show the state's String.
func (s BreakerState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func stateOf(s gobreaker.State) BreakerState {
	switch s {
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	case gobreaker.StateOpen:
		return BreakerOpen
	}
	return BreakerClosed
}

// Breaker is one circuit breaker: it trips when at least MinRequests calls
// were made in the last BreakerWindow and FailureRatio of them failed,
// stays open for OpenTimeout, then lets one probe through (half-open) and
// closes again if the probe succeeds.
type Breaker struct {
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	timeout  time.Duration
	now      func() time.Time
	openedAt atomic.Int64 // UnixNano of the last transition to open
	onChange atomic.Pointer[func(BreakerState)]
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
			logger.Warn("circuit breaker state changed", "breaker", name, "from", stateOf(from).String(), "to", stateOf(to).String())
			if f := b.onChange.Load(); f != nil {
				(*f)(stateOf(to))
			}
		},
		IsSuccessful: func(err error) bool { return err == nil },
		// A caller that went away (client disconnect, aggregate cancelled
		// its other calls) says nothing about the upstream's health.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
	})
	return b
}

// SetOnStateChange registers f to be told each new state, for metrics;
// nil removes it.
func (b *Breaker) SetOnStateChange(f func(BreakerState)) {
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

// State is the breaker's state now.
func (b *Breaker) State() BreakerState { return stateOf(b.cb.State()) }

// RetryAfter is how long until an open breaker lets a probe through; at
// least one second, since Retry-After has whole-second resolution.
func (b *Breaker) RetryAfter() time.Duration {
	left := b.timeout - b.now().Sub(time.Unix(0, b.openedAt.Load()))
	return max(left, time.Second)
}

// RouteBreaker is a route's circuit breaker around its upstream, with what
// to answer while it is open: a cached answer (serve_stale), the
// configured fallback, or an *OpenError. It outlives table swaps while
// the route's circuit_breaker block is unchanged, and is safe for
// concurrent use.
type RouteBreaker struct {
	cb       *Breaker
	fallback *config.Fallback // nil: none
	stale    *StaleCache      // nil: serve_stale off
}

// NewRouteBreaker wraps cb with the fallback and the stale cache cfg asks
// for.
func NewRouteBreaker(cb *Breaker, cfg *config.CircuitBreaker) *RouteBreaker {
	rb := &RouteBreaker{cb: cb, fallback: cfg.Fallback}
	if cfg.ServeStale {
		rb.stale = NewStaleCache(0, 0)
	}
	return rb
}

// State is the breaker's state now.
func (b *RouteBreaker) State() BreakerState { return b.cb.State() }

// OpenError is what an open breaker without an applicable fallback
// returns; the proxy answers 503 with Retry-After.
type OpenError struct {
	// RetryAfter is how long until the breaker lets a probe through.
	RetryAfter time.Duration
}

// Error is the same whatever the wait.
func (e *OpenError) Error() string { return "circuit breaker open" }

// Unwrap makes an OpenError match ErrOpen.
func (e *OpenError) Unwrap() error { return ErrOpen }

// RoundTrip runs send behind the breaker. While open, a GET is answered
// from the stale cache when possible, then the fallback, then an
// *OpenError.
func (b *RouteBreaker) RoundTrip(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	done, err := b.cb.Allow()
	if err != nil {
		return b.whenOpen(req)
	}
	resp, err := send(req)
	done(outcome(req, resp, err))
	if err == nil && b.stale != nil && req.Method == http.MethodGet && resp.StatusCode == http.StatusOK && shareable(req, resp) {
		b.stale.record(req, resp)
	}
	return resp, err
}

// outcome classifies a call for the breaker: 5xx, connection errors and
// timeouts fail; a client's fault (it went away, or its body broke, see
// exchange.Classify) is excluded; the rest succeed.
func outcome(req *http.Request, resp *http.Response, err error) error {
	switch {
	case err != nil && exchange.ClientFault(req, err):
		return context.Canceled // excluded: not the upstream's doing
	case err != nil:
		return err
	case resp.StatusCode >= 500:
		return fmt.Errorf("%w: status %d", ErrFailed, resp.StatusCode)
	}
	return nil
}

func (b *RouteBreaker) whenOpen(req *http.Request) (*http.Response, error) {
	if b.stale != nil && req.Method == http.MethodGet && req.Header.Get("Authorization") == "" && req.Header.Get("Cookie") == "" {
		if e := b.stale.lookup(req); e != nil {
			h := e.Header.Clone()
			h.Set(StaleHeader, "1")
			return synthetic(req, e.Status, h, e.Body), nil
		}
	}
	// A fixed HTTP answer is no gRPC answer: a gRPC client gets the
	// open breaker as UNAVAILABLE instead.
	if f := b.fallback; f != nil && !exchange.IsGRPC(req) {
		h := http.Header{}
		if f.ContentType != "" {
			h.Set("Content-Type", f.ContentType)
		}
		return synthetic(req, f.Status, h, []byte(f.Body)), nil
	}
	return nil, &OpenError{RetryAfter: b.cb.RetryAfter()}
}

func synthetic(req *http.Request, status int, h http.Header, body []byte) *http.Response {
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return &http.Response{
		Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), StatusCode: status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}
}
