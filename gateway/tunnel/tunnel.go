// Package tunnel keeps the gateway's WebSocket tunnels: client connections
// that left net/http's hands when an upstream switched protocols. The
// server's Shutdown neither waits for nor closes a hijacked connection,
// and its idle timeout no longer applies, so the Tracker does both: it
// bounds how many tunnels are open, closes one that has carried no byte
// either way for its idle timeout, lets them run through a drain and
// closes what is left at its end, and counts them in the metrics.
package tunnel

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatewayco/gateway/gateway/metrics"
)

// DefaultMax bounds the tunnels open at once unless configured otherwise:
// half of gateway.DefaultMaxConns, so long-lived tunnels can never hold
// every client connection slot and leave none for ordinary requests.
const DefaultMax = 5000

// DefaultMaxPerClient bounds the tunnels one client address (an IPv6
// client: its /64) holds at once unless configured otherwise, so one
// client cannot take every slot of Max: far more than a browser opens (a tab or two per app), while
// leaving room for a few hundred users behind one NAT.
const DefaultMaxPerClient = 100

// Sentinel errors of Reserve; the proxy answers both with 503.
var (
	// ErrFull refuses a tunnel while Max are open, or MaxPerClient of
	// the same client.
	ErrFull = errors.New("too many open tunnels")
	// ErrClosed refuses a tunnel once shutdown has begun.
	ErrClosed = errors.New("gateway shutting down")
)

// Why a tunnel closed, as gateway_tunnels_closed_total's reason label.
const (
	// ReasonIdle: no byte either way for the route's idle_timeout.
	ReasonIdle = "idle"
	// ReasonShutdown: still open when the drain after SIGTERM ended.
	ReasonShutdown = "shutdown"
	// ReasonClient: the client's side failed or closed first.
	ReasonClient = "client"
	// ReasonUpstream: the upstream's side closed first (also how a
	// WebSocket close handshake ends: the server closes TCP first).
	ReasonUpstream = "upstream"
)

// Options configure New. The zero value is usable.
type Options struct {
	// Max bounds the tunnels open (or handshaking) at once; zero means
	// DefaultMax, negative means no limit.
	Max int
	// MaxPerClient bounds the tunnels of one client address; zero means
	// DefaultMaxPerClient, negative means no limit.
	MaxPerClient int
	// Now is the clock idle time is measured by; nil means time.Now.
	Now func() time.Time
	// AfterFunc schedules f after d and returns a stop function, like
	// time.AfterFunc; nil means time.AfterFunc. Tests pass a clock they
	// move by hand.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
	// Metrics records open tunnels, openings, closings and bytes; nil
	// records none.
	Metrics *metrics.Metrics
}

// Tracker keeps every tunnel of one gateway. It is safe for concurrent use.
type Tracker struct {
	max       int
	perClient int
	now       func() time.Time
	afterFunc func(time.Duration, func()) func() bool
	metrics   *metrics.Tunnels // nil without metrics

	mu       sync.Mutex
	slots    int // reserved: handshaking plus open
	open     map[*Tunnel]struct{}
	perRoute map[string]int // open tunnels by route
	clients  map[string]int // slots by client address; only addresses holding one
	closing  bool           // Shutdown began: no new tunnel
	cutoff   bool           // the drain ended: a tunnel opening now is closed at once
	changed  chan struct{}  // closed and replaced whenever a tunnel ends
}

