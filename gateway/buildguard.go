package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/router"
	"github.com/gatewayco/gateway/registry"
)

// A panic while parsing a route document or building a table from it is a
// bug, but the document that triggers it is in Consul: left alone it would
// kill every replica, and again at every restart. So the controller contains
// it. config.Parse turns its own panics into an error of the document. A
// panic while building the route or aggregate of one document is blamed on
// that document, which is then rejected exactly like one that does not
// parse (listed in /routes, counted, logged once) and the table is built
// again without it. A panic that no document can be blamed for keeps the
// previous table serving.

// buildPanic is a panic raised while building one route or aggregate: the
// document at.Key is to blame.
type buildPanic struct {
	at         config.Pos // the route or aggregate block
	kind, name string
	cause      *config.PanicError
}

// blame runs build, turning a panic in it into a *buildPanic that names the
// route or aggregate at at. A *buildPanic from further in keeps its blame.
func blame(at config.Pos, kind, name string, build func()) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if bp, ok := v.(*buildPanic); ok {
			panic(bp)
		}
		panic(&buildPanic{at: at, kind: kind, name: name, cause: &config.PanicError{Value: v, Stack: debug.Stack()}})
	}()
	build()
}

// blameRouter is c.New (router.Cache) that, when indexing panics, indexes each
// entry alone to find the route or aggregate to blame. The search runs only
// after a panic, so a normal build pays nothing for it.
func blameRouter(c *router.Cache, specs []router.Spec) http.Handler {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		for _, s := range specs {
			kind := "route"
			if s.Vars {
				kind = "aggregate"
			}
			blame(s.Match.Pos, kind, s.Match.Name, func() { router.New([]router.Spec{s}) })
		}
		panic(v) // no entry panics alone: nobody to blame
	}()
	return c.New(specs)
}

// testPanic calls the test hook, if any.
func (b *tableBuilder) testPanic(name string) {
	if b.panicHook != nil {
		b.panicHook(name)
	}
}

// discard drops what a build that panicked half-collected, so the next
// build starts from the state of the last table that was built whole.
func (b *tableBuilder) discard() {
	b.states.discard()
	b.transports.discard()
	b.tlsErrors = nil
	b.outliers.Discard()
	b.loads.Discard()
	b.nextBalancers = make(map[balancerKey]balancer.Balancer, len(b.balancers))
	b.served = nil
}

// parse is config.Parse, with a panic it contained logged with its stack
// and counted.
func (c *Controller) parse(d registry.Document) (*config.Document, error) {
	doc, err := config.Parse(d.Key, d.Value, d.ModifyIndex)
	var pe *config.PanicError
	if errors.As(err, &pe) {
		c.gw.metrics.RecoveredPanic(metrics.PanicStageParse)
		c.logger.Error("panic while parsing a route document; the document is rejected", "key", d.Key, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	}
	return doc, err
}

// tryBuild runs build, returning the panic it raised, if any, instead of
// its table.
func (c *Controller) tryBuild(build func() *Table) (t *Table, failure any) {
	defer func() {
		if v := recover(); v != nil {
			t, failure = nil, v
			if _, ok := v.(*buildPanic); !ok {
				failure = &config.PanicError{Value: v, Stack: debug.Stack()}
			}
		}
	}()
	return build(), nil
}

// servedVersions is each key's last good version before a resolve, which
// a failed build restores (resolve already records the version it picks).
func (c *Controller) servedVersions() map[string]*config.Document {
	out := make(map[string]*config.Document, len(c.keys))
	for k, st := range c.keys {
		out[k] = st.lastGood
	}
	return out
}

// buildFailed handles a build that panicked with failure: it rejects the
// document to blame, if there is one, and reports whether to build again.
// before is every key's last good version before the failed build's
// resolve. Each call takes one version of one key out of the candidates,
// so repeated failures end.
func (c *Controller) buildFailed(failure any, before map[string]*config.Document) (again bool) {
	c.builder.discard()
	c.gw.metrics.RecoveredPanic(metrics.PanicStageBuild)
	bp, ok := failure.(*buildPanic)
	if ok && c.rejectPanicked(bp) {
		return true
	}
	st := (*keyState)(nil)
	if ok {
		st = c.keys[bp.at.Key]
	}
	if st == nil || st.lastGood == nil {
		pe, _ := failure.(*config.PanicError)
		if ok {
			pe = bp.cause
		}
		c.logger.Error("panic while building the routing table; the previous table keeps serving", "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
		return false
	}
	served := st.lastGood // resolve records the version it serves there
	c.logger.Error("panic while building the routing table; the document is rejected", "key", bp.at.Key,
		bp.kind, bp.name, "index", served.ModifyIndex, "panic", fmt.Sprint(bp.cause.Value), "stack", string(bp.cause.Stack))
	if served != st.current {
		// The last good version failed (once good, now panicking): the
		// key serves nothing; its own error, if any, stays.
		st.lastGood = nil
		return true
	}
	st.current = nil
	st.parseErr = config.Errors{{Pos: bp.at, Message: fmt.Sprintf("internal error while building %s %q (%v); the document is rejected, please report this",
		bp.kind, bp.name, bp.cause.Value), Cause: bp.cause}}
	st.lastGood = before[bp.at.Key]
	if st.lastGood != nil && st.lastGood.ModifyIndex == served.ModifyIndex {
		st.lastGood = nil
	}
	return true
}
