package gateway

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/gateway/upstream"
	"github.com/gatewayco/gateway/registry"
)

// splitBalancer picks a split route's destination by weight. Weighted
// random is the built-in policy that honours Pool weights; with smooth
// weighted round robin, round_robin would give exact shares over a cycle.
const splitBalancer = balancer.Random

// splitStates is what split routes keep across swaps: the balancer
// choosing each route's destination, and the count of requests each
// destination got under the route's current weights (keyed by the
// weights' fingerprint, so a weight change starts the observed shares
// afresh).
type splitStates struct {
	balancers keep[balancer.Balancer]
	served    keep[*atomic.Uint64]
}

func (s *splitStates) swap() {
	s.balancers.swap()
	s.served.swap()
}

func (s *splitStates) discard() {
	s.balancers.discard()
	s.served.discard()
}

// splitKey is the health watch of a split's destination.
func splitKey(s *config.Split) registry.ServiceKey {
	return registry.ServiceKey{Name: s.Service, Tag: s.Tag}
}

// splitFingerprint names a route's destinations and weights.
func splitFingerprint(splits []config.Split) string {
	var sb strings.Builder
	for i := range splits {
		fmt.Fprintf(&sb, "%s\x00%s\x00%d\x00", splits[i].Service, splits[i].Tag, splits[i].Weight)
	}
	return sb.String()
}

// splitRoute builds a route with split blocks: each destination is an
// upstream of its own, built as route builds a one-service route's (the
// route's balancer, retries, circuit breaker, protocol and timeout), with
// its retry budget and breaker kept under "route/service:tag"; a
// Splitter in front of their proxy handlers chooses one per request.
func (b *tableBuilder) splitRoute(rc config.Route, instances func(registry.ServiceKey) []registry.Instance, panics map[registry.ServiceKey]string) *Route {
	tr, scheme, err := b.transports.forRoute(&rc)
	if err != nil {
		b.deps.logger.Error("upstream TLS settings unusable; the route answers 502", "route", rc.Name, "error", err)
		b.tlsErrors = append(b.tlsErrors, ConfigError{Key: rc.Pos.Key,
			Message: fmt.Sprintf("%s: route %q answers 502 until fixed: %v", rc.UpstreamTLS.Pos, rc.Name, err)})
	}
	rt := &Route{Config: rc, metrics: b.deps.metrics.Route(rc.Name)}
	fp := splitFingerprint(rc.Splits)
	dests := make([]upstream.Destination, len(rc.Splits))
	for i := range rc.Splits {
		sp := rt.Config.Splits[i]
		key := splitKey(&sp)
		name := rc.Name + "/" + sp.String()
		retry, breaker := b.protection(name, &rc.Policy, key)
		up := b.newUpstreamOver(key, rc.Balancer, instances(key), retry, breaker, tr, scheme)
		dests[i] = upstream.Destination{Split: sp, Up: up,
			Handler: b.deps.proxy.Handler(&rt.Config, up),
			Metrics: b.deps.metrics.SplitDest(rc.Name, sp.String()),
			Served:  b.states.splits.served.get(stateKey{name, fp}, func() *atomic.Uint64 { return new(atomic.Uint64) })}
		rt.splitPanics = append(rt.splitPanics, panics[key])
	}
	bal := b.states.splits.balancers.get(stateKey{rc.Name, ""}, func() balancer.Balancer {
		bal, err := balancer.New(splitBalancer)
		if err != nil {
			panic(err) // a constant name: a bug
		}
		return bal
	})
	rt.splitter = upstream.NewSplitter(dests, bal, b.deps.now)
	authUp := b.authUpstream(rc.Policy.ForwardAuth, rc.Balancer, instances)
	https := policy.HTTPS{Only: rc.HTTPSOnly, HSTSMaxAge: rc.HSTSMaxAge, Port: b.deps.env.httpsPort, Trusted: b.deps.env.trusted}
	rt.handler = named(rc.Name, rt.metrics, https.Middleware(b.admission(rc.Name, &rc.Policy, authUp, rt.splitter)))
	return rt
}

// SplitState is one destination of a route with splits as operators see
// it.
type SplitState struct {
	// Split is the validated split block.
	Split config.Split
	// Service is the destination's health watch.
	Service registry.ServiceKey
	// Instances are the destination's instances with the gateway's
	// verdict on each.
	Instances []upstream.InstanceState
	// Available is false when the destination has no instance it would
	// pick (none from Consul, or all ejected): its share goes to the
	// other destinations meanwhile.
	Available bool
	// Panic is why Instances is not the passing set; see Route.Panic.
	Panic string
	// Served is how many requests the destination got under the route's
	// current weights.
	Served uint64
	// Breaker is the destination's circuit breaker state; HasBreaker is
	// false without one.
	Breaker    policy.BreakerState
	HasBreaker bool
}

// SplitStates lists a route's destinations at now, in split order; nil
// for a route without splits.
func (r *Route) SplitStates(now time.Time) []SplitState {
	if r.splitter == nil {
		return nil
	}
	dests := r.splitter.Destinations()
	out := make([]SplitState, len(dests))
	for i := range dests {
		d := &dests[i]
		out[i] = SplitState{Split: d.Split, Service: d.Up.Service(), Instances: d.Up.Instances(now),
			Available: r.splitter.Available(i, now), Panic: r.splitPanics[i], Served: d.Served.Load()}
		if br := d.Up.Breaker(); br != nil {
			out[i].Breaker, out[i].HasBreaker = br.State(), true
		}
	}
	return out
}
