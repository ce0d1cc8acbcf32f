package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/testkit"
)

// setWeights registers b again with Consul weights w (what a deploy
// tool does to shift an instance's share) and sets its TTL check to
// status, which registering again resets.
func setWeights(t *testing.T, client *api.Client, b *backend, w api.AgentWeights, status string) {
	t.Helper()
	host, p, _ := net.SplitHostPort(b.addr())
	port, _ := strconv.Atoi(p)
	err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: b.id, Name: b.service, Address: host, Port: port, Weights: &w,
		Check: &api.AgentServiceCheck{CheckID: "ttl-" + b.id, TTL: "10m"},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.setHealth(t, client, status)
}

// waitWeights waits until /routes shows route with exactly the instances
// of want (ID to weight).
func waitWeights(t *testing.T, p *gatewayProc, route string, want map[string]int) {
	t.Helper()
	testkit.WaitFor(t, fmt.Sprintf("route %s weights %v", route, want), func() bool {
		for _, r := range getRoutes(t, p).Routes {
			if r.Name != route {
				continue
			}
			got := map[string]int{}
			for _, in := range r.Instances {
				got[in.ID] = in.Weight
			}
			return maps.Equal(got, want)
		}
		return false
	})
}

// picks sends n requests to path one after another and returns the
// answering instances in order.
func picks(t *testing.T, p *gatewayProc, path string, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for range n {
		status, inst := getInstance(t, p, path)
		if status != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, status)
		}
		out = append(out, inst)
	}
	return out
}

func count(seq []string) map[string]int {
	c := map[string]int{}
	for _, s := range seq {
		c[s]++
	}
	return c
}

// TestConsulWeightsShareTraffic: weights set through Consul service
// registration decide the shares. Under round_robin (smooth weighted
// round robin) 3:1 is exact over every cycle of four and never bursts;
// under random it is 3:1 within a statistical tolerance.
func TestConsulWeightsShareTraffic(t *testing.T) {
	client, addr := startConsul(t)
	heavy := startBackend(t, client, "w", "w-heavy")
	light := startBackend(t, client, "w", "w-light")
	setWeights(t, client, heavy, api.AgentWeights{Passing: 3, Warning: 1}, api.HealthPassing)
	setWeights(t, client, light, api.AgentWeights{Passing: 1, Warning: 1}, api.HealthPassing)
	putRoute(t, client, "w.hcl", routeDoc("rr", "/api/rr", "w")+
		"route \"rnd\" {\n  path_prefix = \"/api/rnd\"\n  service = \"w\"\n  balancer = \"random\"\n}\n")
	gw := startGateway(t, addr)
	want := map[string]int{"w-heavy": 3, "w-light": 1}
	waitWeights(t, gw, "rr", want)
	waitWeights(t, gw, "rnd", want)

	const n = 4000
	seq := picks(t, gw, "/api/rr", n)
	got := count(seq)
	t.Logf("round_robin 3:1 over %d requests: heavy %d, light %d", n, got["w-heavy"], got["w-light"])
	if got["w-heavy"] != 3*n/4 || got["w-light"] != n/4 {
		t.Errorf("round_robin shares %v, want exactly %d and %d", got, 3*n/4, n/4)
	}
	run, longest := 0, 0
	for i, inst := range seq {
		if i%4 == 0 {
			if c := count(seq[i : i+4]); c["w-heavy"] != 3 {
				t.Fatalf("cycle at request %d: %v, want 3 heavy and 1 light", i, seq[i:i+4])
			}
		}
		if i > 0 && inst == "w-light" && seq[i-1] == "w-light" {
			t.Fatalf("light instance twice in a row at request %d", i)
		}
		if inst == "w-heavy" {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	// Smooth: heavy heavy light heavy, so three in a row at most (across
	// a cycle's end).
	if longest > 3 {
		t.Errorf("heavy instance served %d requests in a row, want at most 3", longest)
	}

	got = count(picks(t, gw, "/api/rnd", n))
	share := float64(got["w-heavy"]) / n
	t.Logf("random 3:1 over %d requests: heavy %d (%.1f%%), light %d", n, got["w-heavy"], share*100, got["w-light"])
	// Standard deviation 0.7% over 4000 requests: 3% is over four.
	if share < 0.72 || share > 0.78 {
		t.Errorf("random: heavy share %.1f%%, want 75 ± 3%%", share*100)
	}
}

// TestWarningInstancesNeedAllowWarning: an instance whose check warns
// gets no traffic by default; a route with allow_warning sends to it at
// its warning weight, except when that weight is 0 (Consul's "none").
func TestWarningInstancesNeedAllowWarning(t *testing.T) {
	client, addr := startConsul(t)
	startBackend(t, client, "ws", "ws-a")
	startBackend(t, client, "ws", "ws-b")
	warn := startBackend(t, client, "ws", "ws-warn")
	zero := startBackend(t, client, "ws", "ws-zero")
	setWeights(t, client, warn, api.AgentWeights{Passing: 1, Warning: 2}, api.HealthWarning)
	setWeights(t, client, zero, api.AgentWeights{Passing: 1, Warning: 0}, api.HealthWarning)
	putRoute(t, client, "ws.hcl", routeDoc("strict", "/api/strict", "ws")+
		"route \"lenient\" {\n  path_prefix = \"/api/lenient\"\n  service = \"ws\"\n  allow_warning = true\n}\n")
	gw := startGateway(t, addr)
	waitWeights(t, gw, "strict", map[string]int{"ws-a": 1, "ws-b": 1})
	waitWeights(t, gw, "lenient", map[string]int{"ws-a": 1, "ws-b": 1, "ws-warn": 2})

	strict := count(picks(t, gw, "/api/strict", 400))
	lenient := count(picks(t, gw, "/api/lenient", 400))
	t.Logf("default over 400: %v; allow_warning over 400: %v", strict, lenient)
	if want := map[string]int{"ws-a": 200, "ws-b": 200}; !maps.Equal(strict, want) {
		t.Errorf("default route: %v, want %v", strict, want)
	}
	if want := map[string]int{"ws-a": 100, "ws-b": 100, "ws-warn": 200}; !maps.Equal(lenient, want) {
		t.Errorf("allow_warning route: %v, want %v", lenient, want)
	}

	// Passing again: back in both routes at its passing weight.
	warn.setHealth(t, client, api.HealthPassing)
	waitWeights(t, gw, "strict", map[string]int{"ws-a": 1, "ws-b": 1, "ws-warn": 1})
}

// slowGate holds the slow instance's requests until the fast one has
// served slowFor more requests since (no sleeps), or until every client is
// held (so a balancer that sends everything to the slow instance cannot
// deadlock the test), or until released.
type slowGate struct {
	mu                 sync.Mutex
	cond               *sync.Cond
	clients            int
	fastServed, parked int
	open               bool
	hits               map[string]int
}

// slowFor is how many fast answers one slow answer takes.
const slowFor = 20

func newSlowGate(clients int) *slowGate {
	g := &slowGate{clients: clients, hits: map[string]int{}}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *slowGate) answer(w http.ResponseWriter, id string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"instance": id})
}

