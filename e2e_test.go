package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

func TestThreeConsulInstancesShareTrafficExactlyRoundRobin(t *testing.T) {
	_, a, _ := routedService(t, "users", 3)
	counts := map[string]int{}
	for range 30 {
		code, inst := getInstance(t, a, "/api/users/1")
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		counts[inst]++
	}
	for _, id := range []string{"users-1", "users-2", "users-3"} {
		if counts[id] != 10 {
			t.Fatalf("30 requests split %v, want exactly 10 each", counts)
		}
	}
}

func TestCriticalInstanceStopsGettingTraffic(t *testing.T) {
	client, a, backends := routedService(t, "orders", 3)

	start := time.Now()
	backends[1].setHealth(t, client, api.HealthCritical)
	testkit.WaitFor(t, "orders-2 excluded", func() bool {
		for _, in := range a.gw.Table().Routes()[0].Instances {
			if in.ID == "orders-2" {
				return false
			}
		}
		return true
	})
	// Timing is reported, not asserted: the machine is shared and noisy.
	t.Logf("health change -> instance excluded: %v", time.Since(start))
	for range 20 {
		if code, inst := getInstance(t, a, "/api/orders"); code != 200 || inst == "orders-2" {
			t.Fatalf("got %d from %q after orders-2 turned critical", code, inst)
		}
	}
	backends[1].setHealth(t, client, api.HealthPassing)
	testkit.WaitFor(t, "orders-2 back", func() bool { return len(a.gw.Table().Routes()[0].Instances) == 3 })
}

func TestKVPutServesNewRouteAndKVDeleteRemovesIt(t *testing.T) {
	client, addr := startConsul(t)
	startBackend(t, client, "products", "products-1")
	a := startGateway(t, addr)
	if code, _ := getInstance(t, a, "/api/products"); code != 404 {
		t.Fatalf("before the put: %d, want 404", code)
	}
	start := time.Now()
	putRoute(t, client, "products.hcl", routeDoc("products", "/api/products", "products"))
	testkit.WaitFor(t, "new route served", func() bool {
		code, inst := getInstance(t, a, "/api/products/7")
		return code == 200 && inst == "products-1"
	})
	t.Logf("KV put -> route served: %v", time.Since(start))

	start = time.Now()
	if _, err := client.KV().Delete("gateway/routes/products.hcl", nil); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "route removed", func() bool { code, _ := getInstance(t, a, "/api/products/7"); return code == 404 })
	t.Logf("KV delete -> route gone: %v", time.Since(start))
}

func TestBadDocumentKeepsLastGoodVersionAndShowsItsError(t *testing.T) {
	client, addr := startConsul(t)
	startBackend(t, client, "users", "users-1")
	putRoute(t, client, "users.hcl", routeDoc("users", "/api/users", "users"))
	a := startGateway(t, addr)
	testkit.WaitFor(t, "route served", func() bool { code, _ := getInstance(t, a, "/api/users"); return code == 200 })

	putRoute(t, client, "users.hcl", "route \"users\" {\n  path_prefix = \"/api/users\"\n  service = \"users\"\n  balancer = \"fastest\"\n}\n")
	var msg string
	testkit.WaitFor(t, "error listed in /routes", func() bool {
		_, body := adminGet(t, a, "/routes")
		errs, _ := body["errors"].([]any)
		if len(errs) != 1 {
			return false
		}
		msg, _ = errs[0].(map[string]any)["message"].(string)
		return true
	})
	if !strings.HasPrefix(msg, "gateway/routes/users.hcl:4:") {
		t.Fatalf("error %q does not start with KEY:LINE:COL", msg)
	}
	if code, inst := getInstance(t, a, "/api/users"); code != 200 || inst != "users-1" {
		t.Fatalf("after a bad push: %d from %q, want the last good route to keep serving", code, inst)
	}
}

