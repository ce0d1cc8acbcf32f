// Package h1 is the gateway's HTTP/1.1 client for plain-HTTP upstreams:
// an http.RoundTripper that writes a bodiless request and reads its
// answer on the caller's goroutine, over a pool of kept-alive
// connections.
//
// net/http's Transport gives every connection a reading and a writing
// goroutine and hands each request and answer between them and the
// caller over channels; it also reads ahead on every idle connection to
// notice the server closing it. On the gateway's forwarding path that
// machinery was a third of the CPU a proxied request cost (measured in
// bench/results/proxy.md). Here the caller writes the request, reads the
// answer's head with net/http's own parser (http.ReadResponse: the same
// framing, trailer and header rules), and reads the body through a thin
// wrapper that puts the connection back when the body ends.
//
// Everything else goes to Fallback, net/http's Transport, unchanged: a
// request with a body (it may need to stream both ways at once, wait for
// 100 Continue, or be rewound), an upgrade, a scheme other than http. So
// the fast path only ever carries requests that have nothing to stream.
package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Defaults of Options' zero values. The header bound is net/http's own
// default, so an upstream answer the fallback would take is taken here.
const (
	DefaultMaxIdlePerHost         = 256
	DefaultIdleTimeout            = 90 * time.Second
	DefaultDialTimeout            = 5 * time.Second
	DefaultMaxResponseHeaderBytes = 10 << 20
	// DefaultMax1xx bounds the informational answers (100, 103) one
	// request may receive before its final one: each is passed to the
	// client, and an upstream sending them without end would otherwise
	// hold the exchange until its timeout.
	DefaultMax1xx = 16
)

// Options configure a Transport; zero values take the defaults above.
type Options struct {
	// Fallback carries every request the fast path does not (see the
	// package comment). Required.
	Fallback http.RoundTripper
	// Dial opens a connection; nil dials TCP with DialTimeout and a 30 s
	// keep-alive.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialTimeout bounds a dial when Dial is nil.
	DialTimeout time.Duration
	// MaxIdlePerHost bounds the idle connections kept per host:port.
	MaxIdlePerHost int
	// IdleTimeout closes a connection idle that long.
	IdleTimeout time.Duration
	// MaxResponseHeaderBytes bounds an answer's head (status line and
	// header fields), each informational answer's counted afresh.
	MaxResponseHeaderBytes int64
	// Max1xx bounds the informational answers before the final one.
	Max1xx int
}

// ErrHeaderTooLarge is an upstream answer whose head passed
// MaxResponseHeaderBytes.
var ErrHeaderTooLarge = errors.New("h1: upstream answer head too large")

// ErrTooMany1xx is an upstream that sent more than Max1xx informational
// answers to one request.
var ErrTooMany1xx = errors.New("h1: too many informational answers")

// errServerClosedIdle is a kept-alive connection the server had closed:
// nothing of an answer came back, so a request that may be sent twice is
// sent again on a new connection, as net/http does.
var errServerClosedIdle = errors.New("h1: server closed idle connection")

// Transport is the fast-path RoundTripper. It is safe for concurrent use.
type Transport struct {
	fallback  http.RoundTripper
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle   int
	idleAfter time.Duration
	maxHead   int64
	max1xx    int

	mu    sync.Mutex
	hosts map[string]*host // by host:port; a host with no connection is dropped
}

// host is one host:port's connections. Guarded by Transport.mu.
type host struct {
	addr string
	idle []*conn // most recently used last
	open int     // connections alive, idle or in use
}

// New returns a Transport configured by o.
func New(o Options) *Transport {
	t := &Transport{fallback: o.Fallback, dial: o.Dial, maxIdle: o.MaxIdlePerHost, idleAfter: o.IdleTimeout,
		maxHead: o.MaxResponseHeaderBytes, max1xx: o.Max1xx, hosts: map[string]*host{}}
	if t.maxIdle <= 0 {
		t.maxIdle = DefaultMaxIdlePerHost
	}
	if t.idleAfter <= 0 {
		t.idleAfter = DefaultIdleTimeout
	}
	if t.maxHead <= 0 {
		t.maxHead = DefaultMaxResponseHeaderBytes
	}
	if t.max1xx <= 0 {
		t.max1xx = DefaultMax1xx
	}
	if t.dial == nil {
		timeout := o.DialTimeout
		if timeout <= 0 {
			timeout = DefaultDialTimeout
		}
		t.dial = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	}
	return t
}