func (g *slowGate) fast(w http.ResponseWriter, _ *http.Request) {
	g.mu.Lock()
	g.fastServed++
	g.hits["fast"]++
	g.cond.Broadcast()
	g.mu.Unlock()
	g.answer(w, "lr-fast")
}

func (g *slowGate) slow(w http.ResponseWriter, _ *http.Request) {
	g.mu.Lock()
	g.hits["slow"]++
	start := g.fastServed
	g.parked++
	g.cond.Broadcast()
	for !g.open && g.fastServed < start+slowFor && g.parked < g.clients {
		g.cond.Wait()
	}
	g.parked--
	g.mu.Unlock()
	g.answer(w, "lr-slow")
}

// setOpen releases every held request (true) or holds them again.
func (g *slowGate) setOpen(open bool) {
	g.mu.Lock()
	g.open = open
	g.cond.Broadcast()
	g.mu.Unlock()
}

// take returns the hits since the last take and resets them.
func (g *slowGate) take() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.hits
	g.hits = map[string]int{}
	return h
}

// TestLeastRequestAvoidsSlowInstance: with one instance slow (its
// requests pile up), round robin still sends it half the requests, and
// least_request clearly fewer. Both run in this test on the same two
// instances, one route each.
func TestLeastRequestAvoidsSlowInstance(t *testing.T) {
	const clients, requests = 8, 2000
	client, addr := startConsul(t)
	g := newSlowGate(clients)
	startBackendWith(t, client, "lr", "lr-fast", g.fast)
	startBackendWith(t, client, "lr", "lr-slow", g.slow)
	// Cleanups run last first: the held requests are released before the
	// servers close, which waits for them.
	t.Cleanup(func() { g.setOpen(true) })
	putRoute(t, client, "lr.hcl", routeDoc("rr", "/api/rr", "lr")+
		"route \"lr\" {\n  path_prefix = \"/api/lr\"\n  service = \"lr\"\n  balancer = \"least_request\"\n}\n")
	gw := startGateway(t, addr)
	both := map[string]int{"lr-fast": 1, "lr-slow": 1}
	waitWeights(t, gw, "rr", both)
	waitWeights(t, gw, "lr", both)

	share := func(path string) float64 {
		t.Helper()
		g.setOpen(false)
		g.take()
		l := startLoad(t, gw.url(path), clients)
		l.waitProgress(t, requests)
		g.setOpen(true)
		l.finish(t)
		h := g.take()
		s := float64(h["slow"]) / float64(h["slow"]+h["fast"])
		t.Logf("%s: slow instance %d of %d requests (%.1f%%)", path, h["slow"], h["slow"]+h["fast"], s*100)
		return s
	}
	rr := share("/api/rr")
	lr := share("/api/lr")
	if rr < 0.45 {
		t.Errorf("round robin sent the slow instance %.1f%%, want about half", rr*100)
	}
	if lr >= rr/2 {
		t.Errorf("least_request sent the slow instance %.1f%%, round robin %.1f%%: want clearly less (under half)", lr*100, rr*100)
	}
}
