package registry

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// TestPeersCountsPassingReplicasAndItself checks the replica count a
// cluster rate limit divides by: passing instances of the service, this
// gateway counted while Consul does not list it as passing, and the count
// following checks that fail and recover.
func TestPeersCountsPassingReplicasAndItself(t *testing.T) {
	verifyNoLeaks(t)
	srv := startConsul(t)
	client := testClient(t, srv.HTTPAddr)
	for _, id := range []string{"gw-1", "gw-2", "gw-3"} {
		register(t, client, &api.AgentServiceRegistration{ID: id, Name: "gw", Port: 8080, Check: &api.AgentServiceCheck{TTL: "10m"}})
	}
	register(t, client, &api.AgentServiceRegistration{ID: "other-1", Name: "other", Port: 8080})
	setTTL := func(id, status string) {
		t.Helper()
		if err := client.Agent().UpdateTTL("service:"+id, "", status); err != nil {
			t.Fatal(err)
		}
	}
	setTTL("gw-1", api.HealthPassing)
	setTTL("gw-2", api.HealthPassing)

	var changes counter
	p := NewPeers(client, "gw", Options{}, changes.notify)
	if n := p.Count(); n != 1 {
		t.Fatalf("Count before Run = %d, want 1", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx, "gw-3") })
	t.Cleanup(func() { cancel(); wg.Wait() })

	// gw-3 is this gateway: critical, yet serving, so it counts.
	waitCount(t, p, "replicas with two others passing", 3)
	setTTL("gw-3", api.HealthPassing)
	setTTL("gw-2", api.HealthCritical)
	waitCount(t, p, "replicas once gw-2 fails", 2)
	setTTL("gw-2", api.HealthPassing)
	waitCount(t, p, "replicas once gw-2 is back", 3)
	if err := client.Agent().ServiceDeregister("gw-1"); err != nil {
		t.Fatal(err)
	}
	waitCount(t, p, "replicas once gw-1 left", 2)
	if changes.count() < 4 {
		t.Errorf("notify called %d times for 4 changes", changes.count())
	}
	var nilPeers *Peers
	if n := nilPeers.Count(); n != 1 {
		t.Errorf("nil Peers count %d, want 1", n)
	}
}

// waitCount waits until p counts want replicas.
func waitCount(t *testing.T, p *Peers, what string, want int) {
	t.Helper()
	testkit.WaitFor(t, what, func() bool { return p.Count() == want })
}

// TestPeersCountsSameIDOnTwoNodes: a service ID is unique per agent, not
// per cluster, so two gateways on different nodes may share one (same
// host name and port); each takes traffic and must be counted.
func TestPeersCountsSameIDOnTwoNodes(t *testing.T) {
	verifyNoLeaks(t)
	srv := startConsul(t)
	client := testClient(t, srv.HTTPAddr)
	register(t, client, &api.AgentServiceRegistration{ID: "gw-1", Name: "gw", Port: 8080})
	if _, err := client.Catalog().Register(&api.CatalogRegistration{Node: "node-b", Address: "127.0.0.2",
		Service: &api.AgentService{ID: "gw-1", Service: "gw", Port: 8080}}, nil); err != nil {
		t.Fatal(err)
	}
	p := NewPeers(client, "gw", Options{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx, "gw-self") })
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitCount(t, p, "gw-1 on both nodes and this gateway", 3)
}

// TestPeersReportsACLFilteringAsPermissionDenied: a token that may not
// read the gateway's own service gets an answer with the replicas left
// out, which taken as it is would make each replica allow the whole
// fleet's limit. It is a refusal, reported to Status, and the count
// stays where it was.
func TestPeersReportsACLFilteringAsPermissionDenied(t *testing.T) {
	verifyNoLeaks(t)
	agent := consultest.StartWithACL(t, nil)
	admin := tokenClient(t, agent, agent.Token)
	for _, id := range []string{"gw-1", "gw-2"} {
		register(t, admin, &api.AgentServiceRegistration{ID: id, Name: "gw", Port: 8080})
	}
	client := tokenClient(t, agent, agent.CreateToken(t, `node_prefix "" { policy = "read" }`))
	status := &Status{}
	p := NewPeers(client, "gw", Options{Status: status, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx, "gw-self") })
	t.Cleanup(func() { cancel(); wg.Wait() })
	testkit.WaitWithin(t, 10*time.Second, "the refusal reported", func() bool { return status.Err() != nil })
	if err := status.Err(); !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), `service "gw"`) {
		t.Errorf("Status.Err() = %v, want ErrPermissionDenied naming the gateway's service", err)
	}
	if n := p.Count(); n != 1 {
		t.Errorf("Count = %d after refused reads, want the initial 1", n)
	}
}
