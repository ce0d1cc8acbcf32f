package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/consultest"
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
	waitFor(t, "route served", func() bool { code, _ := getInstance(t, a, "/api/users"); return code == 200 })

	l := startLoad(t, "http://"+a.publicAddr+"/api/users", 8)
	l.waitProgress(t, 200)

	agent.Stop(t)
	down := time.Now()
	waitFor(t, "/health degraded", func() bool {
		code, body := adminGet(t, a, "/health")
		return code == 200 && body["status"] == "degraded"
	})
	l.waitProgress(t, 500) // traffic keeps flowing while Consul is away
	// The outage lasts long enough for the backoff to grow several steps.
	waitFor(t, "a 2 s outage", func() bool { return time.Since(down) > 2*time.Second })
	// Count until the restart begins: once Consul answers again a success
	// resets the backoff, and those calls are not a hot loop.
	restarting := time.Now()
	agent.Restart(t)
	up := time.Now()

	// Two watches (KV and one service): neither may call more often than
	// its backoff allows. A hot loop would make thousands of calls.
	away := restarting.Sub(down)
	got, bound := counter.between(down, restarting), 2*maxCallsPerWatch(away)
	t.Logf("Consul away %v: the gateway made %d calls to it (backoff bound %d)", away.Round(time.Millisecond), got, bound)
	if got > bound {
		t.Fatalf("%d Consul calls in %v exceeds the backoff bound of %d", got, away, bound)
	}

	client = consulClient(t, agent.HTTPAddr)
	putRoute(t, client, "more.hcl", routeDoc("more", "/api/more", "users"))
	waitFor(t, "change after return served", func() bool { code, _ := getInstance(t, a, "/api/more"); return code == 200 })
	t.Logf("Consul back -> KV change served: %v", time.Since(up).Round(time.Millisecond))
	waitFor(t, "/health ok", func() bool { _, body := adminGet(t, a, "/health"); return body["status"] == "ok" })
	t.Logf("%d requests served through the outage, none failed", l.finish(t))
}