// TestGatewayKeepsServingThroughConsulOutage stops the Consul server (with
// its data dir kept) under the gateway and brings it back.
func TestGatewayKeepsServingThroughConsulOutage(t *testing.T) {
	agent := consultest.Start(t)
	client := consulClient(t, agent.HTTPAddr)
	startBackend(t, client, "users", "users-1")
	putRoute(t, client, "users.hcl", routeDoc("users", "/api/users", "users"))
	a := startGateway(t, agent.HTTPAddr)
	testkit.WaitFor(t, "route served", func() bool { code, _ := getInstance(t, a, "/api/users"); return code == 200 })

	agent.Stop(t)
	testkit.WaitFor(t, "/health degraded", func() bool {
		code, body := adminGet(t, a, "/health")
		return code == 200 && body["status"] == "degraded"
	})
	for range 20 {
		if code, _ := getInstance(t, a, "/api/users"); code != 200 {
			t.Fatalf("request failed with Consul down: %d", code)
		}
	}

	agent.Restart(t)
	client = consulClient(t, agent.HTTPAddr)
	start := time.Now()
	putRoute(t, client, "more.hcl", routeDoc("more", "/api/more", "users"))
	testkit.WaitFor(t, "change after restart served", func() bool { code, _ := getInstance(t, a, "/api/more"); return code == 200 })
	t.Logf("Consul back -> KV change served: %v", time.Since(start))
	testkit.WaitFor(t, "/health ok again", func() bool {
		_, body := adminGet(t, a, "/health")
		return body["status"] == "ok"
	})
}

// TestDeregisteringEveryInstanceKeepsTheLastKnown covers Consul returning an
// empty list by mistake: the upstreams still run, so answering 503 to all
// would be the gateway's fault.
func TestDeregisteringEveryInstanceKeepsTheLastKnown(t *testing.T) {
	client, addr := startConsul(t)
	var backends []*backend
	for _, id := range []string{"users-1", "users-2"} {
		backends = append(backends, startBackend(t, client, "users", id))
	}
	putRoute(t, client, "users.hcl", routeDoc("users", "/api/users", "users"))
	a := startGateway(t, addr)
	testkit.WaitFor(t, "two instances", func() bool { r := a.gw.Table().Routes(); return len(r) == 1 && len(r[0].Instances) == 2 })

	for _, b := range backends {
		if err := client.Agent().ServiceDeregister(b.id); err != nil {
			t.Fatal(err)
		}
	}
	var reason string
	testkit.WaitFor(t, "panic reason in /routes", func() bool {
		_, body := adminGet(t, a, "/routes")
		routes, _ := body["routes"].([]any)
		if len(routes) != 1 {
			return false
		}
		reason, _ = routes[0].(map[string]any)["panic"].(string)
		return reason != ""
	})
	if !strings.Contains(reason, "no instances") {
		t.Fatalf("panic reason %q", reason)
	}
	for range 10 {
		if code, _ := getInstance(t, a, "/api/users"); code != 200 {
			t.Fatalf("status %d with every instance deregistered; want the last known to keep serving", code)
		}
	}
}

// TestMostInstancesFailingRoutesToAllRegistered is Envoy's panic mode,
// opted into: with two of three checks failing (below 50%), all three serve.
func TestMostInstancesFailingRoutesToAllRegistered(t *testing.T) {
	client, a, backends := routedService(t, "orders", 3, "-panic-threshold", "0.5")

	backends[0].setHealth(t, client, api.HealthCritical)
	testkit.WaitFor(t, "one excluded", func() bool { return len(a.gw.Table().Routes()[0].Instances) == 2 })
	backends[1].setHealth(t, client, api.HealthCritical)
	testkit.WaitFor(t, "panic: all three again", func() bool {
		r := a.gw.Table().Routes()[0]
		return len(r.Instances) == 3 && r.Panic != ""
	})
	backends[0].setHealth(t, client, api.HealthPassing)
	testkit.WaitFor(t, "panic over", func() bool {
		r := a.gw.Table().Routes()[0]
		return len(r.Instances) == 2 && r.Panic == ""
	})
}

// routedService starts Consul, n backends of service name (name-1 ...),
// a route /api/NAME to them and the gateway (with the extra flags), and
// waits until the route has all n instances.
func routedService(t *testing.T, name string, n int, extra ...string) (*api.Client, *app, []*backend) {
	t.Helper()
	client, addr := startConsul(t)
	var backends []*backend
	for i := range n {
		backends = append(backends, startBackend(t, client, name, fmt.Sprintf("%s-%d", name, i+1)))
	}
	putRoute(t, client, name+".hcl", routeDoc(name, "/api/"+name, name))
	a := startGateway(t, addr, extra...)
	testkit.WaitFor(t, fmt.Sprintf("%d instances", n), func() bool {
		r := a.gw.Table().Routes()
		return len(r) == 1 && len(r[0].Instances) == n
	})
	return client, a, backends
}
