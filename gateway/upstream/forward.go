package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/gatewayco/gateway/gateway/exchange"
)

// The forwarding path of every plain request (everything but a WebSocket
// handshake, which goes through ReverseProxy in upgrade.go). It does what
// httputil.ReverseProxy with the gateway's Rewrite did, step for step
// (hop-by-hop and Connection-listed headers removed, forwarding headers
// replaced, Te: trailers kept, unparsable queries re-encoded, 1xx answers
// passed on, trailers announced and copied, streaming answers flushed,
// errors mapped by upstreamError), with a fraction of its allocations:
// the outgoing request is built once instead of cloned and re-wrapped,
// its header in one map with one backing array for the values, the
// answer's header slices are moved rather than copied, the per-request
// state (URL, body guard, 1xx hook) is one allocation, and the copy
// buffer is pooled. forward_diff_test.go holds it to ReverseProxy's
// behaviour on a corpus of requests and answers.

// fwd is one forwarded request's state, allocated once: the outgoing
// URL, the guard of its body, and the hook that passes 1xx answers on.
type fwd struct {
	url  url.URL
	body noopCloseBody
	rw   http.ResponseWriter

	trace httptrace.ClientTrace
	tctx  traceContext
	mu    sync.Mutex // guards done against a late 1xx (HTTP/2 reads on its own goroutine)
	done  bool       // the attempt returned: rw's header is the final answer's now
}

// traceKey is the context key httptrace keeps a ClientTrace under, learnt
// by asking httptrace to look one up; nil if that ever fails.
var traceKey = func() any {
	c := &keyCatcher{Context: context.Background()}
	httptrace.ContextClientTrace(c)
	return c.key
}()

type keyCatcher struct {
	context.Context
	key any
}

func (c *keyCatcher) Value(key any) any {
	c.key = key
	return nil
}

// traceContext is ctx carrying f's trace, as httptrace.WithClientTrace
// makes it but inside fwd's allocation.
type traceContext struct {
	context.Context
	trace *httptrace.ClientTrace
}

func (c *traceContext) Value(key any) any {
	if key == traceKey {
		return c.trace
	}
	return c.Context.Value(key)
}

// withTrace returns ctx carrying the 1xx hook. When ctx already carries
// a trace (someone else is tracing the request), httptrace composes the
// two, so both see every event.
func (f *fwd) withTrace(ctx context.Context) context.Context {
	if traceKey == nil || httptrace.ContextClientTrace(ctx) != nil {
		return httptrace.WithClientTrace(ctx, &f.trace)
	}
	f.tctx = traceContext{Context: ctx, trace: &f.trace}
	return &f.tctx
}

// got1xx writes an informational answer (103 Early Hints and the like)
// to the client as it arrives, as ReverseProxy does. The upstream's 100
// Continue is not passed on: the gateway's own server sends the client
// one when the transport starts reading the body to send it, which is
// what the upstream's 100 sets off. Relaying it too raced with that one
// and gave the client one or two, depending on timing.
func (f *fwd) got1xx(code int, header textproto.MIMEHeader) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done || code == http.StatusContinue {
		return nil
	}
	h := f.rw.Header()
	copyHeader(h, http.Header(header))
	f.rw.WriteHeader(code)
	// WriteHeader does not clear the header after a 1xx.
	clear(h)
	return nil
}

// noopCloseBody lends the client's body to the transport, which closes a
// request's body when an attempt fails: closing the client's own would
// make the server drain it, which hangs for a body still on its way (a
// 100-continue request) and would leave nothing for a retry.
type noopCloseBody struct {
	rc     io.ReadCloser
	closed atomic.Bool
}

// errClosedBody is a read of the client's body after the exchange ended.
var errClosedBody = errors.New("read of the request body after the exchange ended")

func (b *noopCloseBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errClosedBody
	}
	return b.rc.Read(p)
}

func (b *noopCloseBody) Close() error {
	b.closed.Store(true)
	return nil
}

// forward proxies the plain request r (no WebSocket upgrade; its exchange
// names the upstream) and writes the answer, or the gateway's error, to w.
// ctx is r's context bounded by the route timeout, if any.
func (p *Proxy) forward(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	ex := exchange.From(ctx)
	if up := upgradeType(r.Header); up != "" && !printableASCII(up) {
		p.upstreamError(w, r, fmt.Errorf("client tried to switch to invalid protocol %q", up))
		return
	}
	f := &fwd{rw: w}
	f.trace.Got1xxResponse = f.got1xx
	out := p.outgoing(f.withTrace(ctx), r, ex, f)
	if out.Body != nil {
		defer out.Body.Close()
	}
	res, err := ex.Upstream.RoundTrip(out)
	f.mu.Lock()
	f.done = true
	f.mu.Unlock()
	if err != nil {
		p.upstreamError(w, out, err)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		// Only a WebSocket handshake may switch, and it does not come here.
		res.Body.Close()
		p.upstreamError(w, out, errUnaskedSwitch)
		return
	}
	removeHopByHop(res.Header)
	if err := grpcEnding(res); err != nil {
		res.Body.Close()
		p.upstreamError(w, out, err)
		return
	}
	p.answer(w, r, res)
}