// fast reports whether req takes the fast path: plain HTTP, nothing to
// stream (no body, no upgrade, no 100-continue, no trailers).
func fast(req *http.Request) bool {
	if req.URL == nil || req.URL.Scheme != "http" || req.Header == nil {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	if len(req.Trailer) > 0 {
		return false
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return false
	}
	if _, ok := req.Header["Expect"]; ok {
		return false
	}
	return true
}

// RoundTrip sends req and returns its answer; see the package comment
// for which requests it carries itself.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !fast(req) {
		return t.fallback.RoundTrip(req)
	}
	if err := validate(req); err != nil {
		return nil, err
	}
	addr := hostPort(req.URL.Host)
	ctx := req.Context()
	if ctx.Err() != nil {
		// Ended already (the client hung up while a hedge, an aggregate
		// call or forward auth waited its turn): nothing is sent, as with
		// net/http. The cancel watch would break the exchange off only
		// after the request had gone out on a pooled connection.
		return nil, context.Cause(ctx)
	}
	replay := replayable(req)
	c, err := t.get(ctx, addr, false)
	if err != nil {
		return nil, err
	}
	res, err := c.roundTrip(req)
	// Retried once, as net/http does: a kept-alive connection the server
	// had closed before anything of an answer came back. The retry dials
	// afresh: the server that closed one idle connection (a restart, its
	// own idle timeout) has likely closed the others too. Only a reused
	// connection's failure is errServerClosedIdle (see conn.failed).
	if err != nil && errors.Is(err, errServerClosedIdle) && replay && ctx.Err() == nil {
		if c, err = t.get(ctx, addr, true); err != nil {
			return nil, err
		}
		res, err = c.roundTrip(req)
	}
	return res, err
}

// CloseIdleConnections closes the idle connections, the fast path's and
// the fallback's.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	var idle []*conn
	for _, h := range t.hosts {
		idle = append(idle, h.idle...)
		h.idle = nil
	}
	t.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
	if ci, ok := t.fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// validate refuses what net/http's Transport refuses before sending:
// header fields that could split the request, a method that is no token,
// no host to send to.
func validate(req *http.Request) error {
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("h1: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				// The value is not quoted: it may be a credential.
				return fmt.Errorf("h1: invalid header field value for %q", k)
			}
		}
	}
	if req.Method != "" && !validMethod(req.Method) {
		return fmt.Errorf("h1: invalid method %q", req.Method)
	}
	if req.URL.Host == "" {
		return errors.New("h1: no Host in request URL")
	}
	return nil
}

func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return len(m) > 0
}

// replayable reports whether req may be sent again after a connection
// turned out closed: net/http's rule for a bodiless request.
func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, a := req.Header["Idempotency-Key"]
	_, b := req.Header["X-Idempotency-Key"]
	return a || b
}

// hostPort is addr with the http port when it names none.
func hostPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(trimBrackets(addr), "80")
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

