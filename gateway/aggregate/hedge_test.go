package aggregate

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/gateway/upstream"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

func instanceAt(t *testing.T, id string, addr net.Addr) registry.Instance {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr.String())
	p, _ := strconv.Atoi(port)
	return registry.Instance{ID: id, Address: host, Port: p, Passing: true}
}

// hedgeFixture is one aggregate with one hedged call over the instances
// of srvs, with a fake clock for the hedge timer.
type hedgeFixture struct {
	ag    *Aggregate
	call  *Call
	clock *testkit.Clock
}

func newHedgeFixture(t *testing.T, budget *policy.RetryBudget, srvs ...*httptest.Server) *hedgeFixture {
	t.Helper()
	var insts []registry.Instance
	for i, s := range srvs {
		insts = append(insts, instanceAt(t, fmt.Sprint(i), s.Listener.Addr()))
	}
	key := registry.ServiceKey{Name: "s"}
	// Always the first available instance: only the hedge's avoiding the
	// first copy's instance sends it elsewhere.
	bal, err := balancer.NewWithSource(balancer.Random, func(int) int { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	up := upstream.New(upstream.Config{Service: key, Instances: insts, Balancer: bal, Transport: tr})
	cc := config.Call{Name: "c", Service: "s", Path: "/x", HedgeAfter: 50 * time.Millisecond}
	call, err := NewCall(cc, key, insts, "", up)
	if err != nil {
		t.Fatal(err)
	}
	clock := testkit.NewClock()
	cfg := config.Aggregate{Name: "agg", Path: "/x", MaxConcurrency: 1, MaxResponseBytes: 1 << 20, TimeoutStatus: 504, Calls: []config.Call{cc}}
	ag := New(cfg, []*Call{call}, Deps{Budget: NewBudget(0), Metrics: metrics.New(metrics.Options{}),
		HedgeBudget: func(string) *policy.RetryBudget { return budget }, AfterFunc: clock.AfterFunc})
	return &hedgeFixture{ag: ag, call: call, clock: clock}
}

// serve runs one aggregate request in the background.
func (f *hedgeFixture) serve() <-chan *httptest.ResponseRecorder {
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		f.ag.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
		done <- rec
	}()
	return done
}

// TestHedgeGoesToAnotherInstanceAndCancelsTheSlowCopy: the first copy
// hangs; once hedge_after passes on the clock, a second copy goes to the
// other instance, its answer is taken, and the first is cancelled.
func TestHedgeGoesToAnotherInstanceAndCancelsTheSlowCopy(t *testing.T) {
	var first atomic.Bool
	started, cancelled := make(chan string, 1), make(chan struct{})
	var hosts sync.Map
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Host, true)
		if first.CompareAndSwap(false, true) {
			started <- r.Host
			<-r.Context().Done()
			close(cancelled)
			return
		}
		fmt.Fprintf(w, `{"from":%q}`, r.Host)
	})
	a, b := httptest.NewServer(h), httptest.NewServer(h)
	defer a.Close()
	defer b.Close()
	f := newHedgeFixture(t, policy.NewRetryBudget(1, 0, nil), a, b)
	done := f.serve()
	slow := <-started
	testkit.WaitFor(t, "the hedge timer", func() bool { return f.clock.Timers() == 1 })
	f.clock.Advance(50 * time.Millisecond)
	rec := <-done
	<-cancelled
	other := a.Listener.Addr().String()
	if other == slow {
		other = b.Listener.Addr().String()
	}
	if want := fmt.Sprintf(`{"c":{"from":%q}}`, other); rec.Code != 200 || rec.Body.String() != want {
		t.Errorf("answer %d %s, want 200 %s", rec.Code, rec.Body, want)
	}
	if sent, won := testutil.ToFloat64(f.call.counters.HedgeSent), testutil.ToFloat64(f.call.counters.HedgeWon); sent != 1 || won != 1 {
		t.Errorf("hedges sent %v won %v, want 1 1", sent, won)
	}
}

