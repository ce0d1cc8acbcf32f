package registry

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/hashicorp/consul/api"
)

// TestHealthWatchOtherDatacenter watches, through dc1's agent, a service
// registered only in dc2: the key's Datacenter reaches it over the WAN,
// and the local key of the same service stays empty.
func TestHealthWatchOtherDatacenter(t *testing.T) {
	verifyNoLeaks(t)
	agents := consultest.StartDatacenters(t, "dc1", "dc2")
	local := testClient(t, agents[0].HTTPAddr)
	remote := testClient(t, agents[1].HTTPAddr)
	register(t, remote, &api.AgentServiceRegistration{
		ID: "far-1", Name: "far", Address: "192.0.2.9", Port: 80,
		Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
	})

	for client, want := range map[*api.Client]string{local: "dc1", remote: "dc2"} {
		if dc, err := LocalDatacenter(context.Background(), client); dc != want || err != nil {
			t.Errorf("LocalDatacenter = %q, %v; want %q", dc, err, want)
		}
	}

	h := NewHealth(local, Options{}, nil)
	defer h.Stop()
	here, there := ServiceKey{Name: "far"}, ServiceKey{Name: "far", Datacenter: "dc2"}
	h.Ensure(context.Background(), []ServiceKey{here, there})
	testkit.WaitWithin(t, 5*time.Second, "dc2's instance through dc1's agent", func() bool {
		return slices.Equal(instanceIDs(h, there), []string{"far-1"})
	})
	if ids := instanceIDs(h, here); len(ids) != 0 {
		t.Errorf("local datacenter lists %q, want none", ids)
	}
	// The blocking loop follows changes over the WAN like a local one.
	if err := remote.Agent().UpdateTTL("service:far-1", "", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	testkit.WaitWithin(t, 5*time.Second, "dc2's instance critical", func() bool {
		ids := instanceIDs(h, there)
		return ids != nil && len(ids) == 0
	})
	if got := there.String(); got != "far@dc2" {
		t.Errorf("key renders %q, want far@dc2", got)
	}
}
