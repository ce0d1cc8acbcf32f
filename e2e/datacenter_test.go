package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// servingDC is the datacenter /routes says route serves from, and why.
func servingDC(t *testing.T, p *gatewayProc, route string) (dc, reason string) {
	t.Helper()
	for _, r := range getRoutes(t, p).Routes {
		if r.Name == route {
			return r.Datacenter, r.DatacenterReason
		}
	}
	t.Fatalf("/routes has no route %q", route)
	return "", ""
}

// TestRoutesAcrossDatacenters runs two Consul servers, dc1 (the gateway's)
// and dc2, joined over the WAN. A route with datacenter = "dc2" reaches a
// service registered only there; a route with failover moves to dc2 while
// its dc1 instance is critical, under load with no failed request, and
// comes back once it passes. /routes, the serving-datacenter gauge and the
// log show each switch.
func TestRoutesAcrossDatacenters(t *testing.T) {
	t.Parallel()
	agents := consultest.StartDatacenters(t, "dc1", "dc2")
	dc1, dc2 := consulClient(t, agents[0].HTTPAddr), consulClient(t, agents[1].HTTPAddr)
	local := startBackend(t, dc1, "users", "users-dc1")
	startBackend(t, dc2, "users", "users-dc2")
	startBackend(t, dc2, "far", "far-dc2")
	putRoute(t, dc1, "dc.hcl", `
route "users" {
  path_prefix = "/api/users"
  service     = "users"
  failover {
    datacenters = ["dc3", "dc2"]
  }
}
route "far" {
  path_prefix = "/api/far"
  service     = "far"
  datacenter  = "dc2"
}
`)
	gw := startGateway(t, agents[0].HTTPAddr)

	// datacenter = "dc2": the only instance of far is in dc2.
	testkit.WaitFor(t, "far served from dc2", func() bool {
		code, inst := getInstance(t, gw, "/api/far")
		return code == 200 && inst == "far-dc2"
	})
	if dc, _ := servingDC(t, gw, "far"); dc != "dc2" {
		t.Errorf("/routes: far serves from %q, want dc2", dc)
	}
	testkit.WaitFor(t, "users served from dc1", func() bool {
		code, inst := getInstance(t, gw, "/api/users")
		return code == 200 && inst == "users-dc1"
	})
	if dc, reason := servingDC(t, gw, "users"); dc != "dc1" || reason != "" {
		t.Errorf("/routes: users serves from %q (%q), want dc1, no reason", dc, reason)
	}
	if v := sample(scrape(t, gw), "gateway_route_serving_datacenter", "route=users", "datacenter=dc1"); v != 1 {
		t.Errorf("serving gauge for users in dc1 = %v, want 1", v)
	}
	// dc3 does not exist: its watch fails like any Consul query, and
	// /health names it.
	if code, body := adminGet(t, gw, "/health"); code != 200 || body["status"] != "degraded" || !strings.Contains(fmt.Sprint(body["reason"]), "datacenter dc3") {
		t.Errorf("/health with dc3 unknown: %d %v, want 200 degraded naming dc3", code, body)
	}

	// The local instance stays up while Consul calls it critical: requests
	// in flight to it finish, so the switch may fail none.
	l := startLoad(t, gw.url("/api/users"), 4)
	l.waitProgress(t, 200)
	local.setHealth(t, dc1, api.HealthCritical)
	start := time.Now()
	testkit.WaitFor(t, "users served from dc2", func() bool {
		_, inst := getInstance(t, gw, "/api/users")
		return inst == "users-dc2"
	})
	t.Logf("dc1 critical -> served from dc2: %v", time.Since(start).Round(time.Millisecond))
	dc, reason := servingDC(t, gw, "users")
	if dc != "dc2" || !strings.Contains(reason, "dc1 has no passing instance") {
		t.Errorf("/routes after failover: %q (%q), want dc2 with the reason", dc, reason)
	}
	fams := scrape(t, gw)
	if v := sample(fams, "gateway_route_serving_datacenter", "route=users", "datacenter=dc2"); v != 1 {
		t.Errorf("serving gauge for users in dc2 = %v, want 1", v)
	}
	if v := sample(fams, "gateway_route_serving_datacenter", "route=users", "datacenter=dc1"); v != -1 {
		t.Errorf("serving gauge for users in dc1 still present (%v) after the switch", v)
	}
	for range 10 {
		if code, inst := getInstance(t, gw, "/api/users"); code != 200 || inst != "users-dc2" {
			t.Fatalf("during failover: %d from %q, want 200 from users-dc2", code, inst)
		}
	}
	l.waitProgress(t, 200)

	local.setHealth(t, dc1, api.HealthPassing)
	start = time.Now()
	testkit.WaitFor(t, "users back in dc1", func() bool {
		_, inst := getInstance(t, gw, "/api/users")
		return inst == "users-dc1"
	})
	t.Logf("dc1 passing -> served from dc1: %v", time.Since(start).Round(time.Millisecond))
	if dc, reason := servingDC(t, gw, "users"); dc != "dc1" || reason != "" {
		t.Errorf("/routes after return: %q (%q), want dc1", dc, reason)
	}
	l.waitProgress(t, 200)
	t.Logf("%d requests through both switches, none failed", l.finish(t))

	// One line per switch, each way.
	var away, back int
	for _, line := range gw.logLines() {
		switch {
		case strings.Contains(line, `"route serving datacenter switched"`) && strings.Contains(line, `"to":"dc2"`):
			away++
		case strings.Contains(line, `"route serving datacenter switched back"`) && strings.Contains(line, `"to":"dc1"`):
			back++
		}
	}
	if away != 1 || back != 1 {
		t.Errorf("log has %d switch lines to dc2 and %d back to dc1, want 1 each", away, back)
	}
}
