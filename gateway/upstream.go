package gateway

import (
	"errors"
	"net/http"
	"time"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/registry"
)

// errNoInstance is returned when a service has no passing instance; the
// proxy answers it with 503.
var errNoInstance = errors.New("no healthy instance")

// upstream sends requests to one service's instances: it picks one with the
// service's balancer and forwards over the shared transport, behind the
// route's circuit breaker and with its retries. It is the one place where
// a request meets an instance, so routes (through ReverseProxy) and any
// other caller (forward auth) share the same selection and protection.
type upstream struct {
	service  registry.ServiceKey
	hosts    []string // instances' host:port, in snapshot order; never mutated
	balancer balancer.Balancer
	next     http.RoundTripper
	retry    retryPolicy
	breaker  *policy.RouteBreaker       // nil: no circuit breaker
	health   []*balancer.InstanceHealth // aligned with hosts; nil: no outlier ejection
	outliers *balancer.OutlierTracker
	now      func() time.Time
	// metrics are the instances' counters in hosts order, resolved when the
	// table was built; nil when metrics are off. noInstance counts requests
	// that found no healthy instance.
	metrics    []metrics.Instance
	noInstance metrics.Instance
}

// RoundTrip sends req to an instance. req.URL.Host is overwritten; the
// exchange in req's context, when present, learns which instance was
// picked for the access log.
func (u *upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if u.breaker != nil {
		return u.breaker.RoundTrip(req, u.send)
	}
	return u.send(req)
}

// dispatch is the ReverseProxy's transport: it hands each request to the
// upstream of the route that matched it, found in the request's exchange.
type dispatch struct{}

func (dispatch) RoundTrip(req *http.Request) (*http.Response, error) {
	return exchange.From(req.Context()).Upstream.RoundTrip(req)
}

// newUpstream builds the upstream of one service for one table: the
// balancer and the instances' passive health come from the builder, which
// keeps them across swaps, so every caller of a service (routes, forward
// auth) shares them.
func (b *tableBuilder) newUpstream(key registry.ServiceKey, policy string, insts []registry.Instance) *upstream {
	bk := balancerKey{service: key, policy: policy}
	bal := b.nextBalancers[bk]
	if bal == nil {
		bal = b.balancers[bk]
	}
	if bal == nil {
		var err error
		if bal, err = balancer.New(policy); err != nil {
			// Validation rejects unknown policies; reaching this is a bug.
			panic(err)
		}
	}
	b.nextBalancers[bk] = bal
	if b.served != nil {
		b.served[key] = insts
	}
	hosts := make([]string, len(insts))
	for i, in := range insts {
		hosts[i] = in.HostPort()
	}
	up := &upstream{service: key, hosts: hosts, balancer: bal, next: b.proxy.transport,
		health: b.outliers.ForHosts(key, hosts), outliers: b.outliers, now: b.now}
	up.metrics, up.noInstance = b.proxy.metrics.Upstream(key, hosts)
	return up
}

// isEjected reports whether instance i of u is out of rotation at now.
func (u *upstream) isEjected(i int, now time.Time) bool {
	return u.health != nil && i < len(u.health) && u.health[i].Ejected(now)
}
