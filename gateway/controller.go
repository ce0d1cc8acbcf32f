package gateway

import (
	"context"
	"errors"
	"sort"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// Documents is the route-document side of the registry: the latest KV
// snapshot, ok=false until Consul answered once.
type Documents interface {
	Documents() (docs []registry.Document, ok bool)
}

// Instances is the service side of the registry. Ensure makes the watched
// set equal to keys and returns once new watches have answered, so a new
// route is published with its instances already known.
type Instances interface {
	Ensure(ctx context.Context, keys []registry.ServiceKey)
	Instances(key registry.ServiceKey) (insts []registry.Instance, ok bool)
}

// Controller is the single writer of a Gateway's table: on every change
// notice it reparses what changed, resolves conflicts between documents,
// aligns the health watches with the routes and publishes a new table.
// Running on one goroutine keeps builds ordered and lock-free.
type Controller struct {
	gw      *Gateway
	builder *tableBuilder
	logger  hclog.Logger
	wake    chan struct{}
	keys    map[string]*keyState
	pick    *balancer.Selector
	// lastGood shares each key's last good version with other replicas
	// (controller_lastgood.go).
	lastGood *lastGoods
	// unwatched is how many failover watches MaxFailoverWatches left out
	// at the last publish, so the warning is logged on change only.
	unwatched int
	// published is called after each publish; nil means nobody listens.
	published func(*Table)
	// tags adds routes from services' Fabio tags; nil when off
	// (controller_tags.go).
	tags *tagRoutes
	// announced is the served version of each key at the last publish,
	// for the "routing table changed" log line (controller_diff.go).
	announced map[string]uint64
}

// keyState is what the controller remembers of one KV key.
type keyState struct {
	index    uint64           // ModifyIndex of the version parsed last
	current  *config.Document // that version, nil when it failed to parse
	parseErr error            // why it failed
	lastGood *config.Document // the version served most recently, nil if none
	logged   string           // the last error text logged, so it is logged once
}

// NewController returns a controller publishing to g. It does nothing
// until Run.
func NewController(g *Gateway, logger hclog.Logger) *Controller {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Controller{
		gw:       g,
		builder:  newTableBuilder(g.deps),
		logger:   logger,
		wake:     make(chan struct{}, 1),
		keys:     map[string]*keyState{},
		pick:     balancer.NewSelector(balancer.DefaultPanicThreshold, logger.Named("instances")),
		lastGood: newLastGoods(g.now, logger.Named("lastgood")),
	}
}

// SetPanicThreshold sets the share of passing instances below which a
// service routes to all its known-good instances (see balancer.Selector);
// zero, the default, turns panic mode off. Call it before Run.
func (c *Controller) SetPanicThreshold(threshold float64) { c.pick.SetThreshold(threshold) }

// SetLocalDatacenter names the local agent's datacenter for /routes,
// metrics and logs; until it is called the name is LocalDatacenter. Call
// it before Run.
func (c *Controller) SetLocalDatacenter(name string) { c.builder.localDC = name }

// Notify tells the controller that a source changed. It never blocks:
// notices that arrive while a rebuild is pending fold into that rebuild,
// so a burst of health changes costs one table build, not one each.
func (c *Controller) Notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run rebuilds on every notice until ctx is done. It builds once at start
// in case the sources answered before Run.
func (c *Controller) Run(ctx context.Context, docs Documents, insts Instances) {
	c.Notify()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
			c.reload(ctx, docs, insts)
		}
	}
}

func (c *Controller) reload(ctx context.Context, docs Documents, insts Instances) {
	snapshot, ok := docs.Documents()
	if !ok {
		// Without a first KV answer we know nothing; keep what we have
		// (the empty table at start) and wait.
		return
	}
	if !c.lastGood.ready() {
		return
	}
	c.sync(snapshot)
	c.lastGood.sync(snapshot, c.keys)
	// A build that panics on a document rejects it (buildguard.go) and
	// asks for another without it; each asks with one version fewer.
	for again := true; again; {
		again = c.publish(ctx, insts)
	}
}

// publish resolves, builds and publishes a table from the keys' documents.
// It reports whether to build again, after a build panicked.
func (c *Controller) publish(ctx context.Context, insts Instances) (again bool) {
	before := c.servedVersions()
	// Versions resolve accepts are shared with other replicas only once a
	// table built from them is published: one whose build panics must
	// never become the fleet's last good version.
	defer c.lastGood.discard()
	routes, aggs, errs := c.resolve()
	routes, errs = c.addTagRoutes(routes, aggs, errs)
	keys := serviceKeys(routes, aggs)
	c.logUnwatchedFailovers(routes, keys)
	insts.Ensure(ctx, keys)
	if ctx.Err() != nil {
		return false
	}
	// Choose each service's instances once per build, however many routes
	// share it, so panic decisions and their logs happen once.
	chosen := make(map[registry.ServiceKey][]registry.Instance, len(keys))
	panics := make(map[registry.ServiceKey]string)
	used := make(map[registry.ServiceKey]bool, len(keys))
	passing := make(map[registry.ServiceKey]int, len(keys))
	warning := make(map[registry.ServiceKey]int, len(keys))
	for _, k := range keys {
		in, _ := insts.Instances(k)
		chosen[k], panics[k] = c.pick.Choose(k, in)
		used[k] = true
		passing[k] = len(registry.Passing(in))
		warning[k] = countWarningServable(in)
	}
	c.builder.passing, c.builder.warning = passing, warning
	c.pick.Forget(used)
	t, failure := c.tryBuild(func() *Table {
		return c.builder.buildAll(routes, aggs, func(k registry.ServiceKey) []registry.Instance { return chosen[k] }, panics, errs)
	})
	if failure != nil {
		return c.buildFailed(failure, before)
	}
	prev := c.gw.Table()
	c.gw.Publish(t)
	c.logTableChange(prev, t, c.servedKeys(t))
	c.lastGood.commit()
	if c.published != nil {
		c.published(t)
	}
	return false
}

