package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/gateway/tunnel"
	"github.com/gatewayco/gateway/gateway/upstream/h1"
)

// Proxy serves every route: plain requests through the forwarding path
// in forward.go, WebSocket handshakes through one ReverseProxy whose
// transport hands each request to the upstream the route's handler
// recorded in the exchange. One Proxy and one Transport serve every
// route, so connection pools are shared by all routes that reach the
// same instance.
type Proxy struct {
	rp      *httputil.ReverseProxy
	logger  hclog.Logger
	trusted []netip.Prefix  // proxies whose X-Forwarded-* are believed
	tunnels *tunnel.Tracker // WebSocket tunnels; see upgrade.go
}

// NewProxy returns the gateway's proxy. It logs upstream errors at debug
// level on logger (nil discards); trusted are the peers whose forwarding
// headers are kept and extended.
func NewProxy(logger hclog.Logger, trusted []netip.Prefix) *Proxy {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	p := &Proxy{logger: logger, trusted: trusted, tunnels: tunnel.New(tunnel.Options{})}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		ModifyResponse: modifyResponse,
		Transport:      dispatch{},
		BufferPool:     bufferPool{},
		ErrorHandler:   p.upstreamError,
		ErrorLog:       logger.Named("reverseproxy").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	return p
}

// WithTunnels makes t the tracker of the proxy's WebSocket tunnels, in
// place of the default one NewProxy makes; it returns p.
func (p *Proxy) WithTunnels(t *tunnel.Tracker) *Proxy {
	p.tunnels = t
	return p
}

// dispatch is the ReverseProxy's transport: it hands each request to the
// upstream of the route that matched it, found in the request's exchange.
type dispatch struct{}

func (dispatch) RoundTrip(req *http.Request) (*http.Response, error) {
	return exchange.From(req.Context()).Upstream.RoundTrip(req)
}

// MaxAnswerHeadBytes bounds an upstream answer's head (status line and
// header fields; each 1xx answer's counted afresh): past it the answer is
// a 502 and counts against the instance. nginx refuses past 4–8 KiB by
// default; 1 MiB leaves room for any real cookie jar while keeping 32
// concurrent hostile answers to 32 MiB (net/http's default is 10 MiB).
const MaxAnswerHeadBytes = 1 << 20

// NewTransport returns the transport every upstream shares. It keeps up
// to maxIdlePerHost idle connections per instance (zero or less: 256;
// the stdlib default of 2 would make a busy gateway open and close a
// connection for nearly every request) and bounds dialling by dial (zero
// or less: 5s).
func NewTransport(maxIdlePerHost int, dial time.Duration) *http.Transport {
	if maxIdlePerHost <= 0 {
		maxIdlePerHost = 256
	}
	if dial <= 0 {
		dial = 5 * time.Second
	}
	return &http.Transport{
		// Upstreams are reached directly; an HTTP_PROXY meant for the
		// operator's shell must not capture service traffic.
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:           0,
		MaxIdleConnsPerHost:    maxIdlePerHost,
		IdleConnTimeout:        90 * time.Second,
		ExpectContinueTimeout:  time.Second,
		TLSHandshakeTimeout:    dial,
		MaxResponseHeaderBytes: MaxAnswerHeadBytes,
		HTTP2: &http.HTTP2Config{
			// An HTTP/2 connection that stops answering is found by a
			// ping after 30s of silence, and dropped 15s later, rather
			// than holding its streams until the route timeout.
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
}

// NewPlainTransport is the transport of plain-HTTP routes: the h1 fast
// path for bodiless requests, over NewTransport for everything else (a
// body, an upgrade, h2c), with the same idle and dial bounds. Neither
// asks upstreams for gzip on the client's behalf: the client's own
// Accept-Encoding goes through as it is, as nginx does it, so a request
// is not compressed upstream only to be unpacked by the gateway.
func NewPlainTransport(maxIdlePerHost int, dial time.Duration) *h1.Transport {
	std := NewTransport(maxIdlePerHost, dial)
	std.DisableCompression = true
	return h1.New(h1.Options{Fallback: std, Dial: std.DialContext, MaxIdlePerHost: std.MaxIdleConnsPerHost,
		IdleTimeout: std.IdleConnTimeout, MaxResponseHeaderBytes: std.MaxResponseHeaderBytes})
}

// NewH2CTransport is NewTransport speaking only HTTP/2 cleartext with
// prior knowledge, as gRPC servers without TLS do. All of a route's
// calls to one instance share one connection's streams.
func NewH2CTransport(maxIdlePerHost int, dial time.Duration) *http.Transport {
	t := NewTransport(maxIdlePerHost, dial)
	t.Protocols = new(http.Protocols)
	t.Protocols.SetUnencryptedHTTP2(true)
	return t
}

// NewTLSTransport is NewTransport over TLS verified against conf (its
// RootCAs and ServerName; nil: the system roots and the instance's
// host), offering HTTP/2 and HTTP/1.1 by ALPN so an instance that offers
// h2 gets it. TLS 1.2 is the minimum.
func NewTLSTransport(maxIdlePerHost int, dial time.Duration, conf *tls.Config) *http.Transport {
	t := NewTransport(maxIdlePerHost, dial)
	if conf == nil {
		conf = &tls.Config{}
	}
	conf = conf.Clone()
	conf.MinVersion = tls.VersionTLS12
	t.TLSClientConfig = conf
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP1(true)
	t.Protocols.SetHTTP2(true)
	return t
}

// Handler serves one route rc through up: it bounds the exchange by the
// route timeout and forwards it to up (forward.go; a WebSocket handshake
// goes through the shared ReverseProxy, upgrade.go). The request's exchange must already name the route (the
// table builder's chain does that before any policy runs).
func (p *Proxy) Handler(rc *config.Route, up *Upstream) http.Handler {
	timeout := rc.Timeout
	strip, fold := rc.StripPrefix, rc.CaseInsensitive
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := exchange.From(r.Context())
		ex.Upstream = up
		ex.Strip = stripSpelling(strip, fold, r.URL.Path)
		switch {
		case isExtendedConnect(r):
			p.serveH2Tunnel(w, r, rc)
			return
		case r.Method == http.MethodConnect:
			// No upstream expects a proxied CONNECT.
			exchange.WriteError(w, http.StatusMethodNotAllowed, exchange.MsgMethodNotAllowed, ex.Route)
			return
		case isWebSocket(upgradeType(r.Header)):
			p.serveTunnel(w, r, rc)
			return
		}
		limit := timeout
		if ex.GRPC {
			var ok bool
			if limit, ok = grpcDeadline(w, r, ex, timeout); !ok {
				return
			}
		}
		ctx := r.Context()
		if limit > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, limit)
			defer cancel()
			ex.BoundBody(ctx)
		}
		p.forward(ctx, w, r)
	})
}