// outgoing builds the request for the upstream from r: ReverseProxy's
// clone, hop-by-hop removal and the gateway's Rewrite in one pass.
func (p *Proxy) outgoing(ctx context.Context, r *http.Request, ex *exchange.Exchange, f *fwd) *http.Request {
	f.url = *r.URL
	u := &f.url
	if u.User != nil {
		uu := *u.User
		u.User = &uu
	}
	// Remove unparsable query parameters, as ReverseProxy does for Rewrite.
	u.RawQuery = cleanQueryParams(u.RawQuery)
	if ex.Strip != "" {
		u.Path = stripPrefix(u.Path, ex.Strip)
		if u.RawPath != "" {
			u.RawPath = stripPrefix(u.RawPath, ex.Strip)
		}
	}
	xff, host, proto, trusted := exchange.Forwarded(r, p.trusted)
	tmpl := http.Request{
		Method:        r.Method,
		URL:           u,
		Proto:         r.Proto,
		ProtoMajor:    r.ProtoMajor,
		ProtoMinor:    r.ProtoMinor,
		Header:        outHeader(r.Header, ex, trusted, xff, host, proto),
		ContentLength: r.ContentLength,
		// Shared, not copied: the transport only reads it.
		TransferEncoding: r.TransferEncoding,
		// The client's Host is kept (see Proxy.rewrite).
		Host:       r.Host,
		Form:       r.Form,
		PostForm:   r.PostForm,
		RemoteAddr: r.RemoteAddr,
		RequestURI: r.RequestURI,
		TLS:        r.TLS,
		// ReverseProxy clones the announced trailers; their values,
		// which arrive after the body, are not forwarded either way.
		Trailer: r.Trailer.Clone(),
		GetBody: r.GetBody,
	}
	if r.ContentLength != 0 && r.Body != nil {
		// A zero length sends no body: the transport may then retry a
		// request on a connection that turned out closed.
		f.body.rc = r.Body
		tmpl.Body = &f.body
	}
	out := tmpl.WithContext(ctx)
	if ex.GRPC {
		if d, ok := ctx.Deadline(); ok {
			out.Header.Set("Grpc-Timeout", exchange.FormatGRPCTimeout(time.Until(d)))
		}
	}
	return out
}

// hopHeaders are removed from every request and answer (RFC 9110 7.6.1
// and the older RFC 2616 list), with the forwarding headers the gateway
// sets itself; see outHeader.
var hopHeaders = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func isHopHeader(k string) bool {
	for _, h := range hopHeaders {
		if k == h {
			return true
		}
	}
	return false
}

// outHeader is the upstream's copy of the client's header in: without
// hop-by-hop headers, those the client's Connection header lists, the
// forwarding headers (replaced by xff, host and proto) and what
// exchange.DropSpoofable drops; with Te: trailers when the client
// offered trailers. One map and one backing array of values.
func outHeader(in http.Header, ex *exchange.Exchange, trusted bool, xff, host, proto string) http.Header {
	nv := 0
	for _, vv := range in {
		nv += len(vv)
	}
	const added = 6 // X-Forwarded-For, -Host, -Proto, Te, User-Agent, X-Request-Id
	h := make(http.Header, len(in)+added)
	vals := make([]string, 0, nv+added)
	conn := in["Connection"]
	for k, vv := range in {
		if len(vv) == 0 || isHopHeader(k) || connectionListed(conn, k) {
			continue
		}
		switch k {
		case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
			continue
		}
		if exchange.Spoofable(k, trusted) {
			continue
		}
		n := len(vals)
		vals = append(vals, vv...)
		h[k] = vals[n:len(vals):len(vals)]
	}
	put := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if httpguts.HeaderValuesContainsToken(in["Te"], "trailers") {
		put("Te", "trailers")
	}
	put("X-Forwarded-For", xff)
	put("X-Forwarded-Host", host)
	put("X-Forwarded-Proto", proto)
	// The gateway's own headers go last (see ApplyUpstreamHeaders), so
	// what it says is what the upstream gets.
	for k, vs := range ex.UpstreamHeaderFields() {
		h[k] = vs
	}
	if ex.RequestID != "" {
		put(exchange.HeaderRequestID, ex.RequestID)
	}
	if _, ok := h["User-Agent"]; !ok {
		// An empty User-Agent keeps the transport from sending Go's own.
		put("User-Agent", "")
	}
	return h
}

