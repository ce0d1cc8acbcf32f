package gateway

import (
	"net/http"

	"github.com/gatewayco/gateway/gateway/aggregate"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/registry"
)

// Aggregate is an aggregate endpoint of one Table: the aggregate, and the
// chain the router serves it behind.
type Aggregate struct {
	*aggregate.Aggregate
	// handler is the aggregate behind its admission policies (rate limit,
	// auth).
	handler http.Handler
}

// Aggregates returns the table's aggregates sorted by name. The slice is
// shared: do not modify it.
func (t *Table) Aggregates() []*Aggregate { return t.aggregates }

// aggregate builds an aggregate and its calls. Each call gets an upstream
// with the call's own retries and breaker, balanced by callBalancer with
// the service's balancer for that policy, which routes to the same service
// share.
func (b *tableBuilder) aggregate(ac config.Aggregate, instances func(registry.ServiceKey) []registry.Instance, panics map[registry.ServiceKey]string) *Aggregate {
	calls := make([]*aggregate.Call, 0, len(ac.Calls))
	for i := range ac.Calls {
		cc := &ac.Calls[i]
		key := registry.ServiceKey{Name: cc.Service, Tag: cc.Tag}
		insts := servable(instances, key, ac.AllowWarning, panics)
		retry, breaker := b.protection(ac.Name+"/"+cc.Name, &cc.Policy, key)
		up := b.newUpstream(key, callBalancer(&ac, cc), insts, retry, breaker)
		call, err := aggregate.NewCall(*cc, key, insts, panics[key], up)
		if err != nil {
			// Validation parsed the same template; a programming error.
			panic(err)
		}
		calls = append(calls, call)
	}
	d := b.deps
	ag := aggregate.New(ac, calls, aggregate.Deps{Logger: d.logger.Named("aggregate"), Metrics: d.metrics, Trusted: d.env.trusted, Budget: d.aggBudget,
		Cache: d.aggCache, HedgeBudget: func(call string) *policy.RetryBudget {
			return b.states.hedges.get(stateKey{ac.Name + "/" + call, ""}, func() *policy.RetryBudget { return aggregate.NewHedgeBudget(d.env.now) })
		}})
	authUp := b.authUpstream(ac.Policy.ForwardAuth, aggregateBalancer(&ac), passingOnly(instances, panics))
	return &Aggregate{Aggregate: ag, handler: named(ac.Name, d.metrics.Route(ac.Name), b.admission(ac.Name, &ac.Policy, authUp, ag))}
}

// aggregateBalancer is the balancer policy of an aggregate's own upstream
// calls (forward_auth) and of every one of its calls: the aggregate's
// balancer attribute.
func aggregateBalancer(ac *config.Aggregate) string { return ac.Balancer }

// callBalancer is the balancer policy of one aggregate call. Call blocks
// have no balancer of their own, so it is the aggregate's; were they to get
// one, this is the one place to read it.
func callBalancer(ac *config.Aggregate, _ *config.Call) string { return aggregateBalancer(ac) }
