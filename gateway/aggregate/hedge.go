package aggregate

import (
	"context"
	"net/http"
	"time"

	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/gateway/upstream"
)

// Hedging: a GET call with hedge_after that has not answered within it
// is sent a second time, to another instance of its service, and the
// first good answer is taken; the other copy is cancelled. It can never
// double the load: at most one hedge per call, and a budget per call site
// of HedgeRatio of its calls (no floor, so a quiet call site hedges at
// most one call in ten too).

// HedgeRatio is the share of a call site's calls that may be hedged, over
// the retry budget's sliding window.
const HedgeRatio = 0.1

// NewHedgeBudget returns the hedge budget of one call site; now nil means
// time.Now. The table builder keeps one per call across table swaps.
func NewHedgeBudget(now func() time.Time) *policy.RetryBudget {
	return policy.NewRetryBudget(HedgeRatio, 0, now)
}

// afterFunc runs f after d unless stopped, as time.AfterFunc; tests pass
// a clock's.
type afterFunc func(d time.Duration, f func()) (stop func() bool)

func realAfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// attempt is one copy's outcome.
type attempt struct {
	resp   *http.Response
	err    error
	cancel context.CancelFunc
	hedge  bool
}

// good reports whether an attempt's answer is one to take: any answer
// but a 5xx, which the other copy may beat.
func (a attempt) good() bool { return a.err == nil && a.resp.StatusCode < 500 }

// roundTrip sends req through the call's upstream, hedged when the call
// hedges. done must be called once the response body has been read; it
// ends the winning copy's context.
func (c *Call) roundTrip(req *http.Request) (resp *http.Response, done func(), err error) {
	if c.hedges == nil {
		resp, err = c.up.RoundTrip(req)
		return resp, func() {}, err
	}
	c.hedges.Request()
	ctx := req.Context()
	answers := make(chan attempt, 2)
	send := func(r *http.Request, cancel context.CancelFunc, hedge bool) {
		resp, err := c.up.RoundTrip(r)
		answers <- attempt{resp: resp, err: err, cancel: cancel, hedge: hedge}
	}
	// The second copy is cloned now: sending the first rewrites its URL
	// (the instance picked), which cloning later would race with.
	hedgeReq := req.Clone(ctx)
	picks := &upstream.Picks{}
	ctx1, cancel1 := context.WithCancel(ctx)
	go send(req.WithContext(upstream.WithPicks(ctx1, picks)), cancel1, false)

	fire := make(chan struct{})
	stop := c.after(c.Config.HedgeAfter, func() { close(fire) })
	select {
	case a := <-answers:
		stop()
		return a.resp, a.cancel, a.err
	case <-ctx.Done():
		stop()
		a := <-answers
		return a.resp, a.cancel, a.err
	case <-fire:
	}
	if !c.hedges.TryRetry() {
		a := <-answers
		return a.resp, a.cancel, a.err
	}
	metrics.Inc(c.counters.HedgeSent)
	ctx2, cancel2 := context.WithCancel(ctx)
	go send(hedgeReq.WithContext(upstream.WithAvoid(ctx2, picks.Hosts())), cancel2, true)

	first := <-answers
	win, lose := first, attempt{}
	pending := 1
	if !first.good() {
		// The other copy may still do better; a failure is taken only
		// when both failed (then the first one's).
		second := <-answers
		pending = 0
		if second.good() {
			win, lose = second, first
		} else {
			lose = second
		}
	}
	if win.hedge {
		metrics.Inc(c.counters.HedgeWon)
	}
	if lose.cancel != nil {
		discard(lose)
	}
	if pending > 0 {
		// The slower copy is cancelled now; its answer, when it comes,
		// is closed by a goroutine that ends with its round trip.
		if first.hedge {
			cancel1()
		} else {
			cancel2()
		}
		go func() { discard(<-answers) }()
	}
	return win.resp, win.cancel, win.err
}

// discard ends an attempt whose answer is not taken.
func discard(a attempt) {
	a.cancel()
	if a.resp != nil {
		a.resp.Body.Close()
	}
}
