package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

func TestThreeConsulInstancesShareTrafficExactlyRoundRobin(t *testing.T) {
	t.Parallel()
	r := routedService(t, "users", 3)
	counts := map[string]int{}
	for range 30 {
		code, inst := getInstance(t, r.gw, "/api/users/1")
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

// instanceIDs lists the instances the gateway's only route serves now.
func instanceIDs(t *testing.T, p *gatewayProc) []string {
	t.Helper()
	var ids []string
	for _, in := range getRoutes(t, p).Routes[0].Instances {
		ids = append(ids, in.ID)
	}
	return ids
}

func TestCriticalInstanceStopsGettingTraffic(t *testing.T) {
	t.Parallel()
	r := routedService(t, "orders", 3)

	start := time.Now()
	r.backends[1].setHealth(t, r.client, api.HealthCritical)
	testkit.WaitFor(t, "orders-2 excluded", func() bool {
		ids := instanceIDs(t, r.gw)
		return len(ids) == 2 && !strings.Contains(strings.Join(ids, " "), "orders-2")
	})
	// Timing is reported, not asserted: the machine is shared and noisy.
	t.Logf("health change -> instance excluded: %v", time.Since(start))
	for range 20 {
		if code, inst := getInstance(t, r.gw, "/api/orders"); code != 200 || inst == "orders-2" {
			t.Fatalf("got %d from %q after orders-2 turned critical", code, inst)
		}
	}
	r.backends[1].setHealth(t, r.client, api.HealthPassing)
	testkit.WaitFor(t, "orders-2 back", func() bool { return len(instanceIDs(t, r.gw)) == 3 })
}

func TestKVPutServesNewRouteAndKVDeleteRemovesIt(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	startBackend(t, client, "products", "products-1")
	gw := startGateway(t, addr)
	if code, _ := getInstance(t, gw, "/api/products"); code != 404 {
		t.Fatalf("before the put: %d, want 404", code)
	}
	start := time.Now()
	putRoute(t, client, "products.hcl", routeDoc("products", "/api/products", "products"))
	testkit.WaitFor(t, "new route served", func() bool {
		code, inst := getInstance(t, gw, "/api/products/7")
		return code == 200 && inst == "products-1"
	})
	t.Logf("KV put -> route served: %v", time.Since(start))

	start = time.Now()
	if _, err := client.KV().Delete(routesPrefix+"products.hcl", nil); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "route removed", func() bool { code, _ := getInstance(t, gw, "/api/products/7"); return code == 404 })
	t.Logf("KV delete -> route gone: %v", time.Since(start))
}

func TestBadDocumentKeepsLastGoodVersionAndShowsItsError(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	startBackend(t, client, "users", "users-1")
	putRoute(t, client, "users.hcl", routeDoc("users", "/api/users", "users"))
	gw := startGateway(t, addr)
	testkit.WaitFor(t, "route served", func() bool { code, _ := getInstance(t, gw, "/api/users"); return code == 200 })

	putRoute(t, client, "users.hcl", "route \"users\" {\n  path_prefix = \"/api/users\"\n  service = \"users\"\n  balancer = \"fastest\"\n}\n")
	var msg string
	testkit.WaitFor(t, "error listed in /routes", func() bool {
		errs := getRoutes(t, gw).Errors
		if len(errs) != 1 {
			return false
		}
		msg = errs[0].Message
		return true
	})
	if !strings.HasPrefix(msg, "gateway/routes/users.hcl:4:") {
		t.Fatalf("error %q does not start with KEY:LINE:COL", msg)
	}
	if code, inst := getInstance(t, gw, "/api/users"); code != 200 || inst != "users-1" {
		t.Fatalf("after a bad push: %d from %q, want the last good route to keep serving", code, inst)
	}
}

// TestGatewayKeepsServingThroughConsulOutage stops the Consul server (with
// its data dir kept) under the gateway and brings it back.
func TestGatewayKeepsServingThroughConsulOutage(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	client := consulClient(t, agent.HTTPAddr)
	startBackend(t, client, "users", "users-1")
	putRoute(t, client, "users.hcl", routeDoc("users", "/api/users", "users"))
	gw := startGateway(t, agent.HTTPAddr)
	testkit.WaitFor(t, "route served", func() bool { code, _ := getInstance(t, gw, "/api/users"); return code == 200 })

	agent.Stop(t)
	testkit.WaitFor(t, "/health degraded", func() bool {
		code, body := adminGet(t, gw, "/health")
		return code == 200 && body["status"] == "degraded"
	})
	for range 20 {
		if code, _ := getInstance(t, gw, "/api/users"); code != 200 {
			t.Fatalf("request failed with Consul down: %d", code)
		}
	}

	agent.Restart(t)
	client = consulClient(t, agent.HTTPAddr)
	start := time.Now()
	putRoute(t, client, "more.hcl", routeDoc("more", "/api/more", "users"))
	testkit.WaitFor(t, "change after restart served", func() bool { code, _ := getInstance(t, gw, "/api/more"); return code == 200 })
	t.Logf("Consul back -> KV change served: %v", time.Since(start))
	testkit.WaitFor(t, "/health ok again", func() bool {
		_, body := adminGet(t, gw, "/health")
		return body["status"] == "ok"
	})
}

// TestDeregisteringEveryInstanceKeepsTheLastKnown covers Consul returning an
// empty list by mistake: the upstreams still run, so answering 503 to all
// would be the gateway's fault.
func TestDeregisteringEveryInstanceKeepsTheLastKnown(t *testing.T) {
	t.Parallel()
	r := routedService(t, "users", 2)
	for _, b := range r.backends {
		if err := r.client.Agent().ServiceDeregister(b.id); err != nil {
			t.Fatal(err)
		}
	}
	var reason string
	testkit.WaitFor(t, "panic reason in /routes", func() bool {
		routes := getRoutes(t, r.gw).Routes
		if len(routes) != 1 {
			return false
		}
		reason = routes[0].Panic
		return reason != ""
	})
	if !strings.Contains(reason, "no instances") {
		t.Fatalf("panic reason %q", reason)
	}
	for range 10 {
		if code, _ := getInstance(t, r.gw, "/api/users"); code != 200 {
			t.Fatalf("status %d with every instance deregistered; want the last known to keep serving", code)
		}
	}
}

// TestMostInstancesFailingRoutesToAllRegistered is Envoy's panic mode,
// opted into: with two of three checks failing (below 50%), all three serve.
func TestMostInstancesFailingRoutesToAllRegistered(t *testing.T) {
	t.Parallel()
	r := routedService(t, "orders", 3, "-panic-threshold", "0.5")
	route := func() (instances int, panic string) {
		rt := getRoutes(t, r.gw).Routes[0]
		return len(rt.Instances), rt.Panic
	}

	r.backends[0].setHealth(t, r.client, api.HealthCritical)
	testkit.WaitFor(t, "one excluded", func() bool { n, _ := route(); return n == 2 })
	r.backends[1].setHealth(t, r.client, api.HealthCritical)
	testkit.WaitFor(t, "panic: all three again", func() bool { n, p := route(); return n == 3 && p != "" })
	r.backends[0].setHealth(t, r.client, api.HealthPassing)
	testkit.WaitFor(t, "panic over", func() bool { n, p := route(); return n == 2 && p == "" })
}
