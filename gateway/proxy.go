package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/policy"

	"github.com/gatewayco/gateway/gateway/metrics"
)

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
	// balancer.DefaultOutlierEjection. Repeated ejections last a multiple of it.
	OutlierEjection time.Duration
}

// proxy forwards requests to the instance a route's balancer picked. One
// ReverseProxy and one Transport serve every route, so connection pools are
// shared by all routes that reach the same instance.
type proxy struct {
	rp              *httputil.ReverseProxy
	transport       http.RoundTripper // shared by every upstream
	logger          hclog.Logger
	env             policyEnv        // what route policies need; see policies.go
	metrics         *metrics.Metrics // nil when metrics are off
	now             func() time.Time
	outlierFailures int           // see ProxyOptions
	outlierEjection time.Duration // see ProxyOptions

	// aggBudget bounds what every aggregate buffers; see aggregate_budget.go.
	aggBudget *aggregateBudget
}

func newProxy(opts ProxyOptions, logger hclog.Logger, now func() time.Time) *proxy {
	rt := opts.Transport
	if rt == nil {
		rt = newTransport(opts)
	}
	p := &proxy{logger: logger, transport: rt, now: now,
		outlierFailures: opts.OutlierFailures, outlierEjection: opts.OutlierEjection}
	if p.outlierFailures == 0 {
		p.outlierFailures = balancer.DefaultOutlierFailures
	}
	if p.outlierEjection <= 0 {
		p.outlierEjection = balancer.DefaultOutlierEjection
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:      p.rewrite,
		Transport:    dispatch{},
		BufferPool:   bufferPool{},
		ErrorHandler: p.upstreamError,
		ErrorLog:     logger.Named("reverseproxy").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	return p
}

func newTransport(opts ProxyOptions) *http.Transport {
	perHost := opts.MaxIdleConnsPerHost
	if perHost <= 0 {
		perHost = 256
	}
	dial := opts.DialTimeout
	if dial <= 0 {
		dial = 5 * time.Second
	}
	return &http.Transport{
		// Upstreams are reached directly; an HTTP_PROXY meant for the
		// operator's shell must not capture service traffic.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   perHost,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// handler serves one route: bound the exchange by the route timeout and
// hand over to the shared ReverseProxy, whose transport sends it to the
// route's upstream.
func (p *proxy) handler(rt *Route) http.Handler {
	timeout := rt.Config.Timeout
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// named() already set the route and its metrics.
		ex := exchange.From(r.Context())
		ex.Upstream = rt.up
		ex.Strip = stripSpelling(rt, r.URL.Path)
		if timeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			r = r.WithContext(ctx)
			ex.BoundBody(ctx)
		}
		p.rp.ServeHTTP(w, r)
	})
}

// rewrite shapes the outgoing request; the upstream fills in the instance.
// Using Rewrite rather than Director means ReverseProxy strips hop-by-hop
// headers, and the forwarding headers it knows, before we set ours, so a
// client cannot remove what the gateway adds; setForwarded drops the rest.
// The gateway's own headers (request ID, verified claims, forward_auth
// copies) live in the exchange and are applied last, for the same reason.
func (p *proxy) rewrite(pr *httputil.ProxyRequest) {
	ex := exchange.From(pr.In.Context())
	if ex.Strip != "" {
		pr.Out.URL.Path = stripPrefix(pr.Out.URL.Path, ex.Strip)
		if pr.Out.URL.RawPath != "" {
			pr.Out.URL.RawPath = stripPrefix(pr.Out.URL.RawPath, ex.Strip)
		}
	}
	// The client's Host header is kept, as Traefik does by default: virtual
	// hosting upstreams and absolute redirects then keep working. It is the
	// canonical spelling the request was routed on, never empty (see
	// normalizeRequest): an empty Host would make the transport send the
	// instance's address instead.
	pr.Out.Host = pr.In.Host
	p.setForwarded(pr)
	ex.ApplyUpstreamHeaders(pr.Out.Header)
}

