package gateway

import (
	"net/http"
	"testing"

	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// TestPolicyMetricsMoveWithTraffic drives a rate limit and a circuit
// breaker through real requests and reads their series and the table's
// breaker state.
func TestPolicyMetricsMoveWithTraffic(t *testing.T) {
	_, up := startUpstream(t, "sick", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	})
	m := metrics.New(metrics.Options{})
	clk := testkit.NewClock()
	pg := startPolicyGateway(t, Options{Metrics: m, Now: clk.Now}, `
route "limited" {
  path_prefix = "/limited"
  service     = "sick"
  rate_limit {
    requests_per_second = 1
    burst               = 2
  }
}
route "fragile" {
  path_prefix = "/fragile"
  service     = "sick"
  circuit_breaker {
    failure_ratio = 0.5
    min_requests  = 3
    open_timeout  = "1m"
  }
}
`, map[string][]registry.Instance{"sick": {up}})

	for range 5 {
		do(t, "GET", pg.url+"/limited")
	}
	if got := sample(t, m, "gateway_rate_limited_requests_total", "route", "limited"); got != 3 {
		t.Errorf("rate limited counter = %v, want 3 (5 requests, burst 2)", got)
	}
	if got := sample(t, m, "gateway_circuit_breaker_state", "route", "fragile"); got != 0 {
		t.Errorf("breaker gauge before traffic = %v, want 0 (closed)", got)
	}
	for range 4 {
		do(t, "GET", pg.url+"/fragile")
	}
	if got := sample(t, m, "gateway_circuit_breaker_state", "route", "fragile"); got != 2 {
		t.Errorf("breaker gauge after failures = %v, want 2 (open)", got)
	}
	if s := breakerState(pg.route("fragile")); s != "open" {
		t.Errorf("the table's breaker state = %q, want open", s)
	}

	// A route that loses its breaker loses the series too.
	pg.publish(t, `
route "fragile" {
  path_prefix = "/fragile"
  service     = "sick"
}
`)
	if n := len(series(t, m, "gateway_circuit_breaker_state")); n != 0 {
		t.Errorf("%d breaker series left after the breaker was removed", n)
	}
	if n := len(series(t, m, "gateway_rate_limited_requests_total")); n != 0 {
		t.Errorf("%d rate-limit series left after the route was removed", n)
	}
}
