package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// The gateway's watch backoff, as its registry defaults it (50 ms doubling
// to 4 s, jittered; docs/failure.md). Written out
// here because these tests see the gateway only from outside.
const (
	backoffMin = 50 * time.Millisecond
	backoffMax = 4 * time.Second
)

// maxCallsPerWatch is the most calls one watch can start in d while every
// call fails: one at once, then one after each backoff delay, taking every
// delay at its shortest (half its step, the jitter's lower bound).
func maxCallsPerWatch(d time.Duration) int {
	calls, elapsed, step := 1, time.Duration(0), backoffMin
	for {
		elapsed += step / 2
		if elapsed > d {
			return calls
		}
		calls++
		step = min(step*2, backoffMax)
	}
}

// TestConsulOutageUnderLoadLosesNoRequest stops the Consul server while 8
// clients send requests and brings it back with its data.
func TestConsulOutageUnderLoadLosesNoRequest(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	client := consulClient(t, agent.HTTPAddr)
	startBackend(t, client, "users", "users-1")
	startBackend(t, client, "users", "users-2")
	putRoute(t, client, "users.hcl", routeDoc("users", "/api/users", "users"))
	counter := startConsulProxy(t, agent.HTTPAddr)
	gw := startGateway(t, counter.addr)
	testkit.WaitFor(t, "route served", func() bool { code, _ := getInstance(t, gw, "/api/users"); return code == 200 })

	l := startLoad(t, gw.url("/api/users"), 8)
	l.waitProgress(t, 200)

	agent.Stop(t)
	down := time.Now()
	testkit.WaitFor(t, "/health degraded", func() bool {
		code, body := adminGet(t, gw, "/health")
		return code == 200 && body["status"] == "degraded"
	})
	l.waitProgress(t, 500) // traffic keeps flowing while Consul is away
	// The outage lasts long enough for the backoff to grow several steps.
	testkit.WaitFor(t, "a 2 s outage", func() bool { return time.Since(down) > 2*time.Second })
	// Count until the restart begins: once Consul answers again a success
	// resets the backoff, and those calls are not a hot loop.
	restarting := time.Now()
	agent.Restart(t)
	up := time.Now()

	// Three watches (KV, last-good state and one service): none may call
	// more often than its backoff allows. A hot loop would make thousands
	// of calls.
	away := restarting.Sub(down)
	got, bound := counter.between(down, restarting), 3*maxCallsPerWatch(away)
	t.Logf("Consul away %v: the gateway made %d calls to it (backoff bound %d)", away.Round(time.Millisecond), got, bound)
	if got > bound {
		t.Fatalf("%d Consul calls in %v exceeds the backoff bound of %d", got, away, bound)
	}

	client = consulClient(t, agent.HTTPAddr)
	putRoute(t, client, "more.hcl", routeDoc("more", "/api/more", "users"))
	testkit.WaitFor(t, "change after return served", func() bool { code, _ := getInstance(t, gw, "/api/more"); return code == 200 })
	t.Logf("Consul back -> KV change served: %v", time.Since(up).Round(time.Millisecond))
	testkit.WaitFor(t, "/health ok", func() bool { _, body := adminGet(t, gw, "/health"); return body["status"] == "ok" })
	t.Logf("%d requests served through the outage, none failed", l.finish(t))
}

