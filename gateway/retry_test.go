package gateway

import (
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// deadInstance is an address that refuses connections: it was listening a
// moment ago and is closed now.
func deadInstance(t *testing.T) registry.Instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := instanceOf(t, "dead-1", ln.Addr())
	ln.Close()
	return in
}

const retryDoc = `
route "api" {
  path_prefix = "/api"
  service     = "api"
  retries     = 2
}
route "put" {
  path_prefix = "/put"
  service     = "api"
  retries     = 1
  retry_non_idempotent = true
}
route "slow" {
  path_prefix = "/slow"
  service     = "slow"
  retries     = 2
  timeout     = "100ms"
}
`

func TestGETWithDeadFirstInstanceSucceedsViaRetry(t *testing.T) {
	_, ok := startUpstream(t, "ok-1", nil)
	pg := startPolicyGateway(t, Options{}, retryDoc, map[string][]registry.Instance{"api": {deadInstance(t), ok}})
	for i := range 20 {
		// Round robin sends every other request to the dead instance first.
		if r := do(t, "GET", pg.url+"/api/x"); r.status != 200 {
			t.Fatalf("request %d: %d %s; want every request to succeed via retry", i, r.status, r.body)
		}
	}
}

func TestPOSTIsNeverRetriedButPUTIsWhenAllowed(t *testing.T) {
	var failing, good atomic.Int64
	_, bad := startUpstream(t, "bad-1", func(w http.ResponseWriter, r *http.Request) {
		failing.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	_, ok := startUpstream(t, "ok-1", func(w http.ResponseWriter, r *http.Request) {
		good.Add(1)
		w.WriteHeader(http.StatusOK)
	})
	pg := startPolicyGateway(t, Options{}, retryDoc, map[string][]registry.Instance{"api": {bad, ok}})

	// The first pick of a fresh round robin is the failing instance.
	r := do(t, "POST", pg.url+"/api/x")
	if r.status != http.StatusServiceUnavailable || failing.Load() != 1 || good.Load() != 0 {
		t.Fatalf("POST: %d, failing instance hit %d, good %d; want the 503 once and no retry", r.status, failing.Load(), good.Load())
	}
	// PUT with a body on a route with retry_non_idempotent: next pick is
	// the good instance, so force the failing one first by picking twice.
	do(t, "GET", pg.url+"/put")
	failing.Store(0)
	good.Store(0)
	req, _ := http.NewRequest("PUT", pg.url+"/put/x", stringsReader("payload"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || failing.Load() != 1 || good.Load() != 1 {
		t.Fatalf("PUT: %d, failing %d, good %d; want one retry on the good instance", resp.StatusCode, failing.Load(), good.Load())
	}
}

func TestSlowUpstreamYields504AndSeesItsContextCancelledDespiteRetries(t *testing.T) {
	var calls atomic.Int64
	cancelled := make(chan struct{}, 10)
	handler := func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	}
	_, s1 := startUpstream(t, "slow-1", handler)
	_, s2 := startUpstream(t, "slow-2", handler)
	pg := startPolicyGateway(t, Options{}, retryDoc, map[string][]registry.Instance{"slow": {s1, s2}})
	start := time.Now()
	r := do(t, "GET", pg.url+"/slow")
	t.Logf("504 after %v", time.Since(start))
	if r.status != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", r.status)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream's request context was never cancelled")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d attempts; a timeout ends the exchange, it is not retried", n)
	}
}

// TestRetryBudgetCapsRetriesAgainstAFailingService: when every instance
// answers 503, retries stay within 20% of the requests (plus the floor)
// instead of multiplying the load by the retry count.
func TestRetryBudgetCapsRetriesAgainstAFailingService(t *testing.T) {
	var attempts atomic.Int64
	h := func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, a := startUpstream(t, "a", h)
	_, b := startUpstream(t, "b", h)
	_, c := startUpstream(t, "c", h)
	clk := testkit.NewClock()
	pg := startPolicyGateway(t, Options{Now: clk.Now}, retryDoc, map[string][]registry.Instance{"api": {a, b, c}})
	// Enough requests that 20% of them is above the floor of retries.
	const requests = 1000
	for range requests {
		if r := do(t, "GET", pg.url+"/api"); r.status != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want the upstream's 503", r.status)
		}
	}
	retries := attempts.Load() - requests
	t.Logf("%d requests -> %d retries (retries = 2 would allow %d without a budget)", requests, retries, 2*requests)
	if limit := int64(requests / 5); retries > limit || retries < policy.DefaultMinRetries {
		t.Fatalf("%d retries, want between the floor %d and 20%% of %d = %d", retries, policy.DefaultMinRetries, requests, limit)
	}
}
