package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayco/gateway/registry"
)

// Recording: the per-route and per-instance children the request path
// uses, and the bookkeeping at each table swap.

// Route is one route's label children, resolved when a table is built so
// the request path never looks a label up by name. The latency child is
// resolved at once; the request counters on first use of each method and
// status code (see codes.go; a route would otherwise export hundreds of
// series, mostly zeros), after which the request path is two array
// indexes, two atomic loads and an add. The totals feed the dashboard's rates without gathering the whole
// registry. A nil *Route stands for "no route matched".
type Route struct {
	name     string
	vec      *prometheus.CounterVec
	requests [len(methods)]atomic.Pointer[codeRow]
	latency  prometheus.Observer
	total    atomic.Uint64
	errors   atomic.Uint64 // 5xx answers
	// series is the route's ring for the dashboard's charts, nil until
	// its first request; noSeries is set when MaxSeriesRoutes others had
	// one then (series.go).
	series   atomic.Pointer[series]
	noSeries atomic.Bool
	// gone is set, under Metrics.mu, when the route leaves the table;
	// requests still in flight on it then take no ring.
	gone bool
	// notFound and badMethod count 404 and 405 answers; the dashboard
	// shows them for unmatched requests.
	notFound, badMethod atomic.Uint64
}

// codeRow is one method's counters, by index in codeLabels.
type codeRow []atomic.Pointer[counterRef]

// counterRef boxes a Counter so it can sit behind an atomic.Pointer.
type counterRef struct{ prometheus.Counter }

// counter returns the child for method index i and code label index j.
// Concurrent first uses may both resolve it; WithLabelValues returns the
// same child to both, so whichever pointer wins counts the same series.
func (rm *Route) counter(i, j int) prometheus.Counter {
	row := rm.requests[i].Load()
	if row == nil {
		fresh := make(codeRow, len(codeLabels))
		rm.requests[i].CompareAndSwap(nil, &fresh)
		row = rm.requests[i].Load()
	}
	if c := (*row)[j].Load(); c != nil {
		return c.Counter
	}
	c := &counterRef{rm.vec.WithLabelValues(rm.name, methods[i], codeLabels[j])}
	(*row)[j].CompareAndSwap(nil, c)
	return c.Counter
}

// Route returns the children of route name, creating them on first use;
// nil when m is nil. Called at table build time, not per request.
func (m *Metrics) Route(name string) *Route {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if rm := m.routes[name]; rm != nil {
		return rm
	}
	rm := &Route{name: name, vec: m.requests, latency: m.latency.WithLabelValues(name)}
	m.routes[name] = rm
	return rm
}

// Observe records one finished request; rm nil means no route matched.
// It reads the clock for the series; ObserveAt saves that read.
func (m *Metrics) Observe(rm *Route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.ObserveAt(rm, method, status, d, m.now())
}

// ObserveAt is Observe for a request that finished at end, which the
// caller has read already: on a machine without a fast clock a read costs
// more than the rest of the recording. end must come from the same clock
// as Options.Now, which Series reads.
func (m *Metrics) ObserveAt(rm *Route, method string, status int, d time.Duration, end time.Time) {
	if m == nil {
		return
	}
	if rm == nil {
		rm = m.none
	}
	rm.counter(methodIndex(method), codeLabelIndex(status)).Inc()
	rm.latency.Observe(d.Seconds())
	rm.total.Add(1)
	switch {
	case status >= 500:
		rm.errors.Add(1)
	case status == 404:
		rm.notFound.Add(1)
	case status == 405:
		rm.badMethod.Add(1)
	}
	m.recordSeries(rm, status, d, end)
}

// Unmatched returns the 404 and 405 answers to requests no route matched
// since the process started (0, 0 for nil Metrics).
func (m *Metrics) Unmatched() (notFound, methodNotAllowed uint64) {
	if m == nil {
		return 0, 0
	}
	return m.none.notFound.Load(), m.none.badMethod.Load()
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

// Instance is one upstream instance's counters. The zero value (metrics
// off) must not be recorded into.
type Instance struct {
	requests, errors prometheus.Counter
}

// Record counts one exchange with the instance; failed counts it as an
// upstream error too, which the caller decides (a client's fault is not
// the instance's).
func (c Instance) Record(failed bool) {
	c.requests.Inc()
	if failed {
		c.errors.Inc()
	}
}

// Upstream resolves the per-instance counters of a service's snapshot, in
// hosts order, plus the "none" pair for when no instance is healthy; nil
// and the zero Instance when m is nil.
func (m *Metrics) Upstream(svc registry.ServiceKey, hosts []string) (per []Instance, none Instance) {
	if m == nil {
		return nil, Instance{}
	}
	s := svc.String()
	per = make([]Instance, len(hosts))
	for i, h := range hosts {
		per[i] = Instance{m.upstreamRequests.WithLabelValues(s, h), m.upstreamErrors.WithLabelValues(s, h)}
	}
	return per, Instance{m.upstreamRequests.WithLabelValues(s, labelNone), m.upstreamErrors.WithLabelValues(s, labelNone)}
}

// TableView is what metrics need of a published table, built by the
// gateway at each publish so this package never reads a table itself.
type TableView struct {
	// Rejected is the number of route documents the table was built
	// without (parse, validation or conflict errors).
	Rejected int
	// Services is every service the table calls (routes, aggregate calls,
	// forward auth) with the instances its upstreams were built with.
	Services map[registry.ServiceKey][]registry.Instance
	// Routes names every route and aggregate.
	Routes []string
	// Breakers gives each circuit breaker's level (0 closed, 1 half-open,
	// 2 open) by the name its gauge carries: the route, or
	// "aggregate/call".
	Breakers map[string]int
	// Datacenters gives, for every route, the Consul datacenter it serves
	// from now.
	Datacenters map[string]string
	// Splits names the destinations ("service:tag") of each route with
	// splits.
	Splits map[string][]string
}

// Published records a table swap: one reload, the rejected documents, and
// the healthy instances of every service. Series of routes, services and
// instances the table no longer has are deleted, so months of route edits
// and instance churn (new ports on every deploy) do not pile up series. A
// route or instance that comes back starts its counters from zero, which
// Prometheus' rate() reads as a counter reset.
func (m *Metrics) Published(v TableView) {
	if m == nil {
		return
	}
	m.reloads.Inc()
	m.rejected.Set(float64(v.Rejected))
	services := make(map[string]bool, len(v.Services))
	routes := make(map[string]bool, len(v.Routes)+1)
	routes[labelNone] = true
	instances := map[[2]string]bool{}
	breakers := make(map[string]bool, len(v.Breakers))
	for key, insts := range v.Services {
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
	for _, name := range v.Routes {
		routes[name] = true
	}
	// State changes update the gauge as they happen; publishing sets it
	// for new breakers and prunes those gone (below).
	for name, level := range v.Breakers {
		breakers[name] = true
		m.breaker.WithLabelValues(name).Set(float64(level))
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
			m.forgetMirrors(name)
			rm := m.routes[name]
			if rm.series.Load() != nil {
				m.seriesRoutes.Add(-1)
			}
			rm.gone = true
			delete(m.routes, name)
		}
	}
	// Rings freed by deleted routes may go to routes that found none.
	for _, rm := range m.routes {
		rm.noSeries.Store(false)
	}
	for k := range m.instances {
		if !instances[k] {
			m.upstreamRequests.DeleteLabelValues(k[0], k[1])
			m.upstreamErrors.DeleteLabelValues(k[0], k[1])
		}
	}
	m.instances = instances
	m.servingDC.publish(v.Datacenters)
	m.pruneSplits(v.Splits)
}
