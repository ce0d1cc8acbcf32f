package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

const limitedDoc = `
route "api" {
  path_prefix = "/api"
  service     = "api"
  rate_limit {
    requests_per_second = %s
    burst               = 2
  }
}
route "keyed" {
  path_prefix = "/keyed"
  service     = "api"
  rate_limit {
    requests_per_second = 1
    burst               = 1
    key                 = "header:X-API-Key"
  }
}
`

func limitedDocWith(rps string) string { return strings.Replace(limitedDoc, "%s", rps, 1) }

func TestRateLimitBurstThen429ThenRecovery(t *testing.T) {
	_, inst := startUpstream(t, "api-1", nil)
	clk := testkit.NewClock()
	pg := startPolicyGateway(t, Options{Now: clk.Now}, limitedDocWith("1"), map[string][]registry.Instance{"api": {inst}})

	for i, wantRemaining := range []string{"1", "0"} {
		r := do(t, "GET", pg.url+"/api/x")
		if r.status != 200 || r.header.Get("X-RateLimit-Limit") != "2" || r.header.Get("X-RateLimit-Remaining") != wantRemaining {
			t.Fatalf("burst request %d: %d limit %q remaining %q", i, r.status, r.header.Get("X-RateLimit-Limit"), r.header.Get("X-RateLimit-Remaining"))
		}
	}
	r := do(t, "GET", pg.url+"/api/x")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" || r.header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("after the burst: %d Retry-After %q remaining %q", r.status, r.header.Get("Retry-After"), r.header.Get("X-RateLimit-Remaining"))
	}
	if want := `{"error":"rate limit exceeded","route":"api"}`; strings.TrimSpace(r.body) != want {
		t.Fatalf("body %s, want %s", r.body, want)
	}
	clk.Advance(time.Second)
	if r := do(t, "GET", pg.url+"/api/x"); r.status != 200 {
		t.Fatalf("after one second: %d, want 200", r.status)
	}

	// Keyed by header: each API key has its own bucket.
	for _, key := range []string{"a", "b"} {
		if r := do(t, "GET", pg.url+"/keyed", "X-API-Key: "+key); r.status != 200 {
			t.Fatalf("first request of key %s: %d", key, r.status)
		}
	}
	if r := do(t, "GET", pg.url+"/keyed", "X-API-Key: a"); r.status != http.StatusTooManyRequests {
		t.Fatalf("second request of key a: %d, want 429", r.status)
	}
}

// TestRateLimiterStateSurvivesSwapOnlyWhilePolicyUnchanged rebuilds the
// table as every health or KV change does.
func TestRateLimiterStateSurvivesSwapOnlyWhilePolicyUnchanged(t *testing.T) {
	_, inst := startUpstream(t, "api-1", nil)
	clk := testkit.NewClock()
	insts := map[string][]registry.Instance{"api": {inst}}
	pg := startPolicyGateway(t, Options{Now: clk.Now}, limitedDocWith("1"), insts)
	for range 2 {
		do(t, "GET", pg.url+"/api")
	}
	if r := do(t, "GET", pg.url+"/api"); r.status != http.StatusTooManyRequests {
		t.Fatalf("bucket not exhausted: %d", r.status)
	}

	// Same policy, other instances and another route: the bucket is kept.
	_, inst2 := startUpstream(t, "api-2", nil)
	pg.insts["api"] = append(pg.insts["api"], inst2)
	pg.publish(t, limitedDocWith("1")+`route "other" {
  path_prefix = "/other"
  service = "api"
}`)
	if r := do(t, "GET", pg.url+"/api"); r.status != http.StatusTooManyRequests {
		t.Fatalf("after a swap with the same policy: %d, want 429 (state kept)", r.status)
	}

	// Changed policy: fresh buckets.
	pg.publish(t, limitedDocWith("2"))
	if r := do(t, "GET", pg.url+"/api"); r.status != 200 {
		t.Fatalf("after the policy changed: %d, want 200 (fresh bucket)", r.status)
	}
}
