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
}

// proxy forwards requests to the instance a route's balancer picked. One
// ReverseProxy and one Transport serve every route, so connection pools are
// shared by all routes that reach the same instance.
type proxy struct {
	rp        *httputil.ReverseProxy
	transport http.RoundTripper // shared by every upstream
	logger    hclog.Logger
}

func newProxy(opts ProxyOptions, logger hclog.Logger) *proxy {
	rt := opts.Transport
	if rt == nil {
		rt = newTransport(opts)
	}
	p := &proxy{logger: logger, transport: rt}
	p.rp = &httputil.ReverseProxy{
		Rewrite:      rewrite,
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
	name := rt.Config.Name
	timeout := rt.Config.Timeout
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := exchangeFrom(r.Context())
		ex.route = name
		ex.up = rt.up
		ex.strip = rt.Config.StripPrefix
		if timeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		p.rp.ServeHTTP(w, r)
	})
}

// rewrite shapes the outgoing request; the upstream fills in the instance.
// Using
// Rewrite rather than Director means ReverseProxy strips hop-by-hop and
// client-sent X-Forwarded-* headers before we set ours, so a client cannot
// remove or forge what the gateway adds.
func rewrite(pr *httputil.ProxyRequest) {
	ex := exchangeFrom(pr.In.Context())
	if ex.strip != "" {
		pr.Out.URL.Path = stripPrefix(pr.Out.URL.Path, ex.strip)
		if pr.Out.URL.RawPath != "" {
			pr.Out.URL.RawPath = stripPrefix(pr.Out.URL.RawPath, ex.strip)
		}
	}
	// The original Host header is kept, as Traefik does by default: virtual
	// hosting upstreams and absolute redirects then keep working.
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
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
// route timeout is 504, anything else from the upstream side is 502.
func (p *proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	ex := exchangeFrom(r.Context())
	switch {
	case errors.Is(err, errNoInstance):
		writeError(w, http.StatusServiceUnavailable, msgNoInstance, ex.route)
	case errors.Is(r.Context().Err(), context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, msgUpstreamTimeout, ex.route)
	case errors.Is(r.Context().Err(), context.Canceled):
		// The client went away; nobody reads the answer, but the access
		// log shows nginx's 499 so it is not counted as an upstream fault.
		ex.status = statusClientClosed
	default:
		p.logger.Debug("upstream error", "route", ex.route, "upstream", ex.upstream, "error", err)
		writeError(w, http.StatusBadGateway, msgUpstreamDown, ex.route)
	}
}

// statusClientClosed is nginx's non-standard code for a client that closed
// the connection before the answer; only logs and metrics show it.
const statusClientClosed = 499

// bufferPool recycles the 32 KiB copy buffers ReverseProxy would otherwise
// allocate for every response body.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (bufferPool) Get() []byte  { return *(copyBuffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }
