package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/aggregate"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/gateway/router"
	"github.com/gatewayco/gateway/gateway/tunnel"
	"github.com/gatewayco/gateway/gateway/upstream"
	"github.com/gatewayco/gateway/registry"
)

// deps is everything a table builder takes from its Gateway, settled once
// by New: what tables are built with, never the Gateway itself.
type deps struct {
	proxy     *upstream.Proxy   // the forwarding every route's handler ends in
	transport http.RoundTripper // shared by every upstream speaking HTTP/1.1
	// maxIdle and dial tune the h2c and https transports; see ProxyOptions.
	maxIdle int
	dial    time.Duration
	metrics *metrics.Metrics // nil when metrics are off
	env     policyEnv        // what route policies need; see policies.go
	logger  hclog.Logger     // the upstream side's, named "proxy"
	now     func() time.Time
	// Outlier ejection settings; see ProxyOptions.
	outlierFailures int
	outlierEjection time.Duration
	// aggBudget bounds what every aggregate buffers at once.
	aggBudget *aggregate.Budget
	// aggCache keeps the answers of every aggregate's cached calls.
	aggCache *aggregate.Cache
	// mirrorShared bounds the mirror copies of every route in flight at
	// once (upstream.MaxMirrorsInFlight).
	mirrorShared *upstream.MirrorSlots
	// tunnels keeps the WebSocket tunnels of every route.
	tunnels *tunnel.Tracker
	// mirrorSample samples requests for mirrors; nil: math/rand/v2.
	mirrorSample func() float64
	// mesh is the Connect side for connect routes; nil without -connect.
	// meshMetrics are its collectors, registered only with a mesh.
	mesh        Mesh
	meshMetrics *metrics.Connect
}

// tableBuilder turns configuration and instance snapshots into Tables. It
// is used by one goroutine only (the controller), and owns the state that
// must survive swaps: balancers per service and policy, the instances'
// passive health, and per-route policy state.
type tableBuilder struct {
	deps      *deps
	balancers map[balancerKey]balancer.Balancer
	// nextBalancers collects the balancers the current build uses; at its
	// end it replaces balancers, dropping those of services gone.
	nextBalancers map[balancerKey]balancer.Balancer
	outliers      *balancer.OutlierTracker
	loads         *balancer.LoadTracker // in-flight counts, for least_request
	// served collects, during one build, each service's instances as its
	// upstreams got them; the finished table keeps it.
	served map[registry.ServiceKey][]registry.Instance
	states policyStates // per-route policy state, see policies.go
	// transports are the routes' transports by protocol; see transports.go.
	transports *transports
	// tlsErrors collects, during one build, the routes whose TLS settings
	// are unusable; the finished table lists them with the document errors.
	tlsErrors []ConfigError
	// localDC names the local agent's datacenter; "" while unknown.
	localDC string
	// passing counts, for the build under way, the passing instances of
	// each watched key as Consul listed them; nil falls back to the
	// instances given (see routable).
	passing map[registry.ServiceKey]int
	// warning counts, likewise, the instances an allow_warning route
	// takes besides those: warning, not in maintenance, warning weight
	// above zero.
	warning map[registry.ServiceKey]int
	// servingDCs is each route's serving datacenter in the last table,
	// nextServing the current build's (see switched).
	servingDCs, nextServing map[string]string
	// matchCache keeps the routes' compiled templates from one table to
	// the next (see router.Cache).
	matchCache *router.Cache
	// panicHook, when set, is called with the name of each route and
	// aggregate as it is built, and with "" once per table outside any of
	// them, so tests can make a build panic.
	panicHook func(name string)
}

type balancerKey struct {
	service registry.ServiceKey
	policy  string
	// warning: the pool holds instances whose checks warn (an
	// allow_warning caller's), so its indexes differ from the passing
	// pool's and it keeps its own state.
	warning bool
}

func newTableBuilder(d *deps) *tableBuilder {
	b := &tableBuilder{deps: d, balancers: map[balancerKey]balancer.Balancer{},
		nextBalancers: map[balancerKey]balancer.Balancer{},
		transports:    newTransports(d.transport, d.maxIdle, d.dial),
		loads:         balancer.NewLoadTracker(),
		matchCache:    router.NewCache(),
		outliers:      balancer.NewOutlierTracker(d.outlierFailures, d.outlierEjection, d.logger.Named("outliers"))}
	b.transports.mesh, b.transports.meshMetrics, b.transports.logger = d.mesh, d.meshMetrics, d.logger.Named("connect")
	return b
}

