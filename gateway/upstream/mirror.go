package upstream

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gatewayco/gateway/gateway/metrics"
)

// MaxMirrorBody bounds the request body copied for mirrors (64 KiB): a
// copy is kept in memory until the primary has read the whole body, so a
// larger body (by Content-Length, or once more than this has streamed) is
// not mirrored, and counted as dropped (body_too_large). A copy holds its
// mirror's slot while its body is buffered, so one mirror buffers at most
// max_concurrency times this.
const MaxMirrorBody = 64 << 10

// MaxMirrorsInFlight bounds the copies in flight across every mirror of
// every route of the gateway, on top of each mirror's max_concurrency:
// with up to 4 mirrors on each of thousands of routes the per-mirror
// bounds alone add up to gigabytes of buffered bodies. 1,024 copies hold
// at most 64 MiB of bodies (1,024 × MaxMirrorBody); a sampled request
// beyond it is not copied, counted as dropped (gateway_limit).
const MaxMirrorsInFlight = 1024

// DefaultMirrorTimeout bounds a mirrored copy when its route has no
// timeout; otherwise the route's timeout bounds it.
const DefaultMirrorTimeout = 10 * time.Second

// mirrorDrain bounds what is read of a mirror's answer, so its connection
// can be reused; the rest is discarded by closing.
const mirrorDrain = 4 << 10

// MirrorSlots bounds one mirror's copies in flight. It outlives tables
// (the builder keeps it by route and mirror), so a table swap never lets
// more copies run than the mirror's max_concurrency.
type MirrorSlots struct{ c chan struct{} }

// NewMirrorSlots returns room for n copies in flight at once.
func NewMirrorSlots(n int) *MirrorSlots { return &MirrorSlots{c: make(chan struct{}, max(n, 1))} }

// Cap is how many copies may be in flight.
func (s *MirrorSlots) Cap() int { return cap(s.c) }

// Mirror sends copies of a share of an upstream's requests to another
// upstream and ignores the answers. Copies go out on their own
// goroutines, bounded by the slots, with their own deadline: the primary
// request never waits for one, and a copy's failure touches nothing of
// the primary (its status, breaker, retry budget or ejection), since the
// destination upstream has no breaker, retries or outlier tracking.
type Mirror struct {
	// To is the destination; it must have no breaker, retries, outlier
	// tracking or mirrors of its own.
	To *Upstream
	// Percent is the share of requests copied, in (0, 100].
	Percent float64
	// Slots bounds the copies in flight.
	Slots *MirrorSlots
	// Shared bounds the copies in flight of every mirror together (see
	// MaxMirrorsInFlight); nil means no gateway-wide bound.
	Shared *MirrorSlots
	// Timeout bounds one copy; zero means DefaultMirrorTimeout.
	Timeout time.Duration
	// Sample returns a number in [0, 100); a request is copied when it is
	// below Percent. Nil means math/rand/v2; tests inject their own.
	Sample func() float64
	// Metrics counts copies; nil counts nothing.
	Metrics *metrics.Mirror
}

// WithMirrors returns a copy of u that also sends each request to the
// mirrors that sample it (none: u itself).
func (u *Upstream) WithMirrors(ms []*Mirror) *Upstream {
	if len(ms) == 0 {
		return u
	}
	cp := *u
	cp.mirrors = ms
	return &cp
}

func (m *Mirror) sampled() bool {
	if m.Percent >= 100 {
		return true
	}
	var x float64
	if m.Sample != nil {
		x = m.Sample()
	} else {
		x = rand.Float64() * 100
	}
	return x < m.Percent
}

// mirrorCopy is what a copy is made of, taken from the request as the
// proxy sends it upstream: its headers already carry the gateway's
// forwarding headers and request ID, and its path is already stripped.
type mirrorCopy struct {
	method, uri, host string
	header            http.Header
}

// mirror starts the copies of req for the mirrors that sample it. It
// never blocks: a request without a body is copied at once; one with a
// body is copied when the primary has read all of it (see teeBody).
func (u *Upstream) mirror(req *http.Request) {
	if req.Header.Get("Upgrade") != "" {
		// A tunnel's handshake: a copy would open a second tunnel.
		return
	}
	// A copy takes its mirror's slot before anything is buffered for it,
	// so the bodies held for copies are bounded by max_concurrency too.
	var chosen []*Mirror
	for _, m := range u.mirrors {
		if m.sampled() && m.acquire() {
			chosen = append(chosen, m)
		}
	}
	if len(chosen) == 0 {
		return
	}
	c := &mirrorCopy{method: req.Method, uri: req.URL.RequestURI(), host: shadowHost(req.Host), header: req.Header.Clone()}
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		for _, m := range chosen {
			go m.send(c, nil)
		}
	case req.ContentLength > MaxMirrorBody:
		for _, m := range chosen {
			m.drop(metrics.MirrorDropBodyTooLarge)
		}
	default:
		// A retry's buffering (see retryable) reads the tee to its end
		// too, so a retried request is copied once, whole.
		// A request that never reaches the transport (an open breaker,
		// no instance) has its body neither read nor closed by it; the
		// end of the request gives the slots back then.
		tb := &teeBody{rc: req.Body, copy: c, to: chosen}
		tb.mu.Lock() // abandon may run at once, and reads stop
		tb.stop = context.AfterFunc(req.Context(), tb.abandon)
		tb.mu.Unlock()
		req.Body = tb
	}
}

