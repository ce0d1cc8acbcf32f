package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// TestThreeHundredServicesAgainstDefaultConsulLimits is issue 15's wall:
// with one long poll per service, a Consul with its default
// http_max_conns_per_client (200) refuses the connections past 200 and
// some services' changes never reach their routes. The gateway must serve
// all 300 routes, each with its instance, follow health changes of any of
// them, and hold at most 8 connections to the agent. (With
// -health-watch-threshold -1, per-service watches, this test fails: the
// gateway holds about 200 connections and misses changes.)
func TestThreeHundredServicesAgainstDefaultConsulLimits(t *testing.T) {
	const services = 300
	agent := consultest.Start(t) // default limits: nothing raised
	client := consulClient(t, agent.HTTPAddr)
	backend := startBackend(t, client, "anchor", "anchor-1")
	host, port, _ := net.SplitHostPort(backend.addr())
	p, _ := strconv.Atoi(port)

	var wg sync.WaitGroup
	errs := make(chan error, services)
	sem := make(chan struct{}, 8)
	for i := range services {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("svc%d", i)
			errs <- client.Agent().ServiceRegister(&api.AgentServiceRegistration{
				ID: name + "-1", Name: name, Address: host, Port: p,
				Check: &api.AgentServiceCheck{CheckID: "ttl-" + name, TTL: "10m", Status: api.HealthPassing},
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Three teams' documents of 100 routes each.
	for d := range 3 {
		var doc strings.Builder
		for i := d * 100; i < (d+1)*100; i++ {
			doc.WriteString(routeDoc(fmt.Sprintf("r%d", i), fmt.Sprintf("/svc%d/", i), fmt.Sprintf("svc%d", i)))
		}
		putRoute(t, client, fmt.Sprintf("team-%d.hcl", d), doc.String())
	}

	gw := startGateway(t, agent.HTTPAddr)
	testkit.WaitFor(t, fmt.Sprintf("%d routes each with its instance", services), func() bool {
		rs := getRoutes(t, gw).Routes
		if len(rs) != services {
			return false
		}
		for _, r := range rs {
			if len(r.Instances) != 1 {
				return false
			}
		}
		return true
	})
	for i := range services {
		resp, err := http.Get(fmt.Sprintf("http://%s/svc%d/x", gw.public, i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/svc%d/x: %d", i, resp.StatusCode)
		}
	}
	_, consulPort, _ := net.SplitHostPort(agent.HTTPAddr)
	if n := connsTo(t, gw.pid(), consulPort); n > 8 || n == 0 {
		t.Errorf("gateway holds %d connections to Consul, want 1 to 8", n)
	}

	// Health changes still reach every route: one service in ten goes
	// critical and its route loses its instance.
	for i := 0; i < services; i += 10 {
		if err := client.Agent().UpdateTTL(fmt.Sprintf("ttl-svc%d", i), "test", api.HealthCritical); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, "every tenth service without instances", func() bool {
		for _, r := range getRoutes(t, gw).Routes {
			var i int
			if _, err := fmt.Sscanf(r.Service, "svc%d", &i); err != nil {
				return false
			}
			if (i%10 == 0) != (len(r.Instances) == 0) {
				return false
			}
		}
		return true
	})
}

// connsTo counts the established TCP connections process pid holds to
// port on loopback, from /proc: the kernel's view, whatever the process
// thinks it holds.
func connsTo(t *testing.T, pid int, port string) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	p, _ := strconv.Atoi(port)
	want := fmt.Sprintf(":%04X", p)
	n := 0
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// sl local remote st ... uid timeout inode
			if len(f) > 9 && strings.HasSuffix(f[2], want) && f[3] == "01" && inodes[f[9]] {
				n++
			}
		}
	}
	return n
}
