package gateway

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// Table is one immutable routing state: the matcher, the routes with the
// instances they had when the table was built, and the configuration errors
// of that moment. A new Table is built for every change and swapped in
// whole; a request loads one Table and uses it to the end, so it never sees
// half of an update.
type Table struct {
	router     http.Handler
	routes     []*Route
	aggregates []*Aggregate
	errors     []ConfigError
	loaded     bool
	builtAt    time.Time
	// services is what every upstream of the table (routes, aggregate
	// calls, forward auth) was built with, for metrics.
	services map[registry.ServiceKey][]registry.Instance
}

// Route is a route of one Table: its validated configuration, the service
// instances it proxies to, and the per-service balancer that outlives the
// table.
type Route struct {
	// Config is the validated route block.
	Config config.Route
	// Service is the health watch the instances come from.
	Service registry.ServiceKey
	// Instances is the snapshot the route sends traffic to, never mutated:
	// the passing instances, unless Panic says otherwise.
	Instances []registry.Instance
	// Panic is why Instances is not the passing set (panic threshold or an
	// empty list from Consul); empty in normal operation.
	Panic string

	up      *upstream
	handler http.Handler  // the route's policy chain ending in the proxy
	metrics *routeMetrics // nil when metrics are off
}

// ConfigError is a rejected route document, as listed by /routes.
type ConfigError struct {
	Key     string `json:"key"`
	Message string `json:"message"`
	// Serving is what the key serves meanwhile: "last_good" (an older
	// version, LastGoodIndex, accepted at LastGoodSince) or "nothing".
	Serving       string    `json:"serving,omitempty"`
	LastGoodIndex uint64    `json:"last_good_index,omitempty"`
	LastGoodSince time.Time `json:"last_good_since,omitzero"`
}

// Routes returns the table's routes sorted by name. The slice is shared:
// do not modify it.
func (t *Table) Routes() []*Route { return t.routes }

// Errors returns the configuration errors the table was built with.
func (t *Table) Errors() []ConfigError { return t.errors }

// Loaded reports whether the table came from Consul; only the placeholder
// table a gateway starts with is not loaded.
func (t *Table) Loaded() bool { return t.loaded }

// emptyTable answers 404 to everything; a Gateway serves it until the first
// real table arrives, so the table pointer is never nil.
func emptyTable() *Table {
	return &Table{router: http.HandlerFunc(notFound)}
}

// tableBuilder turns configuration and instance snapshots into Tables. It
// is used by one goroutine only (the controller), and owns the state that
// must survive swaps: balancers per service and policy.
type tableBuilder struct {
	proxy     *proxy
	balancers map[balancerKey]balancer.Balancer
	// nextBalancers collects the balancers the current build uses; at its
	// end it replaces balancers, dropping those of services gone.
	nextBalancers map[balancerKey]balancer.Balancer
	outliers      *outlierTracker
	now           func() time.Time
	// served collects, during one build, each service's instances as its
	// upstreams got them; the finished table keeps it.
	served map[registry.ServiceKey][]registry.Instance
	states policyStates // per-route policy state, see policies.go
	// panicHook, when set, is called with the name of each route and
	// aggregate as it is built, and with "" once per table outside any of
	// them, so tests can make a build panic.
	panicHook func(name string)
}

type balancerKey struct {
	service registry.ServiceKey
	policy  string
}

func newTableBuilder(p *proxy) *tableBuilder {
	return &tableBuilder{proxy: p, balancers: map[balancerKey]balancer.Balancer{},
		nextBalancers: map[balancerKey]balancer.Balancer{},
		outliers:      newOutlierTracker(p.outlierFailures, p.outlierEjection, p.logger.Named("outliers")),
		now:           p.now}
}

// build makes a Table from accepted routes. instances returns the current
// snapshot for a service; errs are listed as they are.
func (b *tableBuilder) build(routes []config.Route, instances func(registry.ServiceKey) []registry.Instance, errs []ConfigError) *Table {
	return b.buildAll(routes, nil, instances, nil, errs)
}

// buildAll is build with aggregate endpoints as well.
// panics gives, per service, why its instances are not simply the passing
// ones (see instanceSelector); nil means no service is in panic.
func (b *tableBuilder) buildAll(routes []config.Route, aggs []config.Aggregate, instances func(registry.ServiceKey) []registry.Instance, panics map[registry.ServiceKey]string, errs []ConfigError) *Table {
	t := &Table{loaded: true, builtAt: time.Now(), errors: errs}
	b.served = map[registry.ServiceKey][]registry.Instance{}
	for i := range routes {
		rc := routes[i]
		blame(rc.Pos, "route", rc.Name, func() {
			b.testPanic(rc.Name)
			key := registry.ServiceKey{Name: rc.Service, Tag: rc.Tag}
			insts := instances(key)
			rt := &Route{Config: rc, Service: key, Instances: insts, Panic: panics[key],
				up: b.newUpstream(key, rc.Balancer, insts), metrics: b.proxy.metrics.route(rc.Name)}
			b.applyPolicies(rt, b.authUpstream(rc.Policy.ForwardAuth, instances))
			t.routes = append(t.routes, rt)
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
	b.outliers.swap()
	// Balancers of services no route uses any more are dropped, so their
	// state does not pile up over months of config changes.
	b.balancers, b.nextBalancers = b.nextBalancers, make(map[balancerKey]balancer.Balancer, len(b.nextBalancers))
	t.services, b.served = b.served, nil
	return t
}

// router indexes the routes and aggregates in precedence order (see
// moreSpecific): the first entry that matches serves. An aggregate takes
// part as a route with a path template.
func (b *tableBuilder) router(routes []*Route, aggs []*Aggregate) http.Handler {
	ordered := make([]matchSpec, 0, len(routes)+len(aggs))
	for _, rt := range routes {
		ordered = append(ordered, matchSpec{match: rt.Config, h: rt.handler})
	}
	for _, ag := range aggs {
		c := &ag.Config
		ordered = append(ordered, matchSpec{match: config.Route{Name: c.Name, Pos: c.Pos, Host: c.Host, Path: c.Path, Methods: c.Methods}, h: ag.handler, needsVars: true})
	}
	sort.SliceStable(ordered, func(i, j int) bool { return moreSpecific(&ordered[i].match, &ordered[j].match) })
	return blameMatcher(ordered, http.HandlerFunc(notFound), http.HandlerFunc(methodNotAllowed))
}

// moreSpecific orders routes the way Traefik and Fabio users expect: a
// route bound to a host beats one that is not, an exact path template beats
// a prefix, a longer prefix beats a shorter one, and a route restricted to
// methods beats one that takes any method.
func moreSpecific(a, b *config.Route) bool {
	if (a.Host != "") != (b.Host != "") {
		return a.Host != ""
	}
	if (a.Path != "") != (b.Path != "") {
		return a.Path != ""
	}
	pa, pb := a.Path+a.PathPrefix, b.Path+b.PathPrefix
	if len(pa) != len(pb) {
		return len(pa) > len(pb)
	}
	if (len(a.Methods) > 0) != (len(b.Methods) > 0) {
		return len(a.Methods) > 0
	}
	return strings.Compare(a.Name, b.Name) < 0
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, msgNoRoute, "")
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusMethodNotAllowed, msgMethodNotAllowed, "")
}