// get returns an idle connection to addr, newest first, or a new one
// (always a new one when fresh). Every idle connection is peeked first
// (alive), whatever the request: one holding bytes nobody asked for
// (sent after its last answer had been read) would have them read as
// this request's answer, and one the server closed would lose a request
// that may not be sent twice. The peek is one non-blocking system call;
// the retry in RoundTrip is left for a close racing it.
func (t *Transport) get(ctx context.Context, addr string, fresh bool) (*conn, error) {
	for !fresh {
		t.mu.Lock()
		h := t.hosts[addr]
		var c *conn
		if h != nil && len(h.idle) > 0 {
			c = h.idle[len(h.idle)-1]
			h.idle[len(h.idle)-1] = nil
			h.idle = h.idle[:len(h.idle)-1]
		}
		t.mu.Unlock()
		if c == nil {
			break
		}
		c.timer.Stop()
		if !c.alive() {
			c.close()
			continue
		}
		return c, nil
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	nc, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &conn{t: t, addr: addr, nc: nc}
	c.lim = limitReader{r: nc, n: -1}
	c.br = bufio.NewReaderSize(&c.lim, 4<<10)
	c.bw = bufio.NewWriterSize(nc, 4<<10)
	t.mu.Lock()
	h := t.hosts[addr]
	if h == nil {
		h = &host{addr: addr}
		t.hosts[addr] = h
	}
	h.open++
	t.mu.Unlock()
	return c, nil
}

// put returns c to its host's idle list, or closes it when the list is
// full. The idle timer is armed before c is listed: once listed, get may
// take c and stop the timer at any moment.
func (t *Transport) put(c *conn) {
	c.ctx, c.stop = nil, nil // not kept alive by an idle connection
	if c.timer == nil {
		c.timer = time.AfterFunc(t.idleAfter, c.expire)
	} else {
		c.timer.Reset(t.idleAfter)
	}
	t.mu.Lock()
	h := t.hosts[c.addr]
	if h == nil || len(h.idle) >= t.maxIdle {
		t.mu.Unlock()
		c.close()
		return
	}
	h.idle = append(h.idle, c)
	t.mu.Unlock()
}

// dropped counts c's close in its host, dropping the host when no
// connection to it is left, so hosts that left the catalog leave no
// entry behind.
func (t *Transport) dropped(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.hosts[c.addr]
	if h == nil {
		return
	}
	for i, ic := range h.idle {
		if ic == c {
			h.idle = slices.Delete(h.idle, i, i+1)
			break
		}
	}
	if h.open--; h.open <= 0 {
		delete(t.hosts, c.addr)
	}
}

// conn is one connection to an upstream. It carries one exchange at a
// time; between exchanges it is idle in its host's list.
type conn struct {
	t     *Transport
	addr  string
	nc    net.Conn
	lim   limitReader
	br    *bufio.Reader
	bw    *bufio.Writer
	timer *time.Timer // closes it when idle too long; nil until first idle

	exchanges int    // exchanges begun on it, the current one included
	peek      peeker // see alive; used by the connection's owner only

	closeOnce sync.Once

	// Of the current exchange; see roundTrip.
	ctx      context.Context
	stop     func() bool // ends the watch on ctx
	canceled bool        // set by the watch before it breaks the connection
	cmu      sync.Mutex  // guards canceled
}

// expire closes c if it is still idle when its idle time runs out. It
// takes c off the idle list under the lock, so get cannot hand out a
// connection being closed.
func (c *conn) expire() {
	c.t.mu.Lock()
	idle := false
	if h := c.t.hosts[c.addr]; h != nil {
		for i, ic := range h.idle {
			if ic == c {
				h.idle = slices.Delete(h.idle, i, i+1)
				idle = true
				break
			}
		}
	}
	c.t.mu.Unlock()
	if idle {
		c.close()
	}
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		if c.timer != nil {
			c.timer.Stop()
		}
		c.nc.Close()
		c.t.dropped(c)
	})
}

// aLongTimeAgo is a deadline in the past: setting it makes any blocked
// read or write on the connection return at once.
var aLongTimeAgo = time.Unix(1, 0)

// cancel breaks the exchange off when its context ends.
func (c *conn) cancel() {
	c.cmu.Lock()
	c.canceled = true
	c.cmu.Unlock()
	_ = c.nc.SetDeadline(aLongTimeAgo)
}

func (c *conn) wasCanceled() bool {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	return c.canceled
}

// failed is err as the caller sees it: the context's cause when the
// context ended the exchange (what the gateway's classification reads),
// errServerClosedIdle when a kept-alive connection gave nothing back.
func (c *conn) failed(err error, readNothing bool) error {
	if c.wasCanceled() {
		return context.Cause(c.ctx)
	}
	if readNothing && c.exchanges > 1 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isBroken(err)) {
		return fmt.Errorf("%w: %w", errServerClosedIdle, err)
	}
	return err
}

