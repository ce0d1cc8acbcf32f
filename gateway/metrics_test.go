package gateway

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

func TestMetricsCountRequestsUpstreamsAndTables(t *testing.T) {
	_, ok := startUpstream(t, "ok-1", nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := instanceOf(t, "gone-1", ln.Addr())
	ln.Close()

	clock := time.Unix(1000, 0)
	m := NewMetrics(MetricsOptions{LastSync: func() time.Time { return clock.Add(-3 * time.Second) }, Now: func() time.Time { return clock }})
	gw := New(Options{Metrics: m})
	getOnly := prefixRoute("getonly", "/getonly", "ok")
	getOnly.Methods = []string{"GET"}
	gw.Publish(newTableBuilder(gw.proxy).build([]config.Route{
		prefixRoute("ok", "/ok", "ok"), getOnly,
		prefixRoute("empty", "/empty", "nobody"),
		prefixRoute("refused", "/refused", "gone"),
	}, fixed(map[string][]registry.Instance{"ok": {ok}, "gone": {refused}}),
		[]ConfigError{{Key: "gateway/routes/bad.hcl", Message: "bad"}}))
	srv := serve(t, gw)

	send := func(method, path string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for range 3 {
		send("GET", "/ok/user/1")
	}
	send("PURGE", "/ok/a")          // unknown method: folded into OTHER
	send("GET", "/no/such/path/42") // no route: route="none", never the path
	send("POST", "/getonly")        // 405: no route matched the method
	send("GET", "/empty")           // 503, no instance
	send("GET", "/refused")         // 502, connection refused

	okHost := ok.HostPort()
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"ok GET 2xx", testutil.ToFloat64(m.requests.WithLabelValues("ok", "GET", "2xx")), 3},
		{"ok OTHER 2xx", testutil.ToFloat64(m.requests.WithLabelValues("ok", "OTHER", "2xx")), 1},
		{"none GET 4xx", testutil.ToFloat64(m.requests.WithLabelValues("none", "GET", "4xx")), 1},
		{"none POST 4xx (405)", testutil.ToFloat64(m.requests.WithLabelValues("none", "POST", "4xx")), 1},
		{"empty GET 5xx", testutil.ToFloat64(m.requests.WithLabelValues("empty", "GET", "5xx")), 1},
		{"refused GET 5xx", testutil.ToFloat64(m.requests.WithLabelValues("refused", "GET", "5xx")), 1},
		{"upstream ok requests", testutil.ToFloat64(m.upstreamRequests.WithLabelValues("ok", okHost)), 4},
		{"upstream ok errors", testutil.ToFloat64(m.upstreamErrors.WithLabelValues("ok", okHost)), 0},
		{"upstream refused errors", testutil.ToFloat64(m.upstreamErrors.WithLabelValues("gone", refused.HostPort())), 1},
		{"upstream no instance", testutil.ToFloat64(m.upstreamErrors.WithLabelValues("nobody", "none")), 1},
		{"healthy ok", testutil.ToFloat64(m.healthy.WithLabelValues("ok")), 1},
		{"healthy nobody", testutil.ToFloat64(m.healthy.WithLabelValues("nobody")), 0},
		{"reloads", testutil.ToFloat64(m.reloads), 1},
		{"rejected documents", testutil.ToFloat64(m.rejected), 1},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	// Children are resolved at build time, so every route has its series
	// (at zero) before its first request, plus "none".
	if n := testutil.CollectAndCount(m.latency, "gateway_request_duration_seconds"); n != 5 {
		t.Errorf("latency histograms: %d series, want 5 (4 routes + none)", n)
	}
	if total, errs := m.Counts("refused"); total != 1 || errs != 1 {
		t.Errorf("dashboard counts for refused = %d, %d; want 1, 1", total, errs)
	}

	// Bounded cardinality: no raw path ever becomes a label value.
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if strings.Contains(l.GetValue(), "/") {
					t.Errorf("%s has label %s=%q: a path", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	if got := gathered(t, m, "gateway_consul_last_sync_age_seconds"); got != 3 {
		t.Errorf("sync age = %v, want 3", got)
	}
}

func TestSeriesOfRemovedRoutesServicesAndInstancesAreDeleted(t *testing.T) {
	_, a := startUpstream(t, "a-1", nil)
	_, a2 := startUpstream(t, "a-2", nil)
	m := NewMetrics(MetricsOptions{})
	gw := New(Options{Metrics: m})
	srv := serve(t, gw)
	b := newTableBuilder(gw.proxy)
	gw.Publish(b.build([]config.Route{prefixRoute("a", "/a", "a"), prefixRoute("b", "/b", "b")},
		fixed(map[string][]registry.Instance{"a": {a, a2}, "b": {a}}), nil))
	for _, p := range []string{"/a", "/a", "/b"} {
		resp, err := srv.Client().Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	count := func() (healthy, requests, latency, upstream int) {
		return testutil.CollectAndCount(m.healthy), testutil.CollectAndCount(m.requests),
			testutil.CollectAndCount(m.latency), testutil.CollectAndCount(m.upstreamRequests)
	}
	h, r, l, u := count()
	// requests: only the (route, method, class) combinations used: a and b GET 2xx.
	if h != 2 || r != 2 || l != 3 || u != 5 {
		t.Fatalf("before: healthy %d requests %d latency %d upstream %d; want 2 2 3 5", h, r, l, u)
	}
	// Route b goes away and instance a-2 leaves service a.
	gw.Publish(b.build([]config.Route{prefixRoute("a", "/a", "a")},
		fixed(map[string][]registry.Instance{"a": {a}}), nil))
	h, r, l, u = count()
	if h != 1 || r != 1 || l != 2 || u != 2 {
		t.Fatalf("after: healthy %d requests %d latency %d upstream %d; want 1 1 2 2 (a's instance + none)", h, r, l, u)
	}
	if got := testutil.ToFloat64(m.upstreamRequests.WithLabelValues("a", a.HostPort())); got < 1 {
		t.Fatalf("surviving instance lost its count: %v", got)
	}
	if got := testutil.ToFloat64(m.reloads); got != 2 {
		t.Fatalf("reloads = %v, want 2", got)
	}
}

func TestMergeCollectorsRecord(t *testing.T) {
	m := NewMetrics(MetricsOptions{})
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
	nilMetrics.observe(nil, "GET", 200, time.Second)
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
}

// BenchmarkServeHTTPWithMetrics measures the request path with metrics on
// against an in-process upstream, to see what instrumentation costs.
func BenchmarkServeHTTPWithMetrics(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		var m *Metrics
		if on {
			name, m = "on", NewMetrics(MetricsOptions{})
		}
		b.Run(name, func(b *testing.B) {
			gw := New(Options{Metrics: m})
			gw.Publish(newTableBuilder(gw.proxy).build([]config.Route{prefixRoute("none", "/r", "svc")}, fixed(nil), nil))
			req, _ := http.NewRequest("GET", "/nope", nil)
			b.ReportAllocs()
			for b.Loop() {
				gw.ServeHTTP(discard{}, req)
			}
		})
	}
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}

// gathered returns the value of an unlabelled gauge as a scrape sees it.
func gathered(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no single-series metric %s", name)
	return 0
}
