package registry

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"golang.org/x/time/rate"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// readCounter counts the gateway's calls per Consul path.
type readCounter struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (c *readCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[r.URL.Path]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *readCounter) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

// countingClient is a client of addr whose calls are counted.
func countingClient(t *testing.T, addr string) (*api.Client, *readCounter) {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	transport := cfg.Transport
	counter := &readCounter{next: transport, n: map[string]int{}}
	cfg.HttpClient = &http.Client{Transport: counter}
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(transport.CloseIdleConnections)
	return client, counter
}

// sharedGoroutines counts goroutines inside a watch loop, shared or per key.
func sharedGoroutines() int { return runningWatches() }

// TestSharedHealthFollowsEveryKindOfChange runs a Health in shared mode
// against a real agent with Consul's default limits and makes each change
// the shared watches must notice: a check flap, a new instance without
// checks, new weights, a deregistration, maintenance; each must reach the
// snapshot, and only two watch loops run whatever the number of keys.
func TestSharedHealthFollowsEveryKindOfChange(t *testing.T) {
	verifyNoLeaks(t)
	agent := consultest.Start(t)
	client := testClient(t, agent.HTTPAddr)
	for i := 1; i <= 2; i++ {
		register(t, client, &api.AgentServiceRegistration{ID: fmt.Sprintf("web-%d", i), Name: "web", Address: "127.0.0.1", Port: 8000 + i,
			Check: &api.AgentServiceCheck{CheckID: fmt.Sprintf("ttl-web-%d", i), TTL: "10m", Status: api.HealthPassing}})
	}
	register(t, client, &api.AgentServiceRegistration{ID: "bare-1", Name: "bare", Address: "127.0.0.1", Port: 9001})
	const others = 40 // more keys than watch loops would otherwise need
	keys := []ServiceKey{{Name: "web"}, {Name: "bare"}}
	for i := range others {
		keys = append(keys, ServiceKey{Name: fmt.Sprintf("other-%d", i)})
	}

	h := NewHealth(client, Options{}, nil)
	h.ShareAbove(0)
	defer h.Stop()
	h.Ensure(context.Background(), keys)
	if got := instanceIDs(h, ServiceKey{Name: "web"}); !slices.Equal(got, []string{"web-1", "web-2"}) {
		t.Fatalf("right after Ensure, web = %q", got)
	}
	if got := instanceIDs(h, ServiceKey{Name: "bare"}); !slices.Equal(got, []string{"bare-1"}) {
		t.Fatalf("right after Ensure, bare = %q", got)
	}
	if n := sharedGoroutines(); n != 2 {
		t.Errorf("%d watch loops run for %d keys, want the 2 shared ones", n, len(keys))
	}

	waitIDs := func(name string, want ...string) {
		t.Helper()
		testkit.WaitFor(t, fmt.Sprintf("%s passing = %q", name, want), func() bool {
			return slices.Equal(instanceIDs(h, ServiceKey{Name: name}), want)
		})
	}
	// A check flap moves only the check list.
	if err := client.Agent().UpdateTTL("ttl-web-1", "", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	waitIDs("web", "web-2")
	if err := client.Agent().UpdateTTL("ttl-web-1", "", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	waitIDs("web", "web-1", "web-2")

	// A new instance without checks moves only the catalog.
	register(t, client, &api.AgentServiceRegistration{ID: "bare-2", Name: "bare", Address: "127.0.0.1", Port: 9002})
	waitIDs("bare", "bare-1", "bare-2")

	// New weights: the catalog again, no check changes.
	register(t, client, &api.AgentServiceRegistration{ID: "web-2", Name: "web", Address: "127.0.0.1", Port: 8002,
		Weights: &api.AgentWeights{Passing: 7, Warning: 1},
		Check:   &api.AgentServiceCheck{CheckID: "ttl-web-2", TTL: "10m", Status: api.HealthPassing}})
	testkit.WaitFor(t, "web-2 weight 7", func() bool {
		insts, _ := h.Instances(ServiceKey{Name: "web"})
		return len(insts) == 2 && insts[1].Weights.Passing == 7
	})

	// Maintenance adds a check to the service.
	if err := client.Agent().EnableServiceMaintenance("web-1", "test"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "web-1 in maintenance", func() bool {
		insts, _ := h.Instances(ServiceKey{Name: "web"})
		return len(insts) == 2 && insts[0].Maintenance
	})

	// A deregistration, of an instance with checks and one without.
	if err := client.Agent().ServiceDeregister("web-1"); err != nil {
		t.Fatal(err)
	}
	if err := client.Agent().ServiceDeregister("bare-1"); err != nil {
		t.Fatal(err)
	}
	waitIDs("web", "web-2")
	waitIDs("bare", "bare-2")

	// A service that appears after it was first read.
	register(t, client, &api.AgentServiceRegistration{ID: "other-3-1", Name: "other-3", Address: "127.0.0.1", Port: 9100})
	waitIDs("other-3", "other-3-1")

	// Keys removed from Ensure are no longer served.
	h.Ensure(context.Background(), keys[:1])
	if _, ok := h.Instances(ServiceKey{Name: "bare"}); ok {
		t.Error("bare still served after it left the watched keys")
	}
	h.Stop()
	if n := sharedGoroutines(); n != 0 {
		t.Errorf("%d watch loops still run after Stop", n)
	}
}

// TestSharedHealthCoalescesAndReadsOnlyWhatChanged holds the check watch
// between two answers while one service's check flaps many times: the
// one answer after that must cost one read of that service and none of
// the others.
func TestSharedHealthCoalescesAndReadsOnlyWhatChanged(t *testing.T) {
	verifyNoLeaks(t)
	agent := consultest.Start(t)
	client, counter := countingClient(t, agent.HTTPAddr)
	const services = 20
	var keys []ServiceKey
	for i := range services {
		name := fmt.Sprintf("svc-%d", i)
		register(t, client, &api.AgentServiceRegistration{ID: name + "-1", Name: name, Address: "127.0.0.1", Port: 7000 + i,
			Check: &api.AgentServiceCheck{CheckID: "ttl-" + name, TTL: "10m", Status: api.HealthPassing}})
		keys = append(keys, ServiceKey{Name: name})
	}
	// A limiter that lets one call through and then waits hours: every
	// later call of a shared watch waits in Sleep, which waits for gate.
	gate := make(chan struct{})
	sleep := func(ctx context.Context, d time.Duration) error {
		if d < time.Second {
			return ctx.Err()
		}
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h := NewHealth(client, Options{RateLimit: rate.Limit(0.0001), Burst: 1, Sleep: sleep}, nil)
	h.ShareAbove(0)
	defer h.Stop()
	h.Ensure(context.Background(), keys)
	for _, k := range keys {
		if got := counter.count("/v1/health/service/" + k.Name); got != 1 {
			t.Fatalf("%s read %d times at start, want 1", k.Name, got)
		}
	}

	const flaps = 41 // odd: ends critical
	status := api.HealthPassing
	for range flaps {
		status = map[string]string{api.HealthPassing: api.HealthCritical, api.HealthCritical: api.HealthPassing}[status]
		if err := client.Agent().UpdateTTL("ttl-svc-3", fmt.Sprint(status), status); err != nil {
			t.Fatal(err)
		}
	}
	// The agent syncs check updates to the catalog in order: once the last
	// one is there, every one is.
	testkit.WaitFor(t, "last flap in the catalog", func() bool {
		checks, _, err := client.Health().Checks("svc-3", nil)
		return err == nil && len(checks) == 1 && checks[0].Status == api.HealthCritical
	})
	close(gate)
	testkit.WaitFor(t, "svc-3 excluded", func() bool {
		insts, ok := h.Instances(ServiceKey{Name: "svc-3"})
		return ok && len(insts) == 1 && !insts[0].Passing
	})
	if got := counter.count("/v1/health/service/svc-3"); got != 2 {
		t.Errorf("svc-3 read %d times for %d flaps in one answer, want 2 (start + one)", got, flaps)
	}
	for _, k := range keys {
		if k.Name != "svc-3" {
			if got := counter.count("/v1/health/service/" + k.Name); got != 1 {
				t.Errorf("%s read %d times, want 1: only the flapping service is re-read", k.Name, got)
			}
		}
	}
	if got := counter.count("/v1/health/state/any"); got > 3 {
		t.Errorf("check list read %d times, want at most 3", got)
	}
	h.Stop()
}

// TestHealthSwitchesToSharedAboveThreshold starts below the threshold with
// per-service watches and crosses it: the per-service loops stop and the
// instances stay served throughout.
func TestHealthSwitchesToSharedAboveThreshold(t *testing.T) {
	verifyNoLeaks(t)
	agent := consultest.Start(t)
	client := testClient(t, agent.HTTPAddr)
	var keys []ServiceKey
	for i := range 6 {
		name := fmt.Sprintf("s%d", i)
		register(t, client, &api.AgentServiceRegistration{ID: name, Name: name, Address: "127.0.0.1", Port: 7100 + i})
		keys = append(keys, ServiceKey{Name: name})
	}
	h := NewHealth(client, Options{}, nil)
	h.ShareAbove(4)
	defer h.Stop()
	h.Ensure(context.Background(), keys[:4])
	if n := runningWatches(); n != 4 {
		t.Fatalf("%d watch loops at 4 keys (threshold 4), want 4 per-service ones", n)
	}
	h.Ensure(context.Background(), keys)
	if n := runningWatches(); n != 2 {
		t.Errorf("%d watch loops at 6 keys, want the 2 shared ones", n)
	}
	for _, k := range keys {
		if got := instanceIDs(h, k); !slices.Equal(got, []string{k.Name}) {
			t.Errorf("after the switch %s = %q", k.Name, got)
		}
	}
	// The switch is one-way.
	h.Ensure(context.Background(), keys[:1])
	if n := runningWatches(); n != 2 {
		t.Errorf("%d watch loops after dropping below the threshold, want 2 (no switch back)", n)
	}
	if got := instanceIDs(h, keys[0]); !slices.Equal(got, []string{"s0"}) {
		t.Errorf("s0 = %q", got)
	}
}

// TestSharedHealthThroughConsulOutage stops the agent under a Health in
// shared mode: the snapshots stay, Status reports the outage, and once
// the agent is back a change reaches the snapshot again; Stop leaves no
// goroutine behind, retry timers included.
func TestSharedHealthThroughConsulOutage(t *testing.T) {
	verifyNoLeaks(t)
	agent := consultest.Start(t)
	client := testClient(t, agent.HTTPAddr)
	register(t, client, &api.AgentServiceRegistration{ID: "web-1", Name: "web", Address: "127.0.0.1", Port: 8001,
		Check: &api.AgentServiceCheck{CheckID: "ttl-web-1", TTL: "10m", Status: api.HealthPassing}})
	status := &Status{}
	h := NewHealth(client, Options{Status: status, BackoffMax: 500 * time.Millisecond}, nil)
	h.ShareAbove(0)
	defer h.Stop()
	key := ServiceKey{Name: "web"}
	h.Ensure(context.Background(), []ServiceKey{key})
	if got := instanceIDs(h, key); !slices.Equal(got, []string{"web-1"}) {
		t.Fatalf("web = %q", got)
	}

	agent.Stop(t)
	testkit.WaitFor(t, "Status reports the outage", func() bool { return status.Err() != nil })
	if got := instanceIDs(h, key); !slices.Equal(got, []string{"web-1"}) {
		t.Errorf("during the outage web = %q, want the last snapshot", got)
	}

	agent.Restart(t)
	// The agent's checks come back from its data dir with the service.
	testkit.WaitFor(t, "ttl-web-1 back", func() bool {
		return client.Agent().UpdateTTL("ttl-web-1", "", api.HealthCritical) == nil
	})
	testkit.WaitFor(t, "web-1 excluded after the outage", func() bool { return len(instanceIDs(h, key)) == 0 })
	testkit.WaitFor(t, "Status healthy again", func() bool { return status.Err() == nil })
	h.Stop()
}
