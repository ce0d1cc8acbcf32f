package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// consulCounter sits between the gateway and Consul and records when each
// request started, to prove the gateway does not hammer an absent Consul.
type consulCounter struct {
	mu     sync.Mutex
	starts []time.Time
}

func (c *consulCounter) between(from, to time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.starts {
		if !s.Before(from) && s.Before(to) {
			n++
		}
	}
	return n
}

func startConsulCounter(t *testing.T, consulAddr string) (*consulCounter, string) {
	t.Helper()
	target, _ := url.Parse("http://" + consulAddr)
	rp := httputil.NewSingleHostReverseProxy(target)
	c := &consulCounter{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.starts = append(c.starts, time.Now())
		c.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return c, srv.Listener.Addr().String()
}

// maxCallsPerWatch is the most calls one watch can start in d while every
// call fails: one at once, then one after each backoff delay, taking every
// delay at its shortest (half its step, the jitter's lower bound).
func maxCallsPerWatch(d time.Duration) int {
	calls, elapsed, step := 1, time.Duration(0), registry.DefaultBackoffMin
	for {
		elapsed += step / 2
		if elapsed > d {
			return calls
		}
		calls++
		step = min(step*2, registry.DefaultBackoffMax)
	}
}

// TestConsulOutageUnderLoadLosesNoRequest stops the Consul server while 8
// clients send requests and brings it back with its data.
func TestConsulOutageUnderLoadLosesNoRequest(t *testing.T) {
	agent := consultest.Start(t)
	client := consulClient(t, agent.HTTPAddr)
	startBackend(t, client, "users", "users-1")
	startBackend(t, client, "users", "users-2")
	putRoute(t, client, "users.hcl", routeDoc("users", "/api/users", "users"))
	counter, proxied := startConsulCounter(t, agent.HTTPAddr)
	a := startGateway(t, proxied)
	testkit.WaitFor(t, "route served", func() bool { code, _ := getInstance(t, a, "/api/users"); return code == 200 })

	l := startLoad(t, "http://"+a.publicAddr+"/api/users", 8)
	l.waitProgress(t, 200)

	agent.Stop(t)
	down := time.Now()
	testkit.WaitFor(t, "/health degraded", func() bool {
		code, body := adminGet(t, a, "/health")
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
	testkit.WaitFor(t, "change after return served", func() bool { code, _ := getInstance(t, a, "/api/more"); return code == 200 })
	t.Logf("Consul back -> KV change served: %v", time.Since(up).Round(time.Millisecond))
	testkit.WaitFor(t, "/health ok", func() bool { _, body := adminGet(t, a, "/health"); return body["status"] == "ok" })
	t.Logf("%d requests served through the outage, none failed", l.finish(t))
}

// settledGoroutines waits until the goroutine count stops falling (closed
// connections take a moment to unwind) and returns it.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 100 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

// heapAfterGC is the live heap, measured the same way before and after.
func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestConfigChurnUnderLoad writes 1,000 route documents, valid and invalid
// alternating, into one key while 8 clients use a route of another key.
func TestConfigChurnUnderLoad(t *testing.T) {
	client, addr := startConsul(t)
	startBackend(t, client, "users", "users-1")
	putRoute(t, client, "users.hcl", routeDoc("users", "/api/users", "users"))
	a := startGateway(t, addr)
	testkit.WaitFor(t, "route served", func() bool { code, _ := getInstance(t, a, "/api/users"); return code == 200 })
	// The baseline is taken after the same load has run once, so pooled
	// keep-alive connections to the upstream count on both sides.
	warm := startLoad(t, "http://"+a.publicAddr+"/api/users", 8)
	warm.waitProgress(t, 500)
	warm.finish(t)
	goroutines := settledGoroutines()
	heap := heapAfterGC()

	l := startLoad(t, "http://"+a.publicAddr+"/api/users", 8)
	const writes = 1000
	reported := 0
	for i := range writes {
		if i%2 == 0 {
			name := fmt.Sprintf("churn-%d", i)
			putRoute(t, client, "churn.hcl", routeDoc(name, "/churn/"+name, "users"))
			testkit.WaitFor(t, name+" served", func() bool {
				for _, r := range a.gw.Table().Routes() {
					if r.Config.Name == name {
						return len(a.gw.Table().Errors()) == 0
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
			errs := a.gw.Table().Errors()
			return len(errs) == 1 && errs[0].Key == "gateway/routes/churn.hcl" && strings.Contains(errs[0].Message, bad)
		})
		reported++
	}
	served := l.finish(t)
	t.Logf("%d KV writes (%d invalid, all reported) under load; %d requests, none failed", writes, reported, served)

	if after := settledGoroutines(); after > goroutines+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before the churn, %d after:\n%s", goroutines, after, buf[:runtime.Stack(buf, true)])
	}
	after := heapAfterGC()
	t.Logf("heap: %d KiB before, %d KiB after", heap>>10, after>>10)
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
	a := startGateway(t, addr)
	testkit.WaitFor(t, "route loaded", func() bool { return len(a.gw.Table().Routes()) == 1 })
	goroutines := settledGoroutines()

	var timeouts, open, other atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			// A client that would wait 30 s: only the gateway can end the
			// exchange sooner.
			c := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
			defer c.CloseIdleConnections()
			for range 10 {
				resp, err := c.Get("http://" + a.publicAddr + "/api/stuck")
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
	if got, _ := a.gw.Table().Routes()[0].Breaker(); got.String() != "open" {
		t.Fatalf("breaker %q, want open", got)
	}
	testkit.WaitFor(t, "every upstream request cancelled", func() bool { return cancelled.Load() == reached.Load() })
	if reached.Load() != timeouts.Load() {
		t.Fatalf("upstream saw %d requests, want one per 504 (%d): an open breaker must not call it", reached.Load(), timeouts.Load())
	}
	if after := settledGoroutines(); after > goroutines+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before, %d after:\n%s", goroutines, after, buf[:runtime.Stack(buf, true)])
	}
}
