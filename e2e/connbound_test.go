package e2e

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// maxConsulConns is the bound docs/capacity.md states for a gateway with
// shared health watches: four long polls (routes, last-good state, the
// check list, the catalog index) and four short-call slots.
const maxConsulConns = 8

// TestConsulConnectionsBoundedUnderChurn holds the gateway to
// maxConsulConns connections to its agent on every sample while
// everything that makes it call Consul happens at once: health flaps of
// many services (each a targeted read), re-registrations (each a re-read
// of every service), route document writes (a KV read and a last-good
// check-and-set write each) and /health probes, at 320 services in shared
// mode, with -register (its replica watch is one more watch loop). Net/http opens another connection whenever every one it has is
// busy, so a bound that held only on average would show here.
func TestConsulConnectionsBoundedUnderChurn(t *testing.T) {
	const services = 320
	agent := consultest.Start(t)
	client := consulClient(t, agent.HTTPAddr)
	backend := startBackend(t, client, "anchor", "anchor-1")
	host, port, _ := net.SplitHostPort(backend.addr())
	p, _ := strconv.Atoi(port)
	register := func(i int, tags ...string) error {
		name := fmt.Sprintf("svc%d", i)
		return client.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: name + "-1", Name: name, Address: host, Port: p, Tags: tags,
			Check: &api.AgentServiceCheck{CheckID: "ttl-" + name, TTL: "10m", Status: api.HealthPassing},
		})
	}
	parallel(t, services, func(i int) error { return register(i) })
	const docs = 4
	doc := func(d int, extra string) string {
		var b strings.Builder
		for i := d * services / docs; i < (d+1)*services/docs; i++ {
			b.WriteString(routeDoc(fmt.Sprintf("r%d", i), fmt.Sprintf("/svc%d/", i), fmt.Sprintf("svc%d", i)))
		}
		return b.String() + extra
	}
	for d := range docs {
		putRoute(t, client, fmt.Sprintf("team-%d.hcl", d), doc(d, ""))
	}

	// With -register: the replica watch is a fifth watch loop, which
	// takes one of the short calls' slots (see registry.NewClientSlots),
	// the larger of the two configurations.
	gw := startGateway(t, agent.HTTPAddr, "-register")
	allServed := func() bool {
		rs := getRoutes(t, gw).Routes
		if len(rs) < services {
			return false
		}
		for _, r := range rs {
			if len(r.Instances) != 1 {
				return false
			}
		}
		return true
	}
	testkit.WaitFor(t, fmt.Sprintf("%d routes each with its instance", services), allServed)

	_, consulPort, _ := net.SplitHostPort(agent.HTTPAddr)
	pid := gw.pid()
	stop := make(chan struct{})
	var stopOnce sync.Once
	var sampler, churn sync.WaitGroup
	halt := func() {
		stopOnce.Do(func() { close(stop) })
		churn.Wait()
		sampler.Wait()
	}
	t.Cleanup(halt) // also when a wait below fails the test
	var samples, most, over atomic.Int64
	sampler.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			n := int64(connsTo(t, pid, consulPort))
			samples.Add(1)
			if n > most.Load() {
				most.Store(n)
			}
			if n > maxConsulConns {
				over.Add(1)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})

	// The churn: each loop runs until stop, as fast as the agent answers.
	var flaps, regs, writes, probes atomic.Int64
	loop := func(count *atomic.Int64, step func(i int) error) {
		churn.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := step(i); err != nil {
					t.Error(err)
					return
				}
				count.Add(1)
			}
		})
	}
	for w := range 6 { // health flaps: a TTL update each, flipping
		loop(&flaps, func(i int) error {
			svc := (w*53 + i*7) % services
			status := api.HealthCritical
			if (i/services)%2 == 1 {
				status = api.HealthPassing
			}
			return client.Agent().UpdateTTL(fmt.Sprintf("ttl-svc%d", svc), "churn", status)
		})
	}
	loop(&regs, func(i int) error { return register(i%services, "churn", strconv.Itoa(i)) })
	loop(&writes, func(i int) error {
		_, err := client.KV().Put(&api.KVPair{Key: routesPrefix + fmt.Sprintf("team-%d.hcl", i%docs),
			Value: []byte(doc(i%docs, fmt.Sprintf("# revision %d\n", i)))}, nil)
		return err
	})
	loop(&probes, func(int) error {
		resp, err := gw.adminClient.Get("http://" + gw.admin + "/health")
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	})
	progress := func() string {
		return fmt.Sprintf("%d flaps, %d re-registrations, %d document writes, %d /health probes",
			flaps.Load(), regs.Load(), writes.Load(), probes.Load())
	}
	// The churn's own pace depends on the agent's (every flap is a raft
	// write): a loaded machine gets the same work done, later.
	t.Cleanup(func() { t.Log("churn done: " + progress()) })
	testkit.WaitWithin(t, 3*testkit.Timeout, "300 health flaps, 10 re-registrations, 10 document writes and 50 probes", func() bool {
		return flaps.Load() >= 300 && regs.Load() >= 10 && writes.Load() >= 10 && probes.Load() >= 50
	})
	halt()
	t.Logf("%d samples, at most %d connections to Consul", samples.Load(), most.Load())
	if samples.Load() < 20 { // each takes a read of /proc: slow under -race on a loaded machine, never this slow
		t.Errorf("only %d samples of the connections during the churn", samples.Load())
	}
	if over.Load() > 0 {
		t.Errorf("%d of %d samples over the bound of %d connections to Consul (at most %d)", over.Load(), samples.Load(), maxConsulConns, most.Load())
	}

	// Still fresh after the churn: every service back to passing is
	// served, then one going critical loses its instance.
	parallel(t, services, func(i int) error {
		return client.Agent().UpdateTTL(fmt.Sprintf("ttl-svc%d", i), "settled", api.HealthPassing)
	})
	testkit.WaitFor(t, "every route with its instance after the churn", allServed)
	if err := client.Agent().UpdateTTL("ttl-svc7", "test", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "svc7's route without its instance", func() bool {
		for _, r := range getRoutes(t, gw).Routes {
			if r.Service == "svc7" {
				return len(r.Instances) == 0
			}
		}
		return false
	})
}

// parallel runs f(0) ... f(n-1), 8 at a time, failing t on any error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs <- f(i)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