// TestHedgeNotSentWhenTheFirstAnswersInTime: an answer before
// hedge_after is taken, and the timer is stopped.
func TestHedgeNotSentWhenTheFirstAnswersInTime(t *testing.T) {
	var calls atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fmt.Fprint(w, `{}`)
	})
	a, b := httptest.NewServer(h), httptest.NewServer(h)
	defer a.Close()
	defer b.Close()
	f := newHedgeFixture(t, policy.NewRetryBudget(1, 0, nil), a, b)
	if rec := <-f.serve(); rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	if n, timers := calls.Load(), f.clock.Timers(); n != 1 || timers != 0 {
		t.Errorf("%d calls, %d timers left, want 1 and 0", n, timers)
	}
	if sent := testutil.ToFloat64(f.call.counters.HedgeSent); sent != 0 {
		t.Errorf("hedges sent %v", sent)
	}
}

// TestHedgeBudgetRefusesAHedgeTheRatioDoesNotCover: with the default
// budget, the first call of a call site may not be hedged (it would be
// 100 % of its calls); the first copy's answer is waited for.
func TestHedgeBudgetRefusesAHedgeTheRatioDoesNotCover(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	var calls atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		started <- struct{}{}
		<-release
		fmt.Fprint(w, `{}`)
	})
	a, b := httptest.NewServer(h), httptest.NewServer(h)
	defer a.Close()
	defer b.Close()
	clock := testkit.NewClock()
	f := newHedgeFixture(t, NewHedgeBudget(clock.Now), a, b)
	done := f.serve()
	<-started
	testkit.WaitFor(t, "the hedge timer", func() bool { return f.clock.Timers() == 1 })
	f.clock.Advance(50 * time.Millisecond)
	close(release)
	if rec := <-done; rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d copies sent, want 1", n)
	}
}

// TestHedgeBudgetIsTenPercent: one hedge per ten calls of a call site,
// with no floor.
func TestHedgeBudgetIsTenPercent(t *testing.T) {
	clock := testkit.NewClock()
	b := NewHedgeBudget(clock.Now)
	hedged := 0
	for range 100 {
		b.Request()
		if b.TryRetry() {
			hedged++
		}
	}
	if hedged != 10 {
		t.Errorf("%d hedges for 100 calls, want 10", hedged)
	}
}

// TestHedgeNeedsAnotherInstance: with one instance there is nobody to
// hedge to, so the call is not hedged at all.
func TestHedgeNeedsAnotherInstance(t *testing.T) {
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{}`) }))
	defer a.Close()
	f := newHedgeFixture(t, policy.NewRetryBudget(1, 0, nil), a)
	if f.call.hedges != nil {
		t.Error("a call with one instance is hedged")
	}
}

// TestHedgeFailureDoesNotBeatASlowGoodAnswer: a hedge answering 503 is
// not taken; the first copy's later 200 is.
func TestHedgeFailureDoesNotBeatASlowGoodAnswer(t *testing.T) {
	var first atomic.Bool
	started, hedged := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first.CompareAndSwap(false, true) {
			close(started)
			<-hedged
			fmt.Fprint(w, `{"from":"first"}`)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		close(hedged)
	})
	a, b := httptest.NewServer(h), httptest.NewServer(h)
	defer a.Close()
	defer b.Close()
	f := newHedgeFixture(t, policy.NewRetryBudget(1, 0, nil), a, b)
	done := f.serve()
	<-started
	testkit.WaitFor(t, "the hedge timer", func() bool { return f.clock.Timers() == 1 })
	f.clock.Advance(50 * time.Millisecond)
	if rec := <-done; rec.Code != 200 || rec.Body.String() != `{"c":{"from":"first"}}` {
		t.Errorf("answer %d %s", rec.Code, rec.Body)
	}
	if sent, won := testutil.ToFloat64(f.call.counters.HedgeSent), testutil.ToFloat64(f.call.counters.HedgeWon); sent != 1 || won != 0 {
		t.Errorf("hedges sent %v won %v, want 1 0", sent, won)
	}
}
