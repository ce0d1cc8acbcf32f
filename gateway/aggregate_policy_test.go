package gateway

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// TestAggregatePoliciesMetricsAndDashboard: an aggregate admits requests
// like a route (rate limit), each call is protected like a route (retries
// to another instance), and both show in metrics and in the table the
// dashboard reads.
func TestAggregatePoliciesMetricsAndTable(t *testing.T) {
	var deadHits atomic.Int64
	_, dead := startUpstream(t, "dead", func(w http.ResponseWriter, r *http.Request) {
		deadHits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	_, alive := startUpstream(t, "alive", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	doc, err := config.Parse("k", []byte(`
aggregate "dash" {
  path = "/dash/{id}"
  rate_limit {
    requests_per_second = 1
    burst               = 3
  }
  call "a" {
    service = "svc"
    path    = "/a/{id}"
    retries = 1
  }
}
`), 1)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{})
	clk := testkit.NewClock()
	gw := New(Options{Metrics: m, Now: clk.Now})
	gw.Publish(newTableBuilder(gw.deps).buildAll(nil, doc.Aggregates,
		fixed(map[string][]registry.Instance{"svc": {dead, alive}}), nil, nil))
	srv := serve(t, gw)

	for range 3 {
		if r := do(t, "GET", srv.URL+"/dash/7"); r.status != 200 || r.header.Get("X-Gateway-Partial") != "" {
			t.Fatalf("%d %s: want 200 without partial, the retry reaching the live instance", r.status, r.body)
		}
	}
	if deadHits.Load() == 0 {
		t.Fatal("the dead instance was never tried; the test proves nothing about retries")
	}
	if r := do(t, "GET", srv.URL+"/dash/7"); r.status != http.StatusTooManyRequests {
		t.Fatalf("4th request: %d, want 429 from the aggregate's rate limit", r.status)
	}
	if got := sample(t, m, "gateway_aggregate_calls_total", "aggregate", "dash", "call", "a", "kind", "ok"); got != 3 {
		t.Errorf("aggregate call outcomes ok = %v, want 3", got)
	}
	if got := sample(t, m, "gateway_rate_limited_requests_total", "route", "dash"); got != 1 {
		t.Errorf("rate limited = %v, want 1", got)
	}
	if total, _ := m.Counts("dash"); total != 4 {
		t.Errorf("requests counted under the aggregate = %d, want 4 (429 included)", total)
	}
	aggs := gw.Table().Aggregates()
	if len(aggs) != 1 || aggs[0].Config.Name != "dash" || len(aggs[0].Calls) != 1 || len(aggs[0].Calls[0].InstanceStates(clk.Now())) != 2 {
		t.Fatalf("the table's aggregates = %+v", aggs)
	}
}

// TestAggregateOnlyServicesHaveTheirSeriesPruned: a service only an
// aggregate calls gets a healthy gauge and upstream series like a route's,
// and loses them with the aggregate.
func TestAggregateOnlyServicesHaveTheirSeriesPruned(t *testing.T) {
	_, up := startUpstream(t, "u", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{}`)) })
	doc, err := config.Parse("k", []byte(`
aggregate "dash" {
  path = "/dash/{id}"
  call "a" {
    service = "only-agg"
    path    = "/a/{id}"
  }
}
`), 1)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{})
	gw := New(Options{Metrics: m})
	b := newTableBuilder(gw.deps)
	gw.Publish(b.buildAll(nil, doc.Aggregates, fixed(map[string][]registry.Instance{"only-agg": {up}}), nil, nil))
	srv := serve(t, gw)
	if r := do(t, "GET", srv.URL+"/dash/1"); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if got := sample(t, m, "gateway_service_healthy_instances", "service", "only-agg"); got != 1 {
		t.Errorf("healthy gauge for an aggregate-only service = %v, want 1", got)
	}
	if n := len(series(t, m, "gateway_upstream_requests_total")); n == 0 {
		t.Fatal("no upstream series for the aggregate's call")
	}
	gw.Publish(b.buildAll(nil, nil, fixed(nil), nil, nil))
	if n := len(series(t, m, "gateway_upstream_requests_total")) + len(series(t, m, "gateway_service_healthy_instances")); n != 0 {
		t.Errorf("%d series left after the aggregate was removed", n)
	}
}
