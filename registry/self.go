package registry

import (
	"context"
	"fmt"

	"github.com/hashicorp/consul/api"
)

// Self describes the gateway's own entry in the Consul catalog, so that
// load balancers and other tooling can discover it like any service.
type Self struct {
	// ID is the service ID, unique on the agent.
	ID string
	// Name is the service name, e.g. "gateway".
	Name string
	// Address is what others use to reach the public listener; empty means
	// Consul's fallback, the agent node's address.
	Address string
	// Port is the public listener's port.
	Port int
	// CheckURL is the admin /health URL the agent polls.
	CheckURL string
}

// Register adds s to the agent with an HTTP check on CheckURL. The check
// also removes instances that died without deregistering (kill -9) after a
// minute critical, so a crashed gateway does not linger in the catalog.
func Register(ctx context.Context, client *api.Client, s Self) error {
	reg := &api.AgentServiceRegistration{
		ID: s.ID, Name: s.Name, Address: s.Address, Port: s.Port,
		Check: &api.AgentServiceCheck{
			CheckID:                        "service:" + s.ID + ":admin-health",
			Name:                           "gateway admin /health",
			HTTP:                           s.CheckURL,
			Interval:                       "2s",
			Timeout:                        "1s",
			DeregisterCriticalServiceAfter: "1m",
		},
	}
	opts := api.ServiceRegisterOpts{}.WithContext(ctx)
	if err := client.Agent().ServiceRegisterOpts(reg, opts); err != nil {
		return fmt.Errorf("register %s in consul: %w", s.ID, err)
	}
	return nil
}

// Deregister removes service id from the agent.
func Deregister(ctx context.Context, client *api.Client, id string) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	if err := client.Agent().ServiceDeregisterOpts(id, q); err != nil {
		return fmt.Errorf("deregister %s from consul: %w", id, err)
	}
	return nil
}