// roundTrip carries req's exchange on c. On failure c is closed.
func (c *conn) roundTrip(req *http.Request) (*http.Response, error) {
	c.ctx = req.Context()
	c.exchanges++
	c.cmu.Lock()
	c.canceled = false
	c.cmu.Unlock()
	c.stop = context.AfterFunc(c.ctx, c.cancel)
	if err := req.Write(c.bw); err != nil {
		// Nothing was read: a write that broke on a kept-alive
		// connection (a head past the buffer flushes early) is the
		// server's close as much as an empty read is.
		return nil, c.abort(err, true)
	}
	if err := c.bw.Flush(); err != nil {
		return nil, c.abort(err, true)
	}
	res, err := c.readHead(req)
	if err != nil {
		return nil, c.abort(err, c.lim.total == 0)
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		// Unasked (upgrades go to the fallback): the connection is the
		// other protocol's now and is never reused.
		res.Body = &body{rc: res.Body, c: c, res: res, req: req, noReuse: true}
		return res, nil
	}
	if res.Body == http.NoBody {
		c.finish(res, req, true)
		return res, nil
	}
	res.Body = &body{rc: res.Body, c: c, res: res, req: req}
	return res, nil
}

// readHead reads the answer's head, passing informational answers to
// the request's trace (the forwarding path sends them on to the client).
func (c *conn) readHead(req *http.Request) (*http.Response, error) {
	c.lim.total, c.lim.exhausted = 0, false
	trace := httptrace.ContextClientTrace(c.ctx)
	for n := 0; ; n++ {
		c.lim.n = c.t.maxHead
		res, err := http.ReadResponse(c.br, req)
		c.lim.n = -1
		if err != nil {
			if c.lim.exhausted {
				return nil, ErrHeaderTooLarge
			}
			return nil, err
		}
		if res.StatusCode < 100 || res.StatusCode > 199 || res.StatusCode == http.StatusSwitchingProtocols {
			return res, nil
		}
		if n >= c.t.max1xx {
			return nil, ErrTooMany1xx
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(res.StatusCode, textproto.MIMEHeader(res.Header)); err != nil {
				return nil, err
			}
		}
	}
}

// abort ends a failed exchange: c is closed, and err is reported as
// failed makes it.
func (c *conn) abort(err error, readNothing bool) error {
	c.stop()
	err = c.failed(err, readNothing)
	c.close()
	return err
}

// finish ends an exchange whose answer was read to its end (eof) or
// given up: c goes back to the idle list only if nothing about it is in
// doubt.
func (c *conn) finish(res *http.Response, req *http.Request, eof bool) {
	// stop false: the context ended and its watch has run or is
	// running, so the connection's deadline is spoilt.
	watched := c.stop()
	if eof && watched && !res.Close && !req.Close && c.br.Buffered() == 0 {
		c.t.put(c)
		return
	}
	c.close()
}

// body is an answer's body: it returns the connection when the body
// ends and reports a read the context broke off as the context's cause.
type body struct {
	rc      io.ReadCloser
	c       *conn
	res     *http.Response
	req     *http.Request
	noReuse bool

	mu     sync.Mutex
	done   bool  // the exchange ended: the connection is no longer the body's
	closed bool  // Close was called
	err    error // what a Read returns once done: io.EOF after the end, as net/http's
}

// errBodyClosed is a read after Close.
var errBodyClosed = errors.New("h1: read on closed response body")

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	done, closed, rerr := b.done, b.closed, b.err
	b.mu.Unlock()
	if closed {
		return 0, errBodyClosed
	}
	if done {
		// The connection may carry another exchange by now: the body
		// answers for itself, never from it.
		return 0, rerr
	}
	n, err := b.rc.Read(p)
	switch {
	case err == nil:
	case err == io.EOF:
		b.end(!b.noReuse, io.EOF)
	default:
		if b.c.wasCanceled() {
			err = context.Cause(b.c.ctx)
		}
		b.end(false, err)
	}
	return n, err
}

// Close gives the body up; unread, the connection cannot carry another
// exchange and is closed, as net/http does.
func (b *body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.end(false, errBodyClosed)
	return nil
}

// end ends the exchange once; err is what later reads return.
func (b *body) end(eof bool, err error) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done, b.err = true, err
	b.mu.Unlock()
	b.c.finish(b.res, b.req, eof)
}

// limitReader is the connection's reader, bounding what one answer head
// may take while n >= 0, and counting what an exchange read.
type limitReader struct {
	r         io.Reader
	n         int64 // bytes the head may still take; -1: unbounded
	total     int64 // bytes read since the exchange began
	exhausted bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n == 0 {
		l.exhausted = true
		return 0, ErrHeaderTooLarge
	}
	if l.n > 0 && int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	if l.n > 0 {
		l.n -= int64(n)
	}
	l.total += int64(n)
	return n, err
}
