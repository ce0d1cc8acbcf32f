// Package gateway serves client traffic: it holds the current routing
// table, matches requests, proxies them to the instance a balancer picked,
// and exposes the admin endpoints. It never calls Consul on the request
// path: everything it needs is in the table the controller built.
package gateway

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Gateway is the public HTTP handler. The zero value is not usable; call New.
type Gateway struct {
	table  atomic.Pointer[Table]
	proxy  *proxy
	logger hclog.Logger
	access hclog.Logger
	now    func() time.Time
}

// Options configure a Gateway. The zero value is usable.
type Options struct {
	// Logger is the root logger; nil discards logs.
	Logger hclog.Logger
	// Proxy tunes the upstream side.
	Proxy ProxyOptions
	// AccessLog turns the one-line-per-request log on.
	AccessLog bool
	// Now is the clock for latencies; nil means time.Now.
	Now func() time.Time
}

// New returns a Gateway serving an empty table (404 to everything) until
// the first Publish.
func New(opts Options) *Gateway {
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	g := &Gateway{logger: logger, now: opts.Now}
	if g.now == nil {
		g.now = time.Now
	}
	if opts.AccessLog {
		g.access = logger.Named("access")
	}
	g.proxy = newProxy(opts.Proxy, logger.Named("proxy"))
	g.table.Store(emptyTable())
	return g
}

// Table returns the table requests are served from now; never nil.
func (g *Gateway) Table() *Table { return g.table.Load() }

// Publish swaps in t for every request that starts from now on; requests
// already running finish on the table they loaded.
func (g *Gateway) Publish(t *Table) { g.table.Store(t) }

// ServeHTTP loads the table once and serves the request from it.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := g.table.Load()
	ex := &exchange{ResponseWriter: w, start: g.now()}
	r = r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex))
	if g.access != nil {
		defer g.logAccess(ex, r)
	}
	t.router.ServeHTTP(ex, r)
}

// logAccess writes the access-log line. It runs deferred so that a
// response aborted mid-body (ReverseProxy panics with ErrAbortHandler) is
// logged too.
func (g *Gateway) logAccess(ex *exchange, r *http.Request) {
	status := ex.status
	if status == 0 {
		status = http.StatusOK
	}
	g.access.Info("request",
		"method", r.Method,
		"path", r.URL.Path,
		"route", ex.route,
		"upstream", ex.upstream,
		"status", status,
		"bytes", ex.bytes,
		"latency", g.now().Sub(ex.start),
		"client_ip", clientIP(r),
	)
}

// clientIP is the peer address of the connection. X-Forwarded-For is not
// believed here: any client can send it.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