// New returns an empty tracker.
func New(opts Options) *Tracker {
	t := &Tracker{max: opts.Max, perClient: opts.MaxPerClient, clients: map[string]int{}, now: opts.Now, afterFunc: opts.AfterFunc, metrics: opts.Metrics.Tunnels(),
		open: map[*Tunnel]struct{}{}, perRoute: map[string]int{}, changed: make(chan struct{})}
	if t.max == 0 {
		t.max = DefaultMax
	}
	if t.perClient == 0 {
		t.perClient = DefaultMaxPerClient
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.afterFunc == nil {
		t.afterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	return t
}

// Reserve takes a slot for an upgrade request of route from client (its
// address) before the handshake is sent, so a client cannot make the
// gateway dial upstreams for tunnels it will refuse; ErrFull or ErrClosed
// when there is none. The caller must call Done when the request ends,
// tunnel or not.
func (t *Tracker) Reserve(route, client string) (*Tunnel, error) {
	client = clientKey(client)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closing:
		return nil, ErrClosed
	case t.max > 0 && t.slots >= t.max:
		return nil, ErrFull
	case t.perClient > 0 && t.clients[client] >= t.perClient:
		return nil, ErrFull
	}
	t.slots++
	t.clients[client]++
	return &Tunnel{t: t, route: route, client: client, m: t.metrics.Route(route)}, nil
}

// clientKey is what MaxPerClient counts by: the address, except that an
// IPv6 client counts by its /64, the block one subscriber or host is
// usually given. Counted by /128, one client could take every slot of
// Max from addresses of its own block.
func clientKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is6() || a.Is4In6() {
		return addr
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// AfterFunc schedules f after d on the tracker's clock (Options.AfterFunc)
// and returns its stop function; the proxy times handshakes with it, so
// tests move one clock for both.
func (t *Tracker) AfterFunc(d time.Duration, f func()) (stop func() bool) { return t.afterFunc(d, f) }

// Open counts the open tunnels, in total and of route.
func (t *Tracker) Open(route string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if route == "" {
		return len(t.open)
	}
	return t.perRoute[route]
}

// Shutdown refuses new tunnels, lets the open ones run until ctx ends (the
// drain), then closes those left and waits for their handlers to finish,
// so the process never exits under a tunnel still copying. It returns how
// many it closed. Tunnels routinely outlive any drain, so closing them at
// its end is the expected outcome, not a failed drain.
func (t *Tracker) Shutdown(ctx context.Context) (closed int) {
	t.mu.Lock()
	t.closing = true
	t.mu.Unlock()
	if t.waitEmpty(ctx.Done()) {
		return 0
	}
	t.mu.Lock()
	t.cutoff = true
	left := make([]*Tunnel, 0, len(t.open))
	for tn := range t.open {
		left = append(left, tn)
	}
	t.mu.Unlock()
	for _, tn := range left {
		tn.end(ReasonShutdown)
	}
	// Closing a connection unblocks its copies at once; each handler
	// then returns and ends its tunnel.
	t.waitEmpty(nil)
	return len(left)
}

// waitEmpty waits until no tunnel is open (true) or stop is closed (false).
func (t *Tracker) waitEmpty(stop <-chan struct{}) bool {
	for {
		t.mu.Lock()
		n, changed := len(t.open), t.changed
		t.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-changed:
		case <-stop:
			return false
		}
	}
}

// Tunnel is one upgrade request's slot, and from Attach on its tunnel.
type Tunnel struct {
	t      *Tracker
	route  string
	client string
	m      *metrics.TunnelRoute // nil without metrics

	idle   time.Duration
	last   atomic.Int64 // Unix nanoseconds of the last byte either way
	down   atomic.Int64 // bytes towards the client
	reason atomic.Pointer[string]

	mu       sync.Mutex
	conn     net.Conn // the client's connection; nil until Attach
	stop     func() bool
	finished bool
}

// Attach makes c, the client's hijacked connection, the tunnel's: it is
// closed after idle (zero or less: no bound) without a byte either way,
// or at the end of a drain. The returned connection must be used in c's
// place; it counts bytes and notes which side ended first.
func (tn *Tunnel) Attach(c net.Conn, idle time.Duration) net.Conn {
	tc := &conn{Conn: c, tn: tn}
	tn.idle = idle
	tn.last.Store(tn.t.now().UnixNano())
	t := tn.t
	t.mu.Lock()
	t.open[tn] = struct{}{}
	t.perRoute[tn.route]++
	cutoff := t.cutoff
	t.mu.Unlock()
	tn.m.Opened()
	tn.mu.Lock()
	tn.conn = c
	if idle > 0 {
		tn.stop = t.afterFunc(idle, tn.checkIdle)
	}
	tn.mu.Unlock()
	if cutoff {
		tn.end(ReasonShutdown)
	}
	return tc
}

// checkIdle runs when the idle timeout may have passed: it closes the
// tunnel if no byte moved for idle, and otherwise looks again when the
// rest of the timeout is up.
func (tn *Tunnel) checkIdle() {
	quiet := tn.t.now().Sub(time.Unix(0, tn.last.Load()))
	if quiet >= tn.idle {
		tn.end(ReasonIdle)
		return
	}
	tn.mu.Lock()
	defer tn.mu.Unlock()
	if !tn.finished {
		tn.stop = tn.t.afterFunc(tn.idle-quiet, tn.checkIdle)
	}
}

// note records why the tunnel is ending; the first reason stands.
func (tn *Tunnel) note(reason string) { tn.reason.CompareAndSwap(nil, &reason) }

// end closes the client's connection for reason; the proxy's copies then
// fail and its handler returns.
func (tn *Tunnel) end(reason string) {
	tn.note(reason)
	tn.mu.Lock()
	c := tn.conn
	tn.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// BytesDown is how many bytes the tunnel carried towards the client, for
// the access log.
func (tn *Tunnel) BytesDown() int64 { return tn.down.Load() }

// Done gives the slot back when the upgrade request's handler returns; for
// a tunnel, that is when both copies have stopped. It closes the
// connection (the proxy already has), stops the idle timer and records
// the closing.
func (tn *Tunnel) Done() {
	tn.mu.Lock()
	tn.finished = true
	c, stop := tn.conn, tn.stop
	tn.mu.Unlock()
	if stop != nil {
		stop()
	}
	t := tn.t
	t.mu.Lock()
	t.slots--
	if t.clients[tn.client]--; t.clients[tn.client] <= 0 {
		delete(t.clients, tn.client)
	}
	if c != nil {
		delete(t.open, tn)
		if t.perRoute[tn.route]--; t.perRoute[tn.route] == 0 {
			delete(t.perRoute, tn.route)
		}
		close(t.changed)
		t.changed = make(chan struct{})
	}
	t.mu.Unlock()
	if c == nil {
		return
	}
	_ = c.Close()
	reason := ReasonUpstream
	if r := tn.reason.Load(); r != nil {
		reason = *r
	}
	tn.m.Closed(reason)
}

// conn is the client's side of a tunnel as the proxy copies through it:
// reads are bytes towards the upstream, writes bytes towards the client.
type conn struct {
	net.Conn
	tn *Tunnel
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.tn.last.Store(c.tn.t.now().UnixNano())
		c.tn.m.Bytes(metrics.TunnelUp, n)
	}
	if err != nil {
		// EOF or a failure: the client's side ended first, unless an
		// earlier reason (idle, shutdown, the upstream) closed it.
		c.tn.note(ReasonClient)
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.tn.last.Store(c.tn.t.now().UnixNano())
		c.tn.down.Add(int64(n))
		c.tn.m.Bytes(metrics.TunnelDown, n)
	}
	if err != nil {
		c.tn.note(ReasonClient)
	}
	return n, err
}

// CloseWrite is how the proxy passes on the upstream's end of stream.
func (c *conn) CloseWrite() error {
	c.tn.note(ReasonUpstream)
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close without an earlier reason is the proxy ending the tunnel because
// the upstream's side failed.
func (c *conn) Close() error {
	c.tn.note(ReasonUpstream)
	return c.Conn.Close()
}

var _ io.ReadWriteCloser = (*conn)(nil)
