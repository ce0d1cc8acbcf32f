package metrics

import "github.com/prometheus/client_golang/prometheus"

// Results of an aggregate call's cache lookup, the result label of
// gateway_aggregate_cache_total.
const (
	CacheHit    = "hit"    // answered from the cache, no upstream call
	CacheMiss   = "miss"   // nothing fresh cached: the upstream was called
	CacheBypass = "bypass" // the call carried credentials, so no shared cache applies
)

// CallCounters are one aggregate call's counters, resolved once per table
// so the request path does no label lookup. Every field is nil when
// metrics are off; Inc on them is guarded by the callers.
type CallCounters struct {
	// Cache counts lookups by CacheHit, CacheMiss and CacheBypass.
	CacheHit, CacheMiss, CacheBypass prometheus.Counter
	// HedgeSent counts second copies sent; HedgeWon those whose answer
	// was taken.
	HedgeSent, HedgeWon prometheus.Counter
}

// AggregateCallCounters returns the cache and hedging counters of one
// aggregate call, registering their families on first use; the zero
// value when m is nil.
func (m *Metrics) AggregateCallCounters(aggregate, call string) CallCounters {
	if m == nil {
		return CallCounters{}
	}
	cache := register(m.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_aggregate_cache_total",
		Help: "Aggregate call cache lookups by aggregate, call and result (hit, miss, bypass).",
	}, []string{"aggregate", "call", "result"})).(*prometheus.CounterVec)
	hedges := register(m.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_aggregate_hedges_total",
		Help: "Hedged copies of slow aggregate calls by aggregate, call and outcome (sent; won: the hedge's answer was taken).",
	}, []string{"aggregate", "call", "outcome"})).(*prometheus.CounterVec)
	return CallCounters{
		CacheHit:    cache.WithLabelValues(aggregate, call, CacheHit),
		CacheMiss:   cache.WithLabelValues(aggregate, call, CacheMiss),
		CacheBypass: cache.WithLabelValues(aggregate, call, CacheBypass),
		HedgeSent:   hedges.WithLabelValues(aggregate, call, "sent"),
		HedgeWon:    hedges.WithLabelValues(aggregate, call, "won"),
	}
}

// Inc adds one to c, when metrics are on.
func Inc(c prometheus.Counter) {
	if c != nil {
		c.Inc()
	}
}
