package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/aggregate"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// bigAnswer is an upstream whose answer for /big/{n} is a JSON string of n
// bytes, sent with its Content-Length; it holds the body back until
// release is closed, counting the answers waiting there now in held. An
// answer the gateway gave up on stops waiting when its connection closes.
func bigAnswer(release <-chan struct{}, held *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/big/"))
		n = max(n, 2)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		if release != nil {
			held.Add(1)
			defer held.Add(-1)
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, `"`+strings.Repeat("x", n-2)+`"`)
	}
}

// budgetGateway serves ag with an aggregate budget of max bytes and
// metrics, every call service answering with h.
func budgetGateway(t *testing.T, max int64, ag config.Aggregate, h http.HandlerFunc) (*Gateway, *metrics.Metrics, string) {
	t.Helper()
	_, in := startUpstream(t, "big", h)
	m := metrics.New(metrics.Options{})
	gw := New(Options{Metrics: m, AggregateMaxBytes: max})
	t.Cleanup(func() { closeIdle(gw.deps.transport) })
	gw.Publish(newTableBuilder(gw.deps).buildAll(nil, []config.Aggregate{ag},
		fixed(map[string][]registry.Instance{"big": {in}}), nil, nil))
	return gw, m, serve(t, gw).URL
}

func bufferedGauge(m *metrics.Metrics) float64 {
	n, _ := testutil.GatherAndCount(m.Registry(), "gateway_aggregate_buffered_bytes")
	if n != 1 {
		return -1
	}
	mfs, _ := m.Registry().Gather()
	for _, mf := range mfs {
		if mf.GetName() == "gateway_aggregate_buffered_bytes" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// TestAggregateBudgetBoundsConcurrentAggregates: with room for three 1 MiB
// answers, eight concurrent aggregates each buffering one: three are
// answered, five get 503 "aggregate memory limit reached" with
// Retry-After at once, the budget is never exceeded, and it is back to
// zero (and so is the gauge) once every answer is written.
func TestAggregateBudgetBoundsConcurrentAggregates(t *testing.T) {
	verifyNoLeaks(t)
	const answer, fits, clients = 1 << 20, 3, 8
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // before the servers close, even on failure
	var held atomic.Int64
	ag := testAggregate("/d/{n}", config.Call{Name: "c", Service: "big", Path: "/big/{n}", Required: true})
	gw, m, url := budgetGateway(t, fits*answer, ag, bigAnswer(release, &held))
	budget := gw.deps.aggBudget

	// The budget's peak, sampled while the requests run.
	var peak atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			peak.Store(max(peak.Load(), budget.Used()))
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	})

	results := make(chan response, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() { results <- do(t, "GET", fmt.Sprintf("%s/d/%d", url, answer)) })
	}
	// Three answers are held at the upstream with their bytes reserved;
	// the other five were refused as soon as their headers arrived.
	var refused []response
	for len(refused) < clients-fits {
		r := <-results
		if r.status == http.StatusOK {
			t.Fatalf("a request succeeded while three answers were held: the budget let a fourth in")
		}
		refused = append(refused, r)
	}
	testkit.WaitValue(t, "the bytes held", func() (int64, bool) { return held.Load(), held.Load() == fits })
	if got := budget.Used(); got != fits*answer {
		t.Errorf("budget holds %d bytes with three answers held, want %d", got, fits*answer)
	}
	releaseOnce()
	wg.Wait()
	close(results)
	ok := 0
	for r := range results {
		if r.status != http.StatusOK || len(r.body) < answer {
			t.Errorf("held request answered %d with %d bytes", r.status, len(r.body))
		}
		ok++
	}
	close(stop)
	sampler.Wait()

	for _, r := range refused {
		var body exchange.ErrorBody
		if err := json.Unmarshal([]byte(r.body), &body); err != nil || r.status != http.StatusServiceUnavailable ||
			body.Error != aggregate.MsgMemory || body.Route != "agg" || r.header.Get("Retry-After") == "" {
			t.Errorf("refused request: %d %q Retry-After %q; want 503 %q naming the aggregate, with Retry-After",
				r.status, r.body, r.header.Get("Retry-After"), aggregate.MsgMemory)
		}
	}
	if ok != fits {
		t.Errorf("%d requests answered, want %d", ok, fits)
	}
	if p := peak.Load(); p > fits*answer {
		t.Errorf("budget peaked at %d bytes, over its bound %d", p, fits*answer)
	}
	if got := budget.Used(); got != 0 {
		t.Errorf("budget holds %d bytes after every answer was written, want 0", got)
	}
	if g := bufferedGauge(m); g != 0 {
		t.Errorf("gateway_aggregate_buffered_bytes = %v after the requests, want 0", g)
	}
	if got := sample(t, m, "gateway_aggregate_calls_total", "aggregate", "agg", "call", "c", "kind", aggregate.KindMemory); got != clients-fits {
		t.Errorf("calls counted as %q = %v, want %d", aggregate.KindMemory, got, clients-fits)
	}
}