// connectionListed reports whether the Connection header values conn
// name k (canonical), compared as textproto.CanonicalMIMEHeaderKey would
// compare them but without allocating.
func connectionListed(conn []string, k string) bool {
	for _, v := range conn {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = textproto.TrimString(tok); tok != "" && sameHeaderKey(tok, k) {
				return true
			}
		}
	}
	return false
}

// sameHeaderKey reports whether the header name tok canonicalises to k:
// a valid token compares case-insensitively (ASCII), anything else
// exactly, as CanonicalMIMEHeaderKey leaves such names as they are.
func sameHeaderKey(tok, k string) bool {
	if len(tok) != len(k) {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if !httpguts.IsTokenRune(rune(tok[i])) {
			return tok == k
		}
	}
	for i := 0; i < len(tok); i++ {
		a, b := tok[i], k[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// removeHopByHop removes an answer's hop-by-hop headers and those its
// Connection header lists.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// answer writes the upstream's answer res to w: header, body (flushed as
// it comes for a stream) and trailers.
func (p *Proxy) answer(w http.ResponseWriter, r *http.Request, res *http.Response) {
	moveHeader(w.Header(), res.Header)
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		w.Header().Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(res.StatusCode)
	stream := streaming(res)
	if stream {
		// The header goes out now, before any of the body exists.
		_ = http.NewResponseController(w).Flush()
	}
	if err := copyBody(w, res.Body, stream); err != nil {
		res.Body.Close()
		if !errors.Is(err, context.Canceled) {
			p.logger.Debug("answer broke off", "route", exchange.From(r.Context()).Route, "error", err)
		}
		if r.Context().Value(http.ServerContextKey) != nil {
			// Mid-answer, all that is left is to abort the client's
			// stream; the server recovers this.
			panic(http.ErrAbortHandler)
		}
		return
	}
	res.Body.Close() // now, to have res.Trailer filled
	if len(res.Trailer) > 0 {
		// Forces chunking, so the trailers can follow the body.
		_ = http.NewResponseController(w).Flush()
	}
	if len(res.Trailer) == announced {
		copyHeader(w.Header(), res.Trailer)
		return
	}
	for k, vv := range res.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			w.Header().Add(k, v)
		}
	}
}

// streaming reports whether an answer is flushed as it comes: server-sent
// events, and any answer of unknown length (gRPC, long polls, chunked
// streams), as ReverseProxy decides it.
func streaming(res *http.Response) bool {
	if res.ContentLength == -1 {
		return true
	}
	ct := res.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// copyBody copies the answer's body to w with a pooled buffer, flushing
// after every write when stream is set. It returns a write error, or a
// read error other than the end of the body.
func copyBody(w http.ResponseWriter, body io.Reader, stream bool) error {
	bp := copyBuffers.Get().(*[copyBufferSize]byte)
	defer copyBuffers.Put(bp)
	buf := bp[:]
	var rc *http.ResponseController
	if stream {
		rc = http.NewResponseController(w)
	}
	for {
		nr, rerr := body.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			if werr != nil {
				return werr
			}
			if nw != nr {
				return io.ErrShortWrite
			}
			if rc != nil {
				_ = rc.Flush()
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return nil
			}
			return rerr
		}
	}
}

// moveHeader adds src's fields to dst. A field dst does not have yet
// takes src's slice itself: src is the transport's answer header, which
// nothing reads after this. The slice is cut to its length, so an Add on
// dst reallocates rather than writing into whatever follows it.
func moveHeader(dst, src http.Header) {
	for k, vv := range src {
		if old, ok := dst[k]; ok {
			dst[k] = append(old, vv...)
			continue
		}
		dst[k] = vv[:len(vv):len(vv)]
	}
}

func copyHeader(dst, src http.Header) {
	for k, vv := range src {
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// maxQueryParams is net/url's and ReverseProxy's default bound on query
// parameters; a query with more is re-encoded (and cut) like one that
// does not parse.
const maxQueryParams = 10000

// cleanQueryParams is ReverseProxy's: a query that does not parse cleanly
// (a semicolon, a bad escape, too many parameters) is re-encoded from
// what url.ParseQuery makes of it, so the upstream cannot read it
// differently from the gateway.
func cleanQueryParams(s string) string {
	reencode := func(s string) string {
		v, _ := url.ParseQuery(s)
		return v.Encode()
	}
	if strings.Count(s, "&")+1 > maxQueryParams {
		return reencode(s)
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case ';':
			return reencode(s)
		case '%':
			if i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2]) {
				return reencode(s)
			}
			i += 3
		default:
			i++
		}
	}
	return s
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
