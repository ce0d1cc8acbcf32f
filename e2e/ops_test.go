package e2e

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

func TestMetricsEndpointSeriesMoveWithTraffic(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	client := consulClient(t, agent.HTTPAddr)
	b := startBackend(t, client, "users", "users-1")
	putRoute(t, client, "users.hcl", routeDoc("users", "/api/users", "users"))
	putRoute(t, client, "bad.hcl", "route \"broken\" {\n  path_prefix = 42\n}\n")
	a := startGateway(t, agent.HTTPAddr)
	testkit.WaitFor(t, "route served", func() bool { code, _ := getInstance(t, a, "/api/users"); return code == 200 })

	before := scrape(t, a)
	const n = 7
	for range n {
		if code, _ := getInstance(t, a, "/api/users/1"); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	getInstance(t, a, "/unrouted/secret-path-123")
	after := scrape(t, a)

	inst := b.addr()
	moved := []struct {
		name  string
		label []string
		delta float64
	}{
		{"gateway_requests_total", []string{"route=users", "method=GET", "code=200"}, n},
		{"gateway_request_duration_seconds", []string{"route=users"}, n},
		{"gateway_upstream_requests_total", []string{"service=users", "instance=" + inst}, n},
		{"gateway_requests_total", []string{"route=none", "method=GET", "code=404"}, 1},
	}
	for _, m := range moved {
		was, is := max(sample(before, m.name, m.label...), 0), sample(after, m.name, m.label...)
		if is-was != m.delta {
			t.Errorf("%s%v moved %v -> %v, want +%v", m.name, m.label, was, is, m.delta)
		}
	}
	levels := []struct {
		name  string
		label []string
		want  func(float64) bool
		what  string
	}{
		{"gateway_service_healthy_instances", []string{"service=users"}, func(v float64) bool { return v == 1 }, "1"},
		{"gateway_config_rejected_documents", nil, func(v float64) bool { return v == 1 }, "1"},
		{"gateway_config_reloads_total", nil, func(v float64) bool { return v >= 1 }, ">= 1"},
		{"gateway_consul_last_sync_age_seconds", nil, func(v float64) bool { return v >= 0 && v < 120 }, "in [0, 120)"},
		{"gateway_upstream_errors_total", []string{"service=users", "instance=" + inst}, func(v float64) bool { return v == 0 }, "0"},
	}
	for _, l := range levels {
		if v := sample(after, l.name, l.label...); !l.want(v) {
			t.Errorf("%s%v = %v, want %s", l.name, l.label, v, l.what)
		}
	}
	for _, name := range []string{"gateway_circuit_breaker_state", "gateway_rate_limited_requests_total", "gateway_aggregate_calls_total"} {
		if _, ok := after[name]; ok {
			t.Errorf("%s has series before anything records it", name)
		}
	}
	for _, f := range after {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "secret-path") || l.GetValue() == "127.0.0.1" {
					t.Errorf("%s carries a raw path or client IP label %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}

	// A health change moves the healthy-instances gauge.
	b.setHealth(t, client, api.HealthCritical)
	testkit.WaitFor(t, "healthy instances drop to 0", func() bool {
		return sample(scrape(t, a), "gateway_service_healthy_instances", "service=users") == 0
	})

	// Consul going away is counted as watch errors.
	agent.Stop(t)
	testkit.WaitFor(t, "watch errors counted", func() bool {
		return sample(scrape(t, a), "gateway_consul_watch_errors_total") > 0
	})
}

// TestRegisterFlagRegistersWithPassingCheckAndDeregistersOnShutdown: with
// -register the gateway enters the catalog under the ports it bound, with
// an HTTP check on its admin /health that passes, and SIGTERM takes it out
// again before it exits 0.
func TestRegisterFlagRegistersWithPassingCheckAndDeregistersOnShutdown(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	putRoute(t, client, "empty.hcl", "# no routes yet\n")
	gw := startGateway(t, addr, "-register", "-service-name", "edge-gw")
	var entry *api.ServiceEntry
	testkit.WaitFor(t, "edge-gw passing in consul", func() bool {
		entries, _, err := client.Health().Service("edge-gw", "", true, nil)
		if err != nil || len(entries) != 1 {
			return false
		}
		entry = entries[0]
		return true
	})
	_, port, _ := net.SplitHostPort(gw.public)
	_, adminPort, _ := net.SplitHostPort(gw.admin)
	if got := strconv.Itoa(entry.Service.Port); got != port || entry.Service.Address != "127.0.0.1" {
		t.Errorf("registered %s:%d, want 127.0.0.1:%s", entry.Service.Address, entry.Service.Port, port)
	}
	wantCheck := fmt.Sprintf("http://127.0.0.1:%s/health", adminPort)
	var sawCheck bool
	for _, c := range entry.Checks {
		if c.ServiceID == entry.Service.ID {
			// An HTTP check's output names the URL it polled and the answer.
			sawCheck = strings.Contains(c.Output, "HTTP GET "+wantCheck+": 200")
			if c.Status != api.HealthPassing {
				t.Errorf("check %s is %s", c.CheckID, c.Status)
			}
		}
	}
	if !sawCheck {
		t.Errorf("no passing service check on %s", wantCheck)
	}

	gw.signal(t, syscall.SIGTERM)
	if err := gw.wait(t, stopTimeout); err != nil {
		t.Fatalf("exit after SIGTERM: %v, want status 0", err)
	}
	services, err := client.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := services[entry.Service.ID]; ok {
		t.Fatalf("%s still registered after shutdown", entry.Service.ID)
	}
}
