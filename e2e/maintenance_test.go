package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/testkit"
)

// settled waits until r's gateway has taken in a health answer for
// service in which cond holds (seen on its way from Consul, see
// consulProxy), then until a table built after that is serving: it writes
// a marker route and waits for it, and every build reads the latest
// health answers. Checks of the table after settled see the change or
// none.
func settled(t *testing.T, r *gatewayRig, service string, cond func([]consulInstance) bool) {
	t.Helper()
	testkit.WaitFor(t, "health watch of "+service+" sees the change", func() bool {
		in, ok := r.consul.takenHealth(service)
		return ok && cond(in)
	})
	n := len(getRoutes(t, r.gw).Routes)
	name := fmt.Sprintf("marker-%d", n)
	putRoute(t, r.client, name+".hcl", routeDoc(name, "/"+name, service))
	testkit.WaitFor(t, "a table built after the change", func() bool { return len(getRoutes(t, r.gw).Routes) == n+1 })
}

// passingCount is a settled condition: exactly n instances pass.
func passingCount(n int) func([]consulInstance) bool {
	return func(in []consulInstance) bool {
		passing := 0
		for _, i := range in {
			if i.passing {
				passing++
			}
		}
		return passing == n
	}
}

// trafficTo sends n requests to path and counts the answering instances;
// gateway errors count under their status and error, as "503 no healthy
// instance".
func trafficTo(t *testing.T, p *gatewayProc, path string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		resp, err := http.Get(p.url(path))
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Instance, Error string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			got[body.Instance]++
		} else {
			got[fmt.Sprintf("%d %s", resp.StatusCode, body.Error)]++
		}
	}
	return got
}

// TestServiceMaintenanceGetsNoTrafficWhateverThePanicThreshold: draining
// two of three instances for a deploy with `consul maint` must not trip
// panic mode and send traffic back to them.
func TestServiceMaintenanceGetsNoTrafficWhateverThePanicThreshold(t *testing.T) {
	t.Parallel()
	r := routedService(t, "orders", 3, "-panic-threshold", "0.5")
	for _, id := range []string{"orders-1", "orders-2"} {
		if err := r.client.Agent().EnableServiceMaintenance(id, "deploy"); err != nil {
			t.Fatal(err)
		}
	}
	settled(t, r, "orders", passingCount(1))
	if got := trafficTo(t, r.gw, "/api/orders", 30); got["orders-3"] != 30 {
		t.Fatalf("with orders-1 and -2 in maintenance, 30 requests went to %v; want all to orders-3", got)
	}
	for _, rt := range getRoutes(t, r.gw).Routes {
		if rt.Panic != "" {
			t.Errorf("route %s: panic reason %q with one of one known-good instance passing", rt.Name, rt.Panic)
		}
	}

	// Out of maintenance, each is back once it passes.
	for _, id := range []string{"orders-1", "orders-2"} {
		if err := r.client.Agent().DisableServiceMaintenance(id); err != nil {
			t.Fatal(err)
		}
	}
	settled(t, r, "orders", passingCount(3))
	if got := trafficTo(t, r.gw, "/api/orders", 30); got["orders-1"] != 10 || got["orders-2"] != 10 || got["orders-3"] != 10 {
		t.Fatalf("after maintenance, 30 requests went to %v; want 10 each", got)
	}
}

// TestNodeMaintenanceAnswersNoHealthyInstance: with the node in
// maintenance every instance on it is drained; the gateway answers 503
// rather than fall back to them, panic threshold or not.
func TestNodeMaintenanceAnswersNoHealthyInstance(t *testing.T) {
	t.Parallel()
	r := routedService(t, "orders", 3, "-panic-threshold", "0.5")
	if err := r.client.Agent().EnableNodeMaintenance("hardware"); err != nil {
		t.Fatal(err)
	}
	settled(t, r, "orders", passingCount(0))
	if got := trafficTo(t, r.gw, "/api/orders", 10); got["503 no healthy instance"] != 10 {
		t.Fatalf("with the node in maintenance, 10 requests got %v; want all 503 no healthy instance", got)
	}
}

// TestCriticalMeansNoTrafficByDefault: with default flags an instance
// whose check is critical gets no traffic, even when most of a service
// fails (panic mode is opt-in).
func TestCriticalMeansNoTrafficByDefault(t *testing.T) {
	t.Parallel()
	r := routedService(t, "orders", 3)
	r.backends[0].setHealth(t, r.client, api.HealthCritical)
	r.backends[1].setHealth(t, r.client, api.HealthCritical)
	settled(t, r, "orders", passingCount(1))
	if got := trafficTo(t, r.gw, "/api/orders", 20); got["orders-3"] != 20 {
		t.Fatalf("two of three critical, 20 requests went to %v; want all to orders-3", got)
	}
}

// TestSingleCriticalInstanceGetsNoTraffic: a service's only instance
// failing its check is out of rotation, whatever the panic threshold.
func TestSingleCriticalInstanceGetsNoTraffic(t *testing.T) {
	t.Parallel()
	for _, flags := range [][]string{nil, {"-panic-threshold", "0.5"}} {
		t.Run(fmt.Sprintf("flags %q", flags), func(t *testing.T) {
			r := routedService(t, "solo", 1, flags...)
			r.backends[0].setHealth(t, r.client, api.HealthCritical)
			settled(t, r, "solo", passingCount(0))
			if got := trafficTo(t, r.gw, "/api/solo", 10); got["503 no healthy instance"] != 10 {
				t.Fatalf("single instance critical, 10 requests got %v; want all 503 no healthy instance", got)
			}
		})
	}
}

// TestDrainedThenDeregisteredInstancesGetNoTraffic: the "Consul lists no
// instances" fallback keeps the instances that were serving, never ones
// an operator drained (or that failed) before deregistering them.
func TestDrainedThenDeregisteredInstancesGetNoTraffic(t *testing.T) {
	t.Parallel()
	r := routedService(t, "orders", 3, "-panic-threshold", "0")
	// Deregistering some instances: the others keep serving.
	if err := r.client.Agent().ServiceDeregister(r.backends[0].id); err != nil {
		t.Fatal(err)
	}
	settled(t, r, "orders", func(in []consulInstance) bool { return len(in) == 2 })
	if got := trafficTo(t, r.gw, "/api/orders", 20); got["orders-2"] != 10 || got["orders-3"] != 10 {
		t.Fatalf("orders-1 deregistered, 20 requests went to %v; want 10 each to orders-2 and -3", got)
	}

	// Drain the rest, then deregister them: nothing is served.
	for _, b := range r.backends[1:] {
		if err := r.client.Agent().EnableServiceMaintenance(b.id, "deploy"); err != nil {
			t.Fatal(err)
		}
	}
	settled(t, r, "orders", passingCount(0))
	for _, b := range r.backends[1:] {
		if err := r.client.Agent().ServiceDeregister(b.id); err != nil {
			t.Fatal(err)
		}
	}
	settled(t, r, "orders", func(in []consulInstance) bool { return len(in) == 0 })
	if got := trafficTo(t, r.gw, "/api/orders", 10); got["503 no healthy instance"] != 10 {
		t.Fatalf("drained then deregistered, 10 requests got %v; want all 503 no healthy instance", got)
	}
}
