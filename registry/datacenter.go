package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/consul/api"
)

// ErrNoDatacenter is wrapped when the agent's self-description names no
// datacenter.
var ErrNoDatacenter = errors.New("consul agent reports no datacenter")

// LocalDatacenter asks the agent which datacenter it is in: the one every
// query without a dc parameter reads. It is asked once, at start; the
// answer only names things in /routes, metrics and logs.
func LocalDatacenter(ctx context.Context, client *api.Client) (string, error) {
	var self struct {
		Config struct{ Datacenter string }
	}
	if _, err := client.Raw().Query("/v1/agent/self", &self, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return "", fmt.Errorf("consul agent self: %w", err)
	}
	if self.Config.Datacenter == "" {
		return "", ErrNoDatacenter
	}
	return self.Config.Datacenter, nil
}