// build makes a Table from accepted routes. instances returns the current
// snapshot for a service; errs are listed as they are.
func (b *tableBuilder) build(routes []config.Route, instances func(registry.ServiceKey) []registry.Instance, errs []ConfigError) *Table {
	return b.buildAll(routes, nil, instances, nil, errs)
}

// buildAll is build with aggregate endpoints as well.
// panics gives, per service, why its instances are not simply the passing
// ones (see balancer.Selector); nil means no service is in panic.
func (b *tableBuilder) buildAll(routes []config.Route, aggs []config.Aggregate, instances func(registry.ServiceKey) []registry.Instance, panics map[registry.ServiceKey]string, errs []ConfigError) *Table {
	t := &Table{loaded: true, errors: errs}
	b.served = map[registry.ServiceKey][]registry.Instance{}
	b.tlsErrors = nil
	b.nextServing = map[string]string{}
	for i := range routes {
		rc := routes[i]
		blame(rc.Pos, "route", rc.Name, func() {
			b.testPanic(rc.Name)
			t.routes = append(t.routes, b.route(rc, instances, panics))
		})
	}
	for i := range aggs {
		ac := &aggs[i]
		blame(ac.Pos, "aggregate", ac.Name, func() {
			b.testPanic(ac.Name)
			t.aggregates = append(t.aggregates, b.aggregate(*ac, instances, panics))
		})
	}
	sort.Slice(t.routes, func(i, j int) bool { return t.routes[i].Config.Name < t.routes[j].Config.Name })
	sort.Slice(t.aggregates, func(i, j int) bool { return t.aggregates[i].Config.Name < t.aggregates[j].Config.Name })
	t.router = b.router(t.routes, t.aggregates)
	b.testPanic("")
	// Nothing may panic past this point: a build that panics keeps the
	// state of the last table built (see discard).
	b.states.swap()
	b.transports.swap()
	b.outliers.Swap()
	b.loads.Swap()
	if b.tlsErrors != nil {
		t.errors = append(slices.Clip(t.errors), b.tlsErrors...)
	}
	// Balancers of services no route uses any more are dropped, so their
	// state does not pile up over months of config changes.
	b.balancers, b.nextBalancers = b.nextBalancers, make(map[balancerKey]balancer.Balancer, len(b.nextBalancers))
	t.services, b.served = b.served, nil
	b.servingDCs = b.nextServing
	return t
}

// route builds one route: its upstream with the route's protection, and
// its request chain (see applyPolicies).
func (b *tableBuilder) route(rc config.Route, instances func(registry.ServiceKey) []registry.Instance, panics map[registry.ServiceKey]string) *Route {
	if rc.Splits != nil {
		rt := b.splitRoute(rc, instances, panics)
		// Split destinations are read from the local datacenter.
		rt.Datacenter = b.dcName(registry.ServiceKey{})
		return rt
	}
	key, dcReason := b.serving(&rc, instances)
	b.switched(&rc, key, dcReason)
	insts := servable(instances, key, rc.AllowWarning, panics)
	retry, breaker := b.protection(rc.Name, &rc.Policy, key)
	tr, scheme, err := b.transports.forRoute(&rc)
	if err != nil {
		b.deps.logger.Error("upstream TLS settings unusable; the route answers 502", "route", rc.Name, "error", err)
		pos := rc.Pos
		if rc.UpstreamTLS != nil {
			pos = rc.UpstreamTLS.Pos
		}
		b.tlsErrors = append(b.tlsErrors, ConfigError{Key: rc.Pos.Key,
			Message: fmt.Sprintf("%s: route %q answers 502 until fixed: %v", pos, rc.Name, err)})
	}
	rt := &Route{Config: rc, Service: key, Instances: insts, Panic: panics[key],
		Datacenter: b.dcName(key), DatacenterReason: dcReason,
		up: b.newUpstreamOver(key, rc.Balancer, insts, retry, breaker, tr, scheme), metrics: b.deps.metrics.Route(rc.Name)}
	rt.up = b.traffic(&rc, rt.up, passingOnly(instances, panics), tr, scheme)
	authUp := b.authUpstream(rc.Policy.ForwardAuth, rc.Balancer, passingOnly(instances, panics))
	// https_only answers before admission: a plain-HTTP client is sent
	// to HTTPS rather than asked for credentials it should not send.
	https := policy.HTTPS{Only: rc.HTTPSOnly, HSTSMaxAge: rc.HSTSMaxAge, Port: b.deps.env.httpsPort, Trusted: b.deps.env.trusted}
	rt.handler = named(rc.Name, rt.metrics, https.Middleware(b.admission(rc.Name, &rc.Policy, authUp, connectGate(&rt.Config, b.deps.mesh, b.deps.meshMetrics, b.deps.proxy.Handler(&rt.Config, rt.up)))))
	return rt
}

