// Package metrics holds the gateway's Prometheus collectors and the
// recording the request path does into them. It knows nothing of tables or
// routes beyond their names: the gateway hands it a plain TableView at
// every publish, so what is exported never depends on how a table is
// built.
package metrics

import (
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the gateway's Prometheus collectors in a private registry,
// so two gateways in one process (tests) never share counters. A nil
// *Metrics is valid everywhere and records nothing.
//
// Cardinality is bounded by configuration, never by traffic: route and
// service labels come from route documents, instance labels from Consul,
// methods are folded into a fixed set and statuses into a fixed set of
// codes and classes (codes.go). Raw paths
// and client addresses are never labels.
type Metrics struct {
	reg *prometheus.Registry

	requests         *prometheus.CounterVec   // route, method, code
	latency          *prometheus.HistogramVec // route
	upstreamRequests *prometheus.CounterVec   // service, instance
	upstreamErrors   *prometheus.CounterVec   // service, instance
	healthy          *prometheus.GaugeVec     // service
	reloads          prometheus.Counter
	rejected         prometheus.Gauge
	watchErrors      prometheus.Counter
	panics           *prometheus.CounterVec // stage

	// Policy and aggregate collectors: state changes and refusals record
	// into them as they happen; a published table sets and prunes them.
	breaker        *prometheus.GaugeVec   // route, or aggregate/call
	rateLimited    *prometheus.CounterVec // route
	aggregateCalls *prometheus.CounterVec // aggregate, call, kind
	servingDC      *servingDatacenter
	// mirrorRequests and mirrorDropped are registered by the first
	// Mirror call; nil until then. See mirror.go.
	mirrorRequests, mirrorDropped *prometheus.CounterVec

	mu        sync.Mutex
	routes    map[string]*Route  // by route name; survives table swaps
	services  map[string]bool    // services with a healthy gauge set
	instances map[[2]string]bool // service, instance with upstream series
	breakers  map[string]bool    // names with a breaker gauge set
	splits    map[[2]string]bool // route, destination with split series; see split.go
	none      *Route             // requests no route matched

	// now is the clock of the sync age and of the series' buckets.
	now func() time.Time
	// seriesRoutes counts the routes with a series ring (series.go).
	seriesRoutes atomic.Int64
}

// Options configure New. The zero value is usable.
type Options struct {
	// LastSync returns when Consul last answered; nil or a zero time means
	// the sync-age gauge reports -1 ("never").
	LastSync func() time.Time
	// Now is the clock for the sync age and the dashboard's series; nil
	// means time.Now.
	Now func() time.Time
}

// Label values used when there is no route or no instance, so unmatched
// traffic is visible without inventing a label per path.
const (
	labelNone = "none"
)

// methods is the fixed method label set; anything else is "OTHER".
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "OTHER"}

// codeClasses are the status label values, indexed by status/100 - 1.
var codeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// methodIndex maps a request method onto methods without allocating.
func methodIndex(m string) int {
	for i, v := range methods[:len(methods)-1] {
		if m == v {
			return i
		}
	}
	return len(methods) - 1
}

func classIndex(status int) int {
	return min(max(status/100, 1), 5) - 1
}