// setForwarded sets X-Forwarded-For, -Host and -Proto (see forwarded).
// ReverseProxy drops Forwarded and the three X-Forwarded-* it knows; this
// also drops every other X-Forwarded-* and client-address header a client
// sent (frameworks trust X-Forwarded-Port, -Prefix or -Ssl to build URLs,
// X-Real-Ip or True-Client-Ip as the client), unless the peer is a
// trusted proxy, and rewrite headers from anyone (see dropSpoofable).
func (p *proxy) setForwarded(pr *httputil.ProxyRequest) {
	xff, host, proto, trusted := exchange.Forwarded(pr.In, p.env.trusted)
	exchange.DropSpoofable(pr.Out.Header, trusted)
	h := pr.Out.Header
	h.Set("X-Forwarded-For", xff)
	h.Set("X-Forwarded-Host", host)
	h.Set("X-Forwarded-Proto", proto)
}

// stripPrefix removes prefix from path, keeping the result absolute.
func stripPrefix(path, prefix string) string {
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok {
		return path
	}
	if !strings.HasPrefix(rest, "/") {
		rest = "/" + rest
	}
	return rest
}

// upstreamError maps a failed exchange to the gateway's JSON errors: a
// fault of the client's body is its 4xx, a route timeout is 504, anything
// else from the upstream side is 502. classify decides whose fault it
// was, as it does for ejection, breakers and retries.
func (p *proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	ex := exchange.From(r.Context())
	var open *policy.OpenError
	switch f := exchange.Classify(r, err); {
	case errors.As(err, &open):
		w.Header().Set("Retry-After", policy.RetryAfterSeconds(open.RetryAfter))
		exchange.WriteError(w, http.StatusServiceUnavailable, exchange.MsgBreakerOpen, ex.Route)
	case errors.Is(err, errNoInstance):
		exchange.WriteError(w, http.StatusServiceUnavailable, exchange.MsgNoInstance, ex.Route)
	case f.InBody():
		p.bodyFaultAnswer(w, r, ex, f, err)
	case errors.Is(r.Context().Err(), context.DeadlineExceeded):
		exchange.WriteError(w, http.StatusGatewayTimeout, exchange.MsgUpstreamTimeout, ex.Route)
	case f == exchange.FaultClientGone:
		// The client went away; nobody reads the answer, but the access
		// log shows nginx's 499 so it is not counted as an upstream fault.
		ex.Status = exchange.StatusClientClosed
	default:
		p.logger.Debug("upstream error", "route", ex.Route, "upstream", ex.Instance, "error", err)
		exchange.WriteError(w, http.StatusBadGateway, exchange.MsgUpstreamDown, ex.Route)
	}
}

// bodyFaultAnswer answers a body fault. The connection is closed after
// it: what the client sends next cannot be told from the rest of the
// broken body.
func (p *proxy) bodyFaultAnswer(w http.ResponseWriter, r *http.Request, ex *exchange.Exchange, f exchange.Fault, err error) {
	if berr := exchange.BodyError(r, err); berr != nil {
		err = berr
	}
	status, msg := http.StatusBadRequest, exchange.MsgBodyMalformed
	switch f {
	case exchange.FaultBodyTooLarge:
		status, msg = http.StatusRequestEntityTooLarge, exchange.MsgBodyTooLarge
	case exchange.FaultBodyTimeout:
		status, msg = http.StatusRequestTimeout, exchange.MsgBodyTimeout
	}
	p.logger.Debug("client fault", "route", ex.Route, "upstream", ex.Instance, "status", status, "error", err)
	w.Header().Set("Connection", "close")
	exchange.WriteError(w, status, msg, ex.Route)
}

// bufferPool recycles the 32 KiB copy buffers ReverseProxy would otherwise
// allocate for every response body. It pools array pointers: converting
// the slice back to its array pointer costs nothing, where pooling &slice
// would allocate a slice header on every Put.
type bufferPool struct{}

const copyBufferSize = 32 * 1024

var copyBuffers = sync.Pool{New: func() any { return new([copyBufferSize]byte) }}

func (bufferPool) Get() []byte { return copyBuffers.Get().(*[copyBufferSize]byte)[:] }

func (bufferPool) Put(b []byte) {
	if cap(b) >= copyBufferSize {
		copyBuffers.Put((*[copyBufferSize]byte)(b[:copyBufferSize]))
	}
}

// stripSpelling is the strip_prefix to remove from path: the route's own,
// or, on a case-insensitive route, the client's spelling of it, since the
// route matched the path whatever its case.
func stripSpelling(rt *Route, path string) string {
	p := rt.Config.StripPrefix
	if p == "" || !rt.Config.CaseInsensitive {
		return p
	}
	if rest, ok := config.CutPrefixFold(path, p); ok {
		return path[:len(path)-len(rest)]
	}
	return p
}
