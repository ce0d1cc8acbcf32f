package gateway

import (
	"fmt"
	"net/http"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/upstream"
	"github.com/gatewayco/gateway/registry"
)

// mirrorServiceKey is the health watch of a mirror's destination.
func mirrorServiceKey(m *config.Mirror) registry.ServiceKey {
	return registry.ServiceKey{Name: m.Service, Tag: m.Tag}
}

// traffic gives a route's upstream its sticky cookie and its mirrors.
// A mirror's destination is an upstream of its own with no retries,
// breaker or outlier tracking, so nothing of the copies reaches the
// primary's protection; its balancer is random, which keeps no state
// worth carrying across swaps. Each mirror's concurrency slots are kept
// across swaps by route, position and configuration.
func (b *tableBuilder) traffic(rc *config.Route, up *upstream.Upstream, instances func(registry.ServiceKey) []registry.Instance, tr http.RoundTripper, scheme string) *upstream.Upstream {
	up = up.WithSticky(rc.Sticky, rc.AllowWarning)
	if len(rc.Mirrors) == 0 {
		return up
	}
	ms := make([]*upstream.Mirror, 0, len(rc.Mirrors))
	for i := range rc.Mirrors {
		mc := &rc.Mirrors[i]
		key := mirrorServiceKey(mc)
		insts := instances(key)
		if b.served != nil {
			if _, ok := b.served[key]; !ok {
				b.served[key] = insts
			}
		}
		bal, _ := balancer.New(balancer.Random)
		to := upstream.New(upstream.Config{Service: key, Instances: insts, Balancer: bal, Transport: tr, Scheme: scheme, Now: b.deps.now})
		fp := fmt.Sprintf("%d\x00%s\x00%d", i, key, mc.MaxConcurrency)
		slots := b.states.mirrors.get(stateKey{rc.Name, fp}, func() *upstream.MirrorSlots {
			return upstream.NewMirrorSlots(mc.MaxConcurrency)
		})
		ms = append(ms, &upstream.Mirror{To: to, Percent: mc.Percent, Slots: slots, Shared: b.deps.mirrorShared, Timeout: rc.Timeout,
			Sample: b.deps.mirrorSample, Metrics: b.deps.metrics.Mirror(rc.Name, key.String())})
	}
	return up.WithMirrors(ms)
}