// TestConfigChurnUnderLoad writes 1,000 route documents, valid and invalid
// alternating, into one key while 8 clients use a route of another key.
// Afterwards the gateway's goroutines and live heap are back where they
// were before the churn.
func TestConfigChurnUnderLoad(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	users := startBackend(t, client, "users", "users-1")
	putRoute(t, client, "users.hcl", routeDoc("users", "/api/users", "users"))
	gw := startGateway(t, addr)
	testkit.WaitFor(t, "route served", func() bool { code, _ := getInstance(t, gw, "/api/users"); return code == 200 })
	// The baselines are taken once the same load has run. The live heap is
	// read while it runs, which is what makes the gateway collect garbage,
	// and so is the one after the churn; goroutines are counted once the
	// upstream has closed the gateway's pooled connections, which the load
	// may have left more or fewer of.
	warm := startLoad(t, gw.url("/api/users"), 8)
	warm.waitProgress(t, 500)
	heap := liveHeapAfterGC(t, gw)
	warm.finish(t)
	users.srv.CloseClientConnections()
	goroutines := goroutineBaseline(t, gw)

	l := startLoad(t, gw.url("/api/users"), 8)
	const writes = 1000
	reported := 0
	for i := range writes {
		if i%2 == 0 {
			name := fmt.Sprintf("churn-%d", i)
			putRoute(t, client, "churn.hcl", routeDoc(name, "/churn/"+name, "users"))
			testkit.WaitFor(t, name+" served", func() bool {
				rt := getRoutes(t, gw)
				for _, r := range rt.Routes {
					if r.Name == name {
						return len(rt.Errors) == 0
					}
				}
				return false
			})
			continue
		}
		// Each invalid version names a unique balancer, so its report is
		// told apart from the previous one's.
		bad := fmt.Sprintf("bad-%d", i)
		putRoute(t, client, "churn.hcl", fmt.Sprintf("route \"churn\" {\n  path_prefix = \"/churn\"\n  service = \"users\"\n  balancer = %q\n}\n", bad))
		testkit.WaitFor(t, bad+" reported", func() bool {
			errs := getRoutes(t, gw).Errors
			return len(errs) == 1 && errs[0].Key == routesPrefix+"churn.hcl" && strings.Contains(errs[0].Message, bad)
		})
		reported++
	}
	after := liveHeapAfterGC(t, gw)
	served := l.finish(t)
	t.Logf("%d KV writes (%d invalid, all reported) under load; %d requests, none failed", writes, reported, served)

	users.srv.CloseClientConnections()
	checkGoroutinesBack(t, gw, goroutines)
	t.Logf("gateway live heap: %d KiB before, %d KiB after", heap>>10, after>>10)
	// Bounded, not equal: the runtime and the Consul client keep caches.
	if after > heap+8<<20 {
		t.Fatalf("live heap grew from %d KiB to %d KiB over the churn", heap>>10, after>>10)
	}
}

// TestSlowUpstreamUnderLoad: an upstream that never answers. The route
// timeout answers 504 without waiting for it, the breaker opens and then
// answers at once, every upstream request is cancelled, and once the load
// stops the gateway's goroutines are back to their baseline.
func TestSlowUpstreamUnderLoad(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	release := make(chan struct{})
	var reached, cancelled atomic.Int64
	startBackendWith(t, client, "stuck", "stuck-1", func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		select {
		case <-r.Context().Done():
			cancelled.Add(1)
		case <-release: // only at the end of the test
		}
	})
	t.Cleanup(func() { close(release) })
	putRoute(t, client, "stuck.hcl", `route "stuck" {
  path_prefix = "/api/stuck"
  service     = "stuck"
  timeout     = "150ms"
  circuit_breaker {
    failure_ratio = 0.5
    min_requests  = 10
    open_timeout  = "1m"
  }
}
`)
	gw := startGateway(t, addr)
	testkit.WaitFor(t, "route loaded", func() bool { return len(getRoutes(t, gw).Routes) == 1 })
	goroutines := goroutineBaseline(t, gw)

	var timeouts, open, other atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			// A client that would wait 30 s: only the gateway can end the
			// exchange sooner.
			c := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
			defer c.CloseIdleConnections()
			for range 10 {
				resp, err := c.Get(gw.url("/api/stuck"))
				if err != nil {
					other.Add(1)
					continue
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusGatewayTimeout:
					timeouts.Add(1)
				case http.StatusServiceUnavailable:
					open.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("80 requests: %d timed out (504), %d refused by the open breaker (503), %d other", timeouts.Load(), open.Load(), other.Load())
	if other.Load() > 0 || timeouts.Load() < 10 || open.Load() == 0 {
		t.Fatalf("want only 504s (at least min_requests of them) then 503s from the open breaker")
	}
	if got := getRoutes(t, gw).Routes[0].CircuitBreaker; got != "open" {
		t.Fatalf("breaker %q, want open", got)
	}
	testkit.WaitFor(t, "every upstream request cancelled", func() bool { return cancelled.Load() == reached.Load() })
	if reached.Load() != timeouts.Load() {
		t.Fatalf("upstream saw %d requests, want one per 504 (%d): an open breaker must not call it", reached.Load(), timeouts.Load())
	}
	checkGoroutinesBack(t, gw, goroutines)
}