// New registers every collector in a fresh registry.
func New(opts Options) *Metrics {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	m := &Metrics{
		reg:    prometheus.NewRegistry(),
		now:    now,
		routes: map[string]*Route{}, services: map[string]bool{}, instances: map[[2]string]bool{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_requests_total",
			Help: "Requests served, by route (\"none\" when no route matched), method and status code (a fixed set of codes; any other status as its class, e.g. 4xx).",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_request_duration_seconds",
			Help:    "Time from receiving a request to finishing its answer, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		upstreamRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_upstream_requests_total",
			Help: "Requests sent to upstream instances, by service and instance (host:port; \"none\" when no instance was healthy).",
		}, []string{"service", "instance"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_upstream_errors_total",
			Help: "Upstream exchanges that failed without an HTTP answer (refused, reset, timed out, no healthy instance); a client's fault (it went away, its body broke) is not counted.",
		}, []string{"service", "instance"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_service_healthy_instances",
			Help: "Passing instances per routed service in the table serving now.",
		}, []string{"service"}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_config_reloads_total",
			Help: "Routing tables published (every route or instance change).",
		}),
		rejected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateway_config_rejected_documents",
			Help: "Route documents currently rejected (parse, validation or conflict errors).",
		}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_config_panics_total",
			Help: "Panics contained while parsing a route document or building a table (stage parse or build); each is a bug, and rejected the document or kept the previous table.",
		}, []string{"stage"}),
		watchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_consul_watch_errors_total",
			Help: "Failed Consul queries of the route, last-good state and health watches.",
		}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_circuit_breaker_state",
			Help: "Circuit breaker state per route: 0 closed, 1 half-open, 2 open.",
		}, []string{"route"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_rate_limited_requests_total",
			Help: "Requests rejected by a route's rate limit.",
		}, []string{"route"}),
		aggregateCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_aggregate_calls_total",
			Help: "Outcomes of aggregate sub-calls by aggregate, call and kind (ok, business, system, timeout, memory).",
		}, []string{"aggregate", "call", "kind"}),
	}
	syncAge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gateway_consul_last_sync_age_seconds",
		Help: "Seconds since Consul last answered a watch; -1 before the first answer.",
	}, func() float64 {
		if opts.LastSync == nil {
			return -1
		}
		t := opts.LastSync()
		if t.IsZero() {
			return -1
		}
		return now().Sub(t).Seconds()
	})
	m.reg.MustRegister(m.requests, m.latency, m.upstreamRequests, m.upstreamErrors, m.healthy,
		m.reloads, m.rejected, m.panics, m.watchErrors, m.breaker, m.rateLimited, m.aggregateCalls, syncAge)
	m.servingDC = newServingDatacenter(m.reg)
	m.none = m.Route(labelNone)
	for _, stage := range []string{PanicStageParse, PanicStageBuild} {
		m.panics.WithLabelValues(stage) // shown at zero, so alerts need no absent()
	}
	return m
}

// Stages of gateway_config_panics_total.
const (
	PanicStageParse = "parse"
	PanicStageBuild = "build"
)

// RecoveredPanic counts a panic contained at stage (PanicStageParse or
// PanicStageBuild).
func (m *Metrics) RecoveredPanic(stage string) {
	if m != nil {
		m.panics.WithLabelValues(stage).Inc()
	}
}

// Handler serves the registry in the Prometheus exposition format; m must
// not be nil (admin mounts /metrics only when metrics are on).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the private registry, for tests that gather directly; m
// must not be nil.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// WatchError counts one failed Consul query; registry.Options.OnError calls it.
func (m *Metrics) WatchError() {
	if m != nil {
		m.watchErrors.Inc()
	}
}

// BreakerState records the circuit breaker state of a route, or of an
// aggregate call named "aggregate/call", as its level (0 closed, 1
// half-open, 2 open). Breakers call it on every change, so the gauge
// moves between table swaps.
func (m *Metrics) BreakerState(route string, level int) {
	if m != nil {
		m.breaker.WithLabelValues(route).Set(float64(level))
	}
}

// RateLimited counts one request refused by route's rate limit.
func (m *Metrics) RateLimited(route string) {
	if m != nil {
		m.rateLimited.WithLabelValues(route).Inc()
	}
}

// AggregateCall counts one sub-call outcome of an aggregate; kind is one
// of the small fixed set the help text lists, so the series stay bounded.
func (m *Metrics) AggregateCall(aggregate, call, kind string) {
	if m != nil {
		m.aggregateCalls.WithLabelValues(aggregate, call, kind).Inc()
	}
}

// Connections returns the public listener's collectors, the open
// connections and the times the limit stopped accepting, registering them
// on first use; a second listener shares them. Both are nil when m is.
func (m *Metrics) Connections() (open prometheus.Gauge, full prometheus.Counter) {
	if m == nil {
		return nil, nil
	}
	open = register(m.reg, prometheus.Collector(prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gateway_connections_open",
		Help: "Client connections open on the public listener.",
	}))).(prometheus.Gauge)
	full = register(m.reg, prometheus.Collector(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gateway_connections_limit_reached_total",
		Help: "Times the public listener stopped accepting because -max-conns client connections were open.",
	}))).(prometheus.Counter)
	return open, full
}

// AggregateBuffered exposes used, the bytes aggregate requests hold now,
// as gateway_aggregate_buffered_bytes. A Metrics shared by two gateways
// keeps the first one's gauge.
func (m *Metrics) AggregateBuffered(used func() int64) {
	if m == nil {
		return
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gateway_aggregate_buffered_bytes",
		Help: "Bytes aggregate requests hold now (call bodies and merged answers), bounded by -aggregate-max-bytes.",
	}, func() float64 { return float64(used()) })
	_ = m.reg.Register(g)
}

// register registers c, or returns the collector already registered
// under its name.
func register(reg *prometheus.Registry, c prometheus.Collector) prometheus.Collector {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector
		}
		// Only a programming error (a clashing name) gets here.
		panic(err)
	}
	return c
}
