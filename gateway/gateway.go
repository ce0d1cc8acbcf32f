// Package gateway ties the request path together. The Gateway serves
// client traffic from the current Table: it settles the request ID, bounds
// the body, normalises and routes the request (router), and hands it to
// the matched route's chain of policies ending in its upstream. The
// Controller is the single writer that turns route documents and instance
// snapshots into Tables; its table builder composes the lower packages
// (balancer, policy, upstream, aggregate, router) and keeps their state
// across swaps. Nothing here calls Consul on the request path: everything
// a request needs is in the table. Operator views (package admin) read a
// Table through its exported accessors only.
package gateway

import (
	"net/http"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/accesslog"
	"github.com/gatewayco/gateway/gateway/aggregate"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/router"
	"github.com/gatewayco/gateway/gateway/tracing"
	"github.com/gatewayco/gateway/gateway/tunnel"
	"github.com/gatewayco/gateway/gateway/upstream"
)

// Gateway is the public HTTP handler. The zero value is not usable; call New.
type Gateway struct {
	table   atomic.Pointer[Table]
	deps    *deps // what its tables are built with
	logger  hclog.Logger
	access  *accesslog.Logger // nil: no access log
	now     func() time.Time
	newID   func() string
	metrics *metrics.Metrics
	// maxBody is the request body limit in bytes; zero or less is none.
	maxBody int64
	// bodyTimeout bounds each pause in a request body; zero or less is none.
	bodyTimeout time.Duration
}

// Options configure a Gateway. The zero value is usable.
type Options struct {
	// Logger is the root logger; nil discards logs.
	Logger hclog.Logger
	// Proxy tunes the upstream side.
	Proxy ProxyOptions
	// AccessLog receives one entry per request; nil logs none. The
	// process owns it (and closes it after the drain).
	AccessLog *accesslog.Logger
	// Now is the clock for latencies and for rate limits, retry budgets
	// and token expiry; nil means time.Now.
	Now func() time.Time
	// MaxBodyBytes bounds request bodies (413 beyond); zero means
	// DefaultMaxBodyBytes, negative means no limit.
	MaxBodyBytes int64
	// BodyReadTimeout is how long a client may pause while sending its
	// request body (408 beyond); zero means DefaultBodyReadTimeout,
	// negative means no bound.
	BodyReadTimeout time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// finding a client's IP for rate limiting; nil trusts nobody, so the
	// client IP is always the connection's peer.
	TrustedProxies []netip.Prefix
	// RequestID generates X-Request-Id values for requests that arrive
	// without a valid one; nil means 16 random bytes in hex.
	RequestID func() string
	// Metrics records request and upstream metrics; nil records none.
	Metrics *metrics.Metrics
	// AggregateMaxBytes bounds the bytes all aggregate requests together
	// buffer at once (503 beyond); zero means aggregate.DefaultMaxBytes,
	// negative means no limit.
	AggregateMaxBytes int64
	// HTTPSPort is the port https_only redirects point at (the TLS
	// listener's); "" or "443" leaves the port out of the URL.
	HTTPSPort string
	// Tunnels keeps the WebSocket tunnels (their bound, idle timeouts and
	// shutdown); nil means a tracker with tunnel.DefaultMax, the
	// gateway's clock and its Metrics.
	Tunnels *tunnel.Tracker
	// Mesh is the Connect side (registry.Connect) for connect = true
	// routes; nil (no -connect) makes such routes answer 502.
	Mesh Mesh
	// Replicas is how many gateways share a rate_limit with scope =
	// "cluster" (registry.Peers.Count, with -register); read on every
	// such request, so it must be cheap. Nil means this gateway alone:
	// cluster limits then act as local ones, which the log says.
	Replicas func() int
}

// ProxyOptions tune the upstream side. The zero value is usable.
type ProxyOptions struct {
	// MaxIdleConnsPerHost bounds the keep-alive pool per upstream instance;
	// zero means 256. The stdlib default of 2 would make a busy gateway open
	// and close a connection for nearly every request.
	MaxIdleConnsPerHost int
	// DialTimeout bounds connecting to an instance; zero means 5s.
	DialTimeout time.Duration
	// Transport replaces the shared transport entirely; nil builds one from
	// the fields above. Tests use it to observe upstream traffic.
	Transport http.RoundTripper
	// OutlierFailures is how many gateway failures in a row (no
	// connection, reset, timeout, 502/503/504) eject an instance; zero
	// means balancer.DefaultOutlierFailures, negative turns ejection off.
	OutlierFailures int
	// OutlierEjection is how long a first ejection lasts; zero means
	// balancer.DefaultOutlierEjection. Repeated ejections last a multiple
	// of it.
	OutlierEjection time.Duration
	// MirrorSample decides which requests mirrors copy: a request is
	// copied when it returns below the mirror's percent; it must return
	// numbers in [0, 100). Nil means math/rand/v2. Tests inject their own.
	MirrorSample func() float64
}