// router indexes the routes and aggregates; the router orders them by
// precedence, and the first entry that matches serves. An aggregate takes
// part as a route with a path template.
func (b *tableBuilder) router(routes []*Route, aggs []*Aggregate) http.Handler {
	specs := make([]router.Spec, 0, len(routes)+len(aggs))
	for _, rt := range routes {
		specs = append(specs, router.Spec{Match: rt.Config, Handler: rt.handler})
	}
	for _, ag := range aggs {
		c := &ag.Config
		specs = append(specs, router.Spec{Match: config.Route{Name: c.Name, Pos: c.Pos, Host: c.Host, Path: c.Path, Methods: c.Methods}, Handler: ag.handler, Vars: true})
	}
	return blameRouter(b.matchCache, specs)
}

// newUpstream builds the upstream of one service for one table. The
// balancer (one per service and balancer policy) and the instances'
// passive health come from the builder, which keeps them across swaps, so
// every caller of a service with the same policy (routes, forward auth,
// aggregate calls) shares them.
func (b *tableBuilder) newUpstream(key registry.ServiceKey, policy string, insts []registry.Instance, retry upstream.Retry, breaker *policy.RouteBreaker) *upstream.Upstream {
	return b.newUpstreamOver(key, policy, insts, retry, breaker, b.deps.transport, "")
}

// newUpstreamOver is newUpstream sending over tr with URL scheme (a
// route's protocol; see transports.forRoute).
func (b *tableBuilder) newUpstreamOver(key registry.ServiceKey, policy string, insts []registry.Instance, retry upstream.Retry, breaker *policy.RouteBreaker, tr http.RoundTripper, scheme string) *upstream.Upstream {
	if b.served != nil {
		b.served[key] = insts
	}
	return upstream.New(upstream.Config{Service: key, Instances: insts, Balancer: b.balancer(key, policy, hasWarning(insts)),
		Transport: tr, Scheme: scheme, Retry: retry, Breaker: breaker, Outliers: b.outliers, Loads: b.loads,
		Metrics: b.deps.metrics, Now: b.deps.now})
}

// servable is the instances of key a caller gets from the chosen ones:
// those whose checks warn only with allowWarning (see
// balancer.Servable).
func servable(instances func(registry.ServiceKey) []registry.Instance, key registry.ServiceKey, allowWarning bool, panics map[registry.ServiceKey]string) []registry.Instance {
	return balancer.Servable(instances(key), allowWarning, panics[key] != "")
}

// passingOnly is instances without the warning ones, for callers that
// have no allow_warning of their own (forward_auth).
func passingOnly(instances func(registry.ServiceKey) []registry.Instance, panics map[registry.ServiceKey]string) func(registry.ServiceKey) []registry.Instance {
	return func(k registry.ServiceKey) []registry.Instance { return servable(instances, k, false, panics) }
}

// hasWarning reports whether insts holds an instance whose checks warn.
func hasWarning(insts []registry.Instance) bool {
	return slices.ContainsFunc(insts, func(in registry.Instance) bool { return in.Warning })
}

// balancer is the service's balancer for policy, kept across swaps. The
// empty policy is round robin, as in balancer.New, and shares its state.
func (b *tableBuilder) balancer(key registry.ServiceKey, policy string, warning bool) balancer.Balancer {
	if policy == "" {
		policy = balancer.RoundRobin
	}
	bk := balancerKey{service: key, policy: policy, warning: warning}
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
	return bal
}

// authServiceKey is the health watch of a forward_auth service.
func authServiceKey(fa *config.ForwardAuth) registry.ServiceKey {
	return registry.ServiceKey{Name: fa.Service}
}

// authUpstream is the forward_auth service's upstream, balanced by policy
// (the balancer of the route or aggregate that asks) with a balancer
// shared like a route's; nil without forward_auth.
func (b *tableBuilder) authUpstream(fa *config.ForwardAuth, policy string, instances func(registry.ServiceKey) []registry.Instance) *upstream.Upstream {
	if fa == nil {
		return nil
	}
	key := authServiceKey(fa)
	return b.newUpstream(key, policy, instances(key), upstream.Retry{}, nil)
}
