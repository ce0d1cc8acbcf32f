package main

import (
	"context"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/registry"
)

// clusterSide is the replica count of cluster-scoped rate limits: with
// -register, the passing instances of the gateway's own service; without
// it, nothing (Replicas nil), and such limits act per replica.
type clusterSide struct {
	peers *registry.Peers // nil without -register
}

func newClusterSide(f selfFlags, client *api.Client, opts registry.Options, m *metrics.Metrics) clusterSide {
	if !f.register {
		return clusterSide{}
	}
	p := registry.NewPeers(client, f.name, opts, nil)
	m.Registry().MustRegister(metrics.ClusterReplicas(p.Count))
	return clusterSide{peers: p}
}

// replicas is gateway.Options.Replicas.
func (c clusterSide) replicas() func() int {
	if c.peers == nil {
		return nil
	}
	return c.peers.Count
}

// run starts following the fleet once this gateway has its service ID.
func (c clusterSide) run(ctx context.Context, self *selfRegistration, wg *sync.WaitGroup) {
	if c.peers == nil || self == nil {
		return
	}
	wg.Go(func() { c.peers.Run(ctx, self.id) })
}
