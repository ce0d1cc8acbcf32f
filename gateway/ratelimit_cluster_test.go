package gateway

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

const clusterLimitedDoc = `
route "api" {
  path_prefix = "/api"
  service     = "api"
  rate_limit {
    requests_per_second = 1
    burst               = 6
    scope               = "cluster"
  }
}
`

// TestClusterRateLimitSharesFollowReplicasAcrossSwaps checks that a
// cluster-scoped route enforces its share of the limit for the replica
// count Options.Replicas reports, that a new count applies without a
// table swap, and that a swap keeps the buckets: a routing change must
// not hand clients a fresh burst.
func TestClusterRateLimitSharesFollowReplicasAcrossSwaps(t *testing.T) {
	_, inst := startUpstream(t, "api-1", nil)
	clk := testkit.NewClock()
	var replicas atomic.Int64
	replicas.Store(3)
	insts := map[string][]registry.Instance{"api": {inst}}
	pg := startPolicyGateway(t, Options{Now: clk.Now, Replicas: func() int { return int(replicas.Load()) }}, clusterLimitedDoc, insts)
	admitted := func() int {
		t.Helper()
		n := 0
		for {
			r := do(t, "GET", pg.url+"/api")
			if r.status == http.StatusTooManyRequests {
				return n
			}
			if r.status != 200 {
				t.Fatalf("status %d", r.status)
			}
			n++
		}
	}
	if n := admitted(); n != 2 {
		t.Fatalf("burst 6 over 3 replicas: %d admitted, want 2", n)
	}
	if r := do(t, "GET", pg.url+"/api"); r.header.Get("X-RateLimit-Limit") != "2" {
		t.Fatalf("X-RateLimit-Limit %q, want this replica's share, 2", r.header.Get("X-RateLimit-Limit"))
	}
	pg.publish(t, clusterLimitedDoc+`route "other" {
  path_prefix = "/other"
  service = "api"
}`)
	if r := do(t, "GET", pg.url+"/api"); r.status != http.StatusTooManyRequests {
		t.Fatalf("after a swap: %d, want 429 (bucket kept)", r.status)
	}
	replicas.Store(1)
	r := do(t, "GET", pg.url+"/api")
	if r.status != http.StatusTooManyRequests || r.header.Get("X-RateLimit-Limit") != "6" {
		t.Fatalf("alone, at once: %d limit %q, want 429 with the whole limit, 6 (bucket kept, no fresh burst)", r.status, r.header.Get("X-RateLimit-Limit"))
	}
}