// newDeps settles what the gateway's tables are built with.
func newDeps(opts Options, logger hclog.Logger, now func() time.Time) *deps {
	proxyLogger := logger.Named("proxy")
	tunnels := opts.Tunnels
	if tunnels == nil {
		tunnels = tunnel.New(tunnel.Options{Now: now, Metrics: opts.Metrics})
	}
	d := &deps{tunnels: tunnels, transport: opts.Proxy.Transport, metrics: opts.Metrics, logger: proxyLogger, now: now,
		maxIdle: opts.Proxy.MaxIdleConnsPerHost, dial: opts.Proxy.DialTimeout,
		outlierFailures: opts.Proxy.OutlierFailures, outlierEjection: opts.Proxy.OutlierEjection,
		proxy:     upstream.NewProxy(proxyLogger, opts.TrustedProxies).WithTunnels(tunnels),
		env:       policyEnv{trusted: opts.TrustedProxies, now: now, logger: logger.Named("policy"), getenv: os.Getenv, httpsPort: opts.HTTPSPort, replicas: opts.Replicas},
		aggBudget: aggregate.NewBudget(opts.AggregateMaxBytes), mirrorShared: upstream.NewMirrorSlots(upstream.MaxMirrorsInFlight)}
	d.mirrorSample = opts.Proxy.MirrorSample
	d.aggCache = aggregate.NewCache(0, 0, now)
	if d.mesh = opts.Mesh; d.mesh != nil {
		d.meshMetrics = opts.Metrics.Connect()
	}
	if d.transport == nil {
		d.transport = upstream.NewPlainTransport(opts.Proxy.MaxIdleConnsPerHost, opts.Proxy.DialTimeout)
	}
	if d.outlierFailures == 0 {
		d.outlierFailures = balancer.DefaultOutlierFailures
	}
	if d.outlierEjection <= 0 {
		d.outlierEjection = balancer.DefaultOutlierEjection
	}
	return d
}

// New returns a Gateway serving an empty table (404 to everything) until
// the first Publish.
func New(opts Options) *Gateway {
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	g := &Gateway{logger: logger, now: opts.Now, newID: opts.RequestID, metrics: opts.Metrics, maxBody: opts.MaxBodyBytes}
	if g.maxBody == 0 {
		g.maxBody = DefaultMaxBodyBytes
	}
	if g.bodyTimeout = opts.BodyReadTimeout; g.bodyTimeout == 0 {
		g.bodyTimeout = DefaultBodyReadTimeout
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.newID == nil {
		g.newID = newRequestID
	}
	g.access = opts.AccessLog
	g.deps = newDeps(opts, logger, g.now)
	opts.Metrics.AggregateBuffered(g.deps.aggBudget.Used)
	g.table.Store(emptyTable())
	return g
}

// Table returns the table requests are served from now; never nil.
func (g *Gateway) Table() *Table { return g.table.Load() }

// Publish swaps in t for every request that starts from now on; requests
// already running finish on the table they loaded.
func (g *Gateway) Publish(t *Table) {
	g.table.Store(t)
	if t.loaded {
		g.metrics.Published(t.metricsView())
	}
}

// Tunnels is the tracker of the gateway's WebSocket tunnels; never nil.
// The process shuts it down after the public server (see
// tunnel.Tracker.Shutdown).
func (g *Gateway) Tunnels() *tunnel.Tracker { return g.deps.tunnels }

// Metrics returns the gateway's metrics; nil when they are off.
func (g *Gateway) Metrics() *metrics.Metrics { return g.metrics }

// ServeHTTP loads the table once and serves the request from it. The
// request ID is settled first, so every later step (proxy, errors, logs)
// sees the same one.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := g.table.Load()
	ex := &exchange.Exchange{ResponseWriter: w, Start: g.now(), GRPC: exchange.IsGRPC(r)}
	ex.RequestID = g.requestID(r)
	ctx, span := tracing.StartServer(r)
	r, bad := router.Normalize(r.WithContext(exchange.NewContext(ctx, ex)))
	defer g.finish(ex, r, span)
	if bad != "" {
		exchange.WriteError(ex, http.StatusBadRequest, bad, "")
		return
	}
	if !g.limitBody(ex, r) {
		return
	}
	t.router.ServeHTTP(ex, r)
}

// finish records metrics, ends the server span and writes the
// access-log line. It runs deferred so that a response aborted mid-body
// (ReverseProxy panics with ErrAbortHandler) is counted and logged too.
func (g *Gateway) finish(ex *exchange.Exchange, r *http.Request, span trace.Span) {
	status := ex.Status
	if status == 0 {
		status = http.StatusOK
	}
	end := g.now()
	latency := end.Sub(ex.Start)
	g.metrics.ObserveAt(ex.Metrics, r.Method, status, latency, end)
	tracing.EndServer(span, tracing.Outcome{Route: ex.Route, Service: ex.Service, Instance: ex.Instance,
		RequestID: ex.RequestID, Status: status, Retries: ex.Retries})
	if !g.access.Wants(status) {
		return
	}
	e := accesslog.Entry{Time: ex.Start, Duration: latency, Method: r.Method, Host: r.Host, Path: r.URL.Path,
		Query: r.URL.RawQuery, URI: r.RequestURI, Proto: r.Proto, Status: status, Bytes: ex.Bytes,
		Route: ex.Route, Service: ex.Service, Instance: ex.Instance, Retries: ex.Retries,
		ClientIP: exchange.ClientAddr(r, g.deps.env.trusted), UserAgent: r.Header.Get("User-Agent"),
		Referer: r.Header.Get("Referer"), RequestID: ex.RequestID}
	e.TraceID, e.SpanID = tracing.IDs(span)
	g.access.Log(&e)
}

// Now is the gateway's clock (Options.Now); views of its table judge
// ejection deadlines by it.
func (g *Gateway) Now() time.Time { return g.now() }
