package gateway

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayco/gateway/registry"
)

// Recording: the per-route and per-instance children the request path
// uses, and the bookkeeping at each table swap.

// routeMetrics are one route's label children. The latency child is
// resolved at build time; the request counters on first use of each
// method and status class (a route would otherwise export 50 series,
// mostly zeros), after which the request path is an array index, an atomic
// load and an add. The totals feed the dashboard's rates without
// gathering the whole registry.
type routeMetrics struct {
	name     string
	vec      *prometheus.CounterVec
	requests [len(methods)][len(codeClasses)]atomic.Pointer[counterRef]
	latency  prometheus.Observer
	total    atomic.Uint64
	errors   atomic.Uint64 // 5xx answers
}

// counterRef boxes a Counter so it can sit behind an atomic.Pointer.
type counterRef struct{ prometheus.Counter }

// counter returns the child for method index i and class index j.
// Concurrent first uses may both resolve it; WithLabelValues returns the
// same child to both, so whichever pointer wins counts the same series.
func (rm *routeMetrics) counter(i, j int) prometheus.Counter {
	if c := rm.requests[i][j].Load(); c != nil {
		return c.Counter
	}
	c := &counterRef{rm.vec.WithLabelValues(rm.name, methods[i], codeClasses[j])}
	rm.requests[i][j].CompareAndSwap(nil, c)
	return c.Counter
}

// route returns the children of route name, creating them on first use.
// Called at table build time, not per request.
func (m *Metrics) route(name string) *routeMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if rm := m.routes[name]; rm != nil {
		return rm
	}
	rm := &routeMetrics{name: name, vec: m.requests, latency: m.latency.WithLabelValues(name)}
	m.routes[name] = rm
	return rm
}

// observe records one finished request; rm nil means no route matched.
func (m *Metrics) observe(rm *routeMetrics, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if rm == nil {
		rm = m.none
	}
	c := classIndex(status)
	rm.counter(methodIndex(method), c).Inc()
	rm.latency.Observe(d.Seconds())
	rm.total.Add(1)
	if c == 4 {
		rm.errors.Add(1)
	}
}

// Counts returns a route's cumulative requests and 5xx answers since the
// process started (0, 0 for an unknown route or nil Metrics).
func (m *Metrics) Counts(name string) (total, errors uint64) {
	if m == nil {
		return 0, 0
	}
	m.mu.Lock()
	rm := m.routes[name]
	m.mu.Unlock()
	if rm == nil {
		return 0, 0
	}
	return rm.total.Load(), rm.errors.Load()
}

// instanceMetrics are one upstream instance's counters.
type instanceMetrics struct {
	requests, errors prometheus.Counter
}

// upstream resolves the per-instance counters of a service's snapshot, in
// hosts order, plus the "none" pair for when no instance is healthy.
func (m *Metrics) upstream(svc registry.ServiceKey, hosts []string) (per []instanceMetrics, none instanceMetrics) {
	if m == nil {
		return nil, instanceMetrics{}
	}
	s := svc.String()
	per = make([]instanceMetrics, len(hosts))
	for i, h := range hosts {
		per[i] = instanceMetrics{m.upstreamRequests.WithLabelValues(s, h), m.upstreamErrors.WithLabelValues(s, h)}
	}
	return per, instanceMetrics{m.upstreamRequests.WithLabelValues(s, labelNone), m.upstreamErrors.WithLabelValues(s, labelNone)}
}

// published records a table swap: one reload, the rejected documents, and
// the healthy instances of every routed service. Series of routes,
// services and instances the table no longer has are deleted, so months
// of route edits and instance churn (new ports on every deploy) do not
// pile up series. A route or instance that comes back starts its counters
// from zero, which Prometheus' rate() reads as a counter reset.
func (m *Metrics) published(t *Table) {
	if m == nil || !t.loaded {
		return
	}
	m.reloads.Inc()
	m.rejected.Set(float64(len(t.errors)))
	services := make(map[string]bool, len(t.routes))
	routes := map[string]bool{labelNone: true}
	instances := map[[2]string]bool{}
	breakers := map[string]bool{}
	for _, ag := range t.aggregates {
		routes[ag.Config.Name] = true
		for _, c := range ag.Calls {
			if c.up.breaker != nil {
				name := ag.Config.Name + "/" + c.Config.Name
				breakers[name] = true
				m.breaker.WithLabelValues(name).Set(float64(breakerLevel(c.up.breaker.cb.State())))
			}
		}
	}
	// Every service the table calls (routes, aggregate calls, forward
	// auth) has a healthy gauge and upstream series; those of services
	// and instances gone are deleted below.
	for key, insts := range t.services {
		s := key.String()
		services[s] = true
		// Passing, not served: in panic mode the service also gets
		// failing instances, and the gauge must still show it is sick.
		m.healthy.WithLabelValues(s).Set(float64(len(registry.Passing(insts))))
		instances[[2]string{s, labelNone}] = true
		for _, in := range insts {
			instances[[2]string{s, in.HostPort()}] = true
		}
	}
	for _, rt := range t.routes {
		routes[rt.Config.Name] = true
		// State changes update the gauge as they happen; publishing sets
		// it for new breakers and prunes those gone (below).
		if st := rt.BreakerState(); st != "" {
			breakers[rt.Config.Name] = true
			m.breaker.WithLabelValues(rt.Config.Name).Set(float64(breakerLevel(st)))
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.breakers {
		if !breakers[name] {
			m.breaker.DeleteLabelValues(name)
		}
	}
	m.breakers = breakers
	for s := range m.services {
		if !services[s] {
			m.healthy.DeleteLabelValues(s)
		}
	}
	m.services = services
	for name := range m.routes {
		if !routes[name] {
			m.requests.DeletePartialMatch(prometheus.Labels{"route": name})
			m.latency.DeleteLabelValues(name)
			m.rateLimited.DeleteLabelValues(name)
			m.aggregateCalls.DeletePartialMatch(prometheus.Labels{"aggregate": name})
			delete(m.routes, name)
		}
	}
	for k := range m.instances {
		if !instances[k] {
			m.upstreamRequests.DeleteLabelValues(k[0], k[1])
			m.upstreamErrors.DeleteLabelValues(k[0], k[1])
		}
	}
	m.instances = instances
}
