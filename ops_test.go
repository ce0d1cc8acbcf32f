package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// scrape fetches the admin /metrics page and parses it as Prometheus does.
func scrape(t *testing.T, a *app) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + a.adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// sample returns the value of the series of name whose labels include
// every label in want ("k=v" pairs), or -1 when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func TestMetricsEndpointSeriesMoveWithTraffic(t *testing.T) {
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

	inst := b.srv.Listener.Addr().String()
	moved := []struct {
		name  string
		label []string
		delta float64
	}{
		{"gateway_requests_total", []string{"route=users", "method=GET", "code=2xx"}, n},
		{"gateway_request_duration_seconds", []string{"route=users"}, n},
		{"gateway_upstream_requests_total", []string{"service=users", "instance=" + inst}, n},
		{"gateway_requests_total", []string{"route=none", "method=GET", "code=4xx"}, 1},
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

func TestRegisterFlagRegistersWithPassingCheckAndDeregistersOnShutdown(t *testing.T) {
	client, addr := startConsul(t)
	f := serveFlags{listen: "127.0.0.1:0", admin: "127.0.0.1:0", prefix: "gateway/routes/", consul: addr,
		self: selfFlags{register: true, name: "edge-gw"}}
	putRoute(t, client, "empty.hcl", "# no routes yet\n")
	a, err := startApp(f, hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = a.shutdown(5 * time.Second)
		}
	})
	var entry *api.ServiceEntry
	testkit.WaitFor(t, "edge-gw passing in consul", func() bool {
		entries, _, err := client.Health().Service("edge-gw", "", true, nil)
		if err != nil || len(entries) != 1 {
			return false
		}
		entry = entries[0]
		return true
	})
	_, port, _ := splitHostPort(a.publicAddr)
	_, adminPort, _ := splitHostPort(a.adminAddr)
	if entry.Service.Port != port || entry.Service.Address != "127.0.0.1" {
		t.Errorf("registered %s:%d, want 127.0.0.1:%d", entry.Service.Address, entry.Service.Port, port)
	}
	wantCheck := fmt.Sprintf("http://127.0.0.1:%d/health", adminPort)
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

	stopped = true
	if err := a.shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	services, err := client.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := services[entry.Service.ID]; ok {
		t.Fatalf("%s still registered after shutdown", entry.Service.ID)
	}
}

func TestSelfEntryAddresses(t *testing.T) {
	host := func() (string, error) { return "box", nil }
	tests := []struct {
		name                string
		flags               selfFlags
		public, admin       string
		wantAddr, wantCheck string
		wantID              string
	}{
		{"loopback defaults", selfFlags{name: "gateway"}, "127.0.0.1:8080", "127.0.0.1:8081",
			"127.0.0.1", "http://127.0.0.1:8081/health", "gateway-box-8080"},
		{"wildcard listen: node address, check on loopback admin", selfFlags{name: "gateway"}, "[::]:8080", "127.0.0.1:8081",
			"", "http://127.0.0.1:8081/health", "gateway-box-8080"},
		{"container: admin on all interfaces, check via advertise", selfFlags{name: "gw", advertise: "gateway"}, "0.0.0.0:8080", "0.0.0.0:8081",
			"gateway", "http://gateway:8081/health", "gw-box-8080"},
		{"nothing concrete: check on loopback", selfFlags{name: "gateway"}, "0.0.0.0:9000", "0.0.0.0:9001",
			"", "http://127.0.0.1:9001/health", "gateway-box-9000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := selfEntry(tc.flags, tc.public, tc.admin, host)
			if err != nil {
				t.Fatal(err)
			}
			if s.Address != tc.wantAddr || s.CheckURL != tc.wantCheck || s.ID != tc.wantID {
				t.Errorf("got address %q check %q id %q; want %q %q %q", s.Address, s.CheckURL, s.ID, tc.wantAddr, tc.wantCheck, tc.wantID)
			}
		})
	}
}