// TestAggregateBudgetRefusesTheWholeRequest: an optional call whose body
// does not fit fails the whole request (a partial answer would hide an
// overload of the gateway as a missing member) and cancels the others.
// A body of unknown length is refused as it grows, not only up front.
func TestAggregateBudgetRefusesTheWholeRequest(t *testing.T) {
	verifyNoLeaks(t)
	started, cancelled := make(chan string, 1), make(chan string, 1)
	hang := hangingUntilCancelled(started, cancelled, "hang")
	chunked := func(w http.ResponseWriter, r *http.Request) {
		<-started // grow only once the other call is in flight
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `"`)
		chunk := strings.Repeat("x", 32<<10)
		for range 32 { // 1 MiB, flushed in pieces: no Content-Length
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
		_, _ = io.WriteString(w, `"`)
	}
	ag := testAggregate("/d",
		config.Call{Name: "other", Service: "big", Path: "/hang", Required: true},
		config.Call{Name: "extras", Service: "big", Path: "/chunked"})
	gw, _, url := budgetGateway(t, 256<<10, ag, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			hang(w, r)
			return
		}
		chunked(w, r)
	})
	r := do(t, "GET", url+"/d")
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, aggregate.MsgMemory) {
		t.Fatalf("%d %s; want 503 %q", r.status, r.body, aggregate.MsgMemory)
	}
	if name := <-cancelled; name != "hang" {
		t.Fatalf("cancelled %q", name)
	}
	if got := gw.deps.aggBudget.Used(); got != 0 {
		t.Errorf("budget holds %d bytes after the refusal, want 0", got)
	}
}

// TestAggregateBudgetNeverCountsAgainstTheUpstream: refusals are the
// gateway's own limit; the upstream answered, so neither its breaker nor
// outlier ejection may learn anything from them.
func TestAggregateBudgetNeverCountsAgainstTheUpstream(t *testing.T) {
	verifyNoLeaks(t)
	doc, err := config.Parse("k", []byte(`
aggregate "agg" {
  path = "/d/{n}"
  call "c" {
    service = "big"
    path    = "/big/{n}"
    circuit_breaker {
      failure_ratio = 0.5
      min_requests  = 2
    }
  }
}
`), 1)
	if err != nil {
		t.Fatal(err)
	}
	gw, _, url := budgetGateway(t, 64<<10, doc.Aggregates[0], bigAnswer(nil, nil))
	for range 2 * balancer.DefaultOutlierFailures {
		if r := do(t, "GET", url+"/d/1000000"); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, aggregate.MsgMemory) {
			t.Fatalf("%d %s; want 503 %q", r.status, r.body, aggregate.MsgMemory)
		}
	}
	r := do(t, "GET", url+"/d/100")
	if r.status != http.StatusOK || r.header.Get("X-Gateway-Partial") != "" {
		t.Fatalf("small answer after the refusals: %d %s; want 200 from a closed breaker and a live instance", r.status, r.body)
	}
	if got := gw.deps.aggBudget.Used(); got != 0 {
		t.Errorf("budget holds %d bytes, want 0", got)
	}
}