// rewrite shapes the outgoing request of a WebSocket handshake (plain
// requests get the same from outgoing in forward.go); the upstream fills
// in the instance.
// Using Rewrite rather than Director means ReverseProxy strips hop-by-hop
// headers, and the forwarding headers it knows, before we set ours, so a
// client cannot remove what the gateway adds; setForwarded drops the rest.
// The gateway's own headers (request ID, verified claims, forward_auth
// copies) live in the exchange and are applied last, for the same reason.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
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
	// router.Normalize): an empty Host would make the transport send the
	// instance's address instead.
	pr.Out.Host = pr.In.Host
	dropUpgrade(pr.In, pr.Out.Header)
	p.setForwarded(pr)
	ex.ApplyUpstreamHeaders(pr.Out.Header)
	if ex.GRPC {
		// The upstream learns the deadline the gateway enforces: the
		// client's grpc-timeout, or the route timeout when that is
		// shorter, less what has already passed.
		if d, ok := pr.Out.Context().Deadline(); ok {
			pr.Out.Header.Set("Grpc-Timeout", exchange.FormatGRPCTimeout(time.Until(d)))
		}
	}
}

// grpcDeadline is how long a gRPC call may take: its client's
// grpc-timeout, capped by the route timeout (zero: none); when the
// client's is the shorter, the exchange records it (a call that runs out
// of it is not the instance's failure). A malformed
// grpc-timeout is answered (INTERNAL, as gRPC servers answer it) and
// reported false.
func grpcDeadline(w http.ResponseWriter, r *http.Request, ex *exchange.Exchange, timeout time.Duration) (time.Duration, bool) {
	v := r.Header.Get("Grpc-Timeout")
	if v == "" {
		return timeout, true
	}
	d, err := exchange.ParseGRPCTimeout(v)
	if err != nil {
		exchange.WriteError(w, http.StatusBadRequest, exchange.MsgGRPCTimeout, ex.Route)
		return 0, false
	}
	if timeout > 0 && timeout <= d {
		return timeout, true
	}
	ex.ClientDeadline = true
	if d == 0 {
		// An expired deadline: context.WithTimeout(0) ends at once,
		// where a zero limit would mean none.
		d = time.Nanosecond
	}
	return d, true
}