// shadowHost marks a copy as Envoy does: "-shadow" after the host name,
// before any port, so the destination (and its logs) can tell a copy
// from a real request.
func shadowHost(h string) string {
	if host, port, err := net.SplitHostPort(h); err == nil {
		return net.JoinHostPort(host+"-shadow", port)
	}
	return h + "-shadow"
}

// acquire takes a slot for one copy, or counts the copy dropped.
func (m *Mirror) acquire() bool {
	select {
	case m.Slots.c <- struct{}{}:
	default:
		m.Metrics.Dropped(metrics.MirrorDropConcurrency)
		return false
	}
	if m.Shared == nil {
		return true
	}
	select {
	case m.Shared.c <- struct{}{}:
		return true
	default:
		<-m.Slots.c
		m.Metrics.Dropped(metrics.MirrorDropGatewayLimit)
		return false
	}
}

// free gives back the slots a copy took in acquire.
func (m *Mirror) free() {
	if m.Shared != nil {
		<-m.Shared.c
	}
	<-m.Slots.c
}

// drop gives back the slot of a copy that will not be sent, for reason.
func (m *Mirror) drop(reason string) {
	m.free()
	m.Metrics.Dropped(reason)
}

// send sends one copy with body (nil: none) and gives back its slot.
func (m *Mirror) send(c *mirrorCopy, body []byte) {
	defer m.free()
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = DefaultMirrorTimeout
	}
	// A fresh context: the primary's ends with the primary, and carries
	// its exchange, which the copy must not write to.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequestWithContext(ctx, c.method, "http://mirror"+c.uri, rd)
	if err != nil {
		m.Metrics.Sent(true)
		return
	}
	r.Header = c.header.Clone() // several mirrors may send one copy
	r.Host = c.host
	if body == nil {
		r.ContentLength = 0
	}
	resp, err := m.To.RoundTrip(r)
	if err != nil {
		m.Metrics.Sent(true)
		return
	}
	_, _ = io.CopyN(io.Discard, resp.Body, mirrorDrain)
	resp.Body.Close()
	m.Metrics.Sent(resp.StatusCode >= 500)
}

// teeBody is a request body on its way to the primary, copied (up to
// MaxMirrorBody) as the primary reads it, so the primary's streaming
// never waits for a mirror; when the primary has read all of it, the
// copies start. A body the primary never reads to the end is not
// mirrored.
type teeBody struct {
	rc   io.ReadCloser
	copy *mirrorCopy
	to   []*Mirror

	stop func() bool // cancels abandon once the copies started or dropped

	mu   sync.Mutex
	buf  []byte
	over bool // more than MaxMirrorBody came: no copy
	done bool // the copies were started or dropped, their slots given back or sent
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return n, err
	}
	if len(b.buf)+n > MaxMirrorBody {
		// Too large: the slots go back now, not at the body's end.
		b.over, b.buf = true, nil
		b.finish()
		return n, err
	}
	b.buf = append(b.buf, p[:n]...)
	if err == io.EOF {
		b.finish()
	}
	return n, err
}

// finish starts the copies, or drops them when the body was too large,
// once; b.mu is held.
func (b *teeBody) finish() {
	b.done = true
	b.stop()
	for _, m := range b.to {
		if b.over {
			m.drop(metrics.MirrorDropBodyTooLarge)
		} else {
			go m.send(b.copy, b.buf)
		}
	}
	b.buf = nil
}

func (b *teeBody) Close() error {
	b.abandon()
	return b.rc.Close()
}

// abandon drops the copies of a body the primary stopped reading before
// its end (or never read), once.
func (b *teeBody) abandon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	b.stop()
	for _, m := range b.to {
		m.drop(metrics.MirrorDropBodyIncomplete)
	}
}

// InFlight is how many copies hold a slot now.
func (s *MirrorSlots) InFlight() int { return len(s.c) }
