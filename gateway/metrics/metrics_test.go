package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatewayco/gateway/registry"
)

func TestPolicyAndAggregateCollectorsRecord(t *testing.T) {
	m := New(Options{})
	m.BreakerState("users", 2)
	m.RateLimited("users")
	m.RateLimited("users")
	m.AggregateCall("profile", "orders", "timeout")
	m.WatchError()
	var nilMetrics *Metrics // a gateway without metrics calls these too
	nilMetrics.BreakerState("x", 1)
	nilMetrics.RateLimited("x")
	nilMetrics.AggregateCall("a", "b", "c")
	nilMetrics.WatchError()
	nilMetrics.Observe(nil, "GET", 200, time.Second)
	tests := []struct {
		name      string
		got, want float64
	}{
		{"breaker", testutil.ToFloat64(m.breaker.WithLabelValues("users")), 2},
		{"rate limited", testutil.ToFloat64(m.rateLimited.WithLabelValues("users")), 2},
		{"aggregate", testutil.ToFloat64(m.aggregateCalls.WithLabelValues("profile", "orders", "timeout")), 1},
		{"watch errors", testutil.ToFloat64(m.watchErrors), 1},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestMethodAndStatusLabelsAreAFixedSet(t *testing.T) {
	tests := []struct {
		method string
		want   string
	}{
		{"GET", "GET"}, {"DELETE", "DELETE"}, {"TRACE", "TRACE"},
		{"get", "OTHER"}, {"PURGE", "OTHER"}, {"", "OTHER"},
	}
	for _, tc := range tests {
		if got := methods[methodIndex(tc.method)]; got != tc.want {
			t.Errorf("method %q -> %q, want %q", tc.method, got, tc.want)
		}
	}
	for status, want := range map[int]string{100: "1xx", 204: "2xx", 302: "3xx", 499: "4xx", 503: "5xx", 0: "1xx", 999: "5xx"} {
		if got := codeClasses[classIndex(status)]; got != want {
			t.Errorf("status %d -> %q, want %q", status, got, want)
		}
	}
	// Exact codes where known, the class for anything else, so a backend
	// inventing statuses cannot add series.
	for status, want := range map[int]string{200: "200", 404: "404", 405: "405", 499: "499", 503: "503",
		299: "2xx", 418: "418", 420: "4xx", 599: "5xx", 0: "1xx", 999: "5xx", -7: "1xx", 1 << 20: "5xx"} {
		if got := codeLabels[codeLabelIndex(status)]; got != want {
			t.Errorf("status %d -> code label %q, want %q", status, got, want)
		}
	}
}

func TestPublishedPrunesWhatTheTableNoLongerHas(t *testing.T) {
	m := New(Options{})
	a := registry.ServiceKey{Name: "a"}
	in := registry.Instance{ID: "a-1", Address: "10.0.0.1", Port: 80, Passing: true}
	m.Published(TableView{Rejected: 2, Routes: []string{"r", "agg"},
		Services: map[registry.ServiceKey][]registry.Instance{a: {in}},
		Breakers: map[string]int{"r": 2, "agg/c": 1}})
	m.Observe(m.Route("r"), "GET", 200, time.Millisecond)
	if got := testutil.ToFloat64(m.breaker.WithLabelValues("agg/c")); got != 1 {
		t.Errorf("aggregate call breaker = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.rejected); got != 2 {
		t.Errorf("rejected = %v, want 2", got)
	}
	m.Published(TableView{})
	if n := testutil.CollectAndCount(m.breaker) + testutil.CollectAndCount(m.healthy) + testutil.CollectAndCount(m.requests); n != 0 {
		t.Errorf("%d series left after every route, service and breaker went", n)
	}
	var nilMetrics *Metrics
	nilMetrics.Published(TableView{Rejected: 1})
	if per, none := nilMetrics.Upstream(a, []string{"h:1"}); per != nil || none != (Instance{}) {
		t.Errorf("nil Metrics resolved upstream children %v %v", per, none)
	}
}
