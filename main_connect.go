package main

import (
	"cmp"
	"context"
	"flag"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/gateway"
	"github.com/gatewayco/gateway/registry"
)

// connectFlags turn on the service mesh side (-connect).
type connectFlags struct {
	on      bool
	service string
}

// addConnectFlags declares -connect and -connect-service.
func addConnectFlags(fs *flag.FlagSet, f *connectFlags) {
	fs.BoolVar(&f.on, "connect", false, "join the Consul Connect service mesh: connect = true routes dial with mTLS under the gateway's leaf certificate and intentions")
	fs.StringVar(&f.service, "connect-service", "", "the gateway's service name in the mesh, whose leaf certificate it uses and which intentions name as source (default: -service-name)")
}

// newMesh returns the Connect watches with -connect, else nil (and a nil
// gateway.Mesh, so connect routes answer 502 naming the flag).
func newMesh(f connectFlags, self selfFlags, client *api.Client, opts registry.Options) (*registry.Connect, gateway.Mesh) {
	if !f.on {
		return nil, nil
	}
	c := registry.NewConnect(client, cmp.Or(f.service, self.name, "gateway"), opts)
	return c, c
}

// runMesh runs the Connect watches and then the controller, once the leaf
// and roots answered (or failed) once, so the first table's connect routes
// can already handshake. Without -connect it runs the controller alone.
func runMesh(ctx context.Context, mesh *registry.Connect, wg *sync.WaitGroup, run func(*registry.Connect)) {
	if mesh == nil {
		wg.Go(func() { run(nil) })
		return
	}
	wg.Go(func() { mesh.Run(ctx) })
	wg.Go(func() {
		mesh.Ready(ctx)
		run(mesh)
	})
}

// meshInstances adds, to the health watches the controller ensures, the
// intention watches of the services connect routes reach, so that a
// route's verdict is known before its table is published.
type meshInstances struct {
	*registry.Health
	mesh *registry.Connect
}

// Ensure ensures the intention watches, then the health watches, of keys.
func (m meshInstances) Ensure(ctx context.Context, keys []registry.ServiceKey) {
	var services []string
	for _, k := range keys {
		if k.Connect {
			services = append(services, k.Name)
		}
	}
	m.mesh.EnsureIntentions(ctx, services)
	m.Health.Ensure(ctx, keys)
}