// sync reparses the keys whose ModifyIndex moved and forgets deleted ones.
func (c *Controller) sync(snapshot []registry.Document) {
	seen := make(map[string]bool, len(snapshot))
	for _, d := range snapshot {
		seen[d.Key] = true
		st := c.keys[d.Key]
		if st == nil {
			st = &keyState{}
			c.keys[d.Key] = st
		}
		if st.index == d.ModifyIndex && (st.current != nil || st.parseErr != nil) {
			continue
		}
		st.index = d.ModifyIndex
		st.current, st.parseErr = c.parse(d)
	}
	for k := range c.keys {
		if !seen[k] {
			c.logger.Info("route document removed", "key", k)
			delete(c.keys, k)
		}
	}
}

// resolve picks the version of each key to serve and collects the errors
// to show in /routes, logging each new error once.
func (c *Controller) resolve() ([]config.Route, []config.Aggregate, []ConfigError) {
	cands := make([]config.Candidate, 0, len(c.keys))
	for k, st := range c.keys {
		cands = append(cands, config.Candidate{Key: k, Current: st.current, LastGood: c.lastGood.fallback(k, st)})
	}
	accepted, conflicts := config.Resolve(cands)

	names := make([]string, 0, len(c.keys))
	for k := range c.keys {
		names = append(names, k)
	}
	sort.Strings(names)
	var routes []config.Route
	// Sized once: a config.Route is large, and growing the slice by
	// appends copied every route several times per build.
	if n := acceptedRoutes(accepted); n > 0 {
		routes = make([]config.Route, 0, n)
	}
	var aggs []config.Aggregate
	var errs []ConfigError
	for _, k := range names {
		st := c.keys[k]
		if d := accepted[k]; d != nil {
			st.lastGood = d
			c.lastGood.accepted(k, d)
			routes = append(routes, d.Routes...)
			aggs = append(aggs, d.Aggregates...)
		}
		var problem error
		switch {
		case st.parseErr != nil:
			problem = st.parseErr
		case len(conflicts[k]) > 0:
			problem = conflicts[k]
		}
		if problem == nil {
			st.logged = ""
			continue
		}
		msg := problem.Error()
		errs = append(errs, c.lastGood.configError(k, accepted[k], msg))
		if msg != st.logged {
			st.logged = msg
			serving := "nothing"
			if st.lastGood != nil && accepted[k] != nil {
				serving = "last good version"
			}
			args := []any{"key", k, "serving", serving, "error", msg, "invalid", errors.Is(problem, config.ErrInvalid)}
			if pos, ok := problemPos(problem); ok {
				args = append(args, "line", pos.Line, "column", pos.Column)
			}
			c.logger.Error("route document rejected", args...)
		}
	}
	return routes, aggs, errs
}

// acceptedRoutes counts the routes of the accepted documents.
func acceptedRoutes(accepted map[string]*config.Document) int {
	n := 0
	for _, d := range accepted {
		if d != nil {
			n += len(d.Routes)
		}
	}
	return n
}

// serviceKeys lists the distinct health watches the routes and every
// aggregate call need.
func serviceKeys(routes []config.Route, aggs []config.Aggregate) []registry.ServiceKey {
	set := make(map[registry.ServiceKey]bool, len(routes))
	var keys []registry.ServiceKey
	add := func(k registry.ServiceKey) {
		if !set[k] {
			set[k] = true
			keys = append(keys, k)
		}
	}
	for _, r := range routes {
		if r.Splits == nil {
			add(routeKeys(&r)[0])
		}
		for _, s := range r.Splits {
			add(splitKey(&s))
		}
		// A forward_auth service is called like a route's: watch it too.
		if fa := r.Policy.ForwardAuth; fa != nil {
			add(authServiceKey(fa))
		}
		for _, m := range r.Mirrors {
			add(mirrorServiceKey(&m))
		}
	}
	for _, a := range aggs {
		if fa := a.Policy.ForwardAuth; fa != nil {
			add(authServiceKey(fa))
		}
		for _, c := range a.Calls {
			add(registry.ServiceKey{Name: c.Service, Tag: c.Tag})
		}
	}
	for _, k := range failoverKeys(routes, set) {
		add(k)
	}
	return keys
}
