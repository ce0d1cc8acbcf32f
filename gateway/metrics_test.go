package gateway

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/registry"
)

func TestMetricsCountRequestsUpstreamsAndTables(t *testing.T) {
	_, ok := startUpstream(t, "ok-1", nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := instanceOf(t, "gone-1", ln.Addr())
	ln.Close()

	clock := time.Unix(1000, 0)
	m := metrics.New(metrics.Options{LastSync: func() time.Time { return clock.Add(-3 * time.Second) }, Now: func() time.Time { return clock }})
	gw := New(Options{Metrics: m})
	getOnly := prefixRoute("getonly", "/getonly", "ok")
	getOnly.Methods = []string{"GET"}
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{
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
		{"ok GET 200", sample(t, m, "gateway_requests_total", "route", "ok", "method", "GET", "code", "200"), 3},
		{"ok OTHER 200", sample(t, m, "gateway_requests_total", "route", "ok", "method", "OTHER", "code", "200"), 1},
		{"none GET 404", sample(t, m, "gateway_requests_total", "route", "none", "method", "GET", "code", "404"), 1},
		{"none POST 405", sample(t, m, "gateway_requests_total", "route", "none", "method", "POST", "code", "405"), 1},
		{"empty GET 503", sample(t, m, "gateway_requests_total", "route", "empty", "method", "GET", "code", "503"), 1},
		{"refused GET 502", sample(t, m, "gateway_requests_total", "route", "refused", "method", "GET", "code", "502"), 1},
		{"upstream ok requests", sample(t, m, "gateway_upstream_requests_total", "service", "ok", "instance", okHost), 4},
		{"upstream ok errors", sample(t, m, "gateway_upstream_errors_total", "service", "ok", "instance", okHost), 0},
		{"upstream refused errors", sample(t, m, "gateway_upstream_errors_total", "service", "gone", "instance", refused.HostPort()), 1},
		{"upstream no instance", sample(t, m, "gateway_upstream_errors_total", "service", "nobody", "instance", "none"), 1},
		{"healthy ok", sample(t, m, "gateway_service_healthy_instances", "service", "ok"), 1},
		{"healthy nobody", sample(t, m, "gateway_service_healthy_instances", "service", "nobody"), 0},
		{"reloads", sample(t, m, "gateway_config_reloads_total"), 1},
		{"rejected documents", sample(t, m, "gateway_config_rejected_documents"), 1},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if nf, na := m.Unmatched(); nf != 1 || na != 1 {
		t.Errorf("unmatched = %d 404, %d 405; want 1 and 1", nf, na)
	}
	// Children are resolved at build time, so every route has its series
	// (at zero) before its first request, plus "none".
	if n := len(series(t, m, "gateway_request_duration_seconds")); n != 5 {
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
	if got := sample(t, m, "gateway_consul_last_sync_age_seconds"); got != 3 {
		t.Errorf("sync age = %v, want 3", got)
	}
}

func TestSeriesOfRemovedRoutesServicesAndInstancesAreDeleted(t *testing.T) {
	_, a := startUpstream(t, "a-1", nil)
	_, a2 := startUpstream(t, "a-2", nil)
	m := metrics.New(metrics.Options{})
	gw := New(Options{Metrics: m})
	srv := serve(t, gw)
	b := newTableBuilder(gw.deps)
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
		return len(series(t, m, "gateway_service_healthy_instances")), len(series(t, m, "gateway_requests_total")),
			len(series(t, m, "gateway_request_duration_seconds")), len(series(t, m, "gateway_upstream_requests_total"))
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
	if got := sample(t, m, "gateway_upstream_requests_total", "service", "a", "instance", a.HostPort()); got < 1 {
		t.Fatalf("surviving instance lost its count: %v", got)
	}
	if got := sample(t, m, "gateway_config_reloads_total"); got != 2 {
		t.Fatalf("reloads = %v, want 2", got)
	}
}

// BenchmarkServeHTTPWithMetrics measures the request path with metrics on
// against an in-process upstream, to see what instrumentation costs.
func BenchmarkServeHTTPWithMetrics(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		var m *metrics.Metrics
		if on {
			name, m = "on", metrics.New(metrics.Options{})
		}
		b.Run(name, func(b *testing.B) {
			gw := New(Options{Metrics: m})
			gw.Publish(newTableBuilder(gw.deps).build([]config.Route{prefixRoute("none", "/r", "svc")}, fixed(nil), nil))
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