// setForwarded sets X-Forwarded-For, -Host and -Proto (see exchange.Forwarded).
// ReverseProxy drops Forwarded and the three X-Forwarded-* it knows; this
// also drops every other X-Forwarded-* and client-address header a client
// sent (frameworks trust X-Forwarded-Port, -Prefix or -Ssl to build URLs,
// X-Real-Ip or True-Client-Ip as the client), unless the peer is a
// trusted proxy, and rewrite headers from anyone (see exchange.DropSpoofable).
func (p *Proxy) setForwarded(pr *httputil.ProxyRequest) {
	xff, host, proto, trusted := exchange.Forwarded(pr.In, p.trusted)
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
// else from the upstream side is 502. exchange.Classify decides whose
// fault it was, as it does for ejection, breakers and retries.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	ex := exchange.From(r.Context())
	var open *policy.OpenError
	switch f := exchange.Classify(r, err); {
	case errors.As(err, &open):
		w.Header().Set("Retry-After", policy.RetryAfterSeconds(open.RetryAfter))
		exchange.WriteError(w, http.StatusServiceUnavailable, exchange.MsgBreakerOpen, ex.Route)
	case errors.Is(err, ErrNoInstance):
		exchange.WriteError(w, http.StatusServiceUnavailable, exchange.MsgNoInstance, ex.Route)
	case f.InBody():
		p.bodyFaultAnswer(w, r, ex, f, err)
	case f == exchange.FaultMeshRefused:
		exchange.WriteError(w, http.StatusForbidden, exchange.MsgMeshRefused, ex.Route)
	case f == exchange.FaultClientDeadline:
		exchange.WriteError(w, http.StatusRequestTimeout, exchange.MsgDeadline, ex.Route)
	case exchange.DeadlinePassed(r.Context()):
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
func (p *Proxy) bodyFaultAnswer(w http.ResponseWriter, r *http.Request, ex *exchange.Exchange, f exchange.Fault, err error) {
	if berr := exchange.BodyError(r, err); berr != nil {
		err = berr
	}
	status, msg := exchange.BodyFaultStatus(f)
	p.logger.Debug("client fault", "route", ex.Route, "upstream", ex.Instance, "status", status, "error", err)
	w.Header().Set("Connection", "close")
	exchange.WriteError(w, status, msg, ex.Route)
}

// grpcEnding makes a gRPC answer that breaks off mid-stream end the way
// gRPC clients understand. Once the upstream's headers are through, an
// error reading its body (the deadline, a reset) would otherwise abort
// the client's stream with RST_STREAM, which a gRPC client reads as
// INTERNAL; instead the stream ends with grpc-status trailers:
// DEADLINE_EXCEEDED when the deadline passed, UNAVAILABLE otherwise.
// errUnaskedSwitch is an upstream's 101 to a protocol the request did
// not ask for.
var errUnaskedSwitch = errors.New("upstream switched to a protocol the request did not ask for")

// modifyResponse refuses an unasked 101 before ReverseProxy sees it:
// ReverseProxy answers a mismatched one 502 but leaves its connection
// (and the instance's in-flight count) open, and hijacks the client's
// connection for a 101 to a request that asked for no upgrade. An error
// here makes it close the body. Other answers go to grpcEnding.
func modifyResponse(resp *http.Response) error {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		asked := upgradeType(resp.Request.Header)
		if asked == "" || !strings.EqualFold(asked, upgradeType(resp.Header)) {
			return errUnaskedSwitch
		}
	}
	return grpcEnding(resp)
}

func grpcEnding(resp *http.Response) error {
	ex := exchange.From(resp.Request.Context())
	if ex == nil || !ex.GRPC || resp.Body == nil || resp.Body == http.NoBody || resp.Header.Get("Grpc-Status") != "" {
		return nil
	}
	resp.Body = &grpcBody{rc: resp.Body, resp: resp}
	return nil
}

// grpcBody is a gRPC answer's body, ending in trailers when it breaks.
type grpcBody struct {
	rc   io.ReadCloser
	resp *http.Response
}

func (b *grpcBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	ctx := b.resp.Request.Context()
	status, msg := http.StatusBadGateway, exchange.MsgUpstreamDown
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return n, err // the client went away: nobody to tell
	case exchange.DeadlinePassed(ctx):
		status, msg = http.StatusGatewayTimeout, exchange.MsgUpstreamTimeout
	}
	if b.resp.Trailer == nil {
		b.resp.Trailer = http.Header{}
	}
	b.resp.Trailer.Set("Grpc-Status", strconv.Itoa(exchange.GRPCCode(status)))
	b.resp.Trailer.Set("Grpc-Message", msg)
	return n, io.EOF
}

func (b *grpcBody) Close() error { return b.rc.Close() }

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

// stripSpelling is the strip_prefix p to remove from path: the route's
// own, or, on a case-insensitive route (fold), the client's spelling of
// it, since the route matched the path whatever its case.
func stripSpelling(p string, fold bool, path string) string {
	if p == "" || !fold {
		return p
	}
	if rest, ok := config.CutPrefixFold(path, p); ok {
		return path[:len(path)-len(rest)]
	}
	return p
}
