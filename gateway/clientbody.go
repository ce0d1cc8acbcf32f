package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBodyReadTimeout is how long a client may go without sending a
// byte of its request body, nginx's client_body_timeout: generous for a
// slow mobile link, yet a client that stops mid-body no longer holds its
// request and an upstream connection until the TCP keep-alive gives up.
const DefaultBodyReadTimeout = 60 * time.Second

// errClientBody marks every error that came from reading the client's
// request body. The transport reports such an error as its own failure,
// so without the mark a client that sends a broken body would count
// against the instance it was being forwarded to.
var errClientBody = errors.New("reading the client's request body")

// Messages of the body faults; 413 keeps msgBodyTooLarge.
const (
	msgBodyMalformed = "malformed or incomplete request body"
	msgBodyTimeout   = "request body not received in time"
)

// clientBodyError is a read error of the client's body; it matches
// errClientBody and the underlying error.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string   { return errClientBody.Error() + ": " + e.err.Error() }
func (e *clientBodyError) Unwrap() []error { return []error{errClientBody, e.err} }

// clientBody is the request body as the rest of the gateway reads it. It
// bounds every read by a deadline on the client's connection (the idle
// timeout from the last read, and the route timeout once the route is
// known), and it remembers the first read error: the transport may report
// a body failure as a cancelled or broken exchange instead, and the
// verdict must still name the client. It lives inside the exchange, so a
// body costs no allocation.
type clientBody struct {
	rc     io.ReadCloser
	w      http.ResponseWriter // the server's own, whose connection carries the body
	idle   time.Duration       // <= 0: no idle bound
	failed atomic.Pointer[clientBodyError]

	// mu orders deadline changes against Close: ReverseProxy closes the
	// body before its handler returns, and the transport goroutine may
	// still call Read afterwards, when the connection may already be
	// serving the client's next request, whose deadlines are not ours.
	mu     sync.Mutex
	until  time.Time // the route timeout's deadline; zero for none
	armed  bool      // a deadline of ours is set on the connection
	closed bool
}

// guardBody installs the body guard on r; w must be the server's writer.
func (ex *exchange) guardBody(w http.ResponseWriter, r *http.Request, idle time.Duration) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	ex.body.rc, ex.body.w, ex.body.idle = r.Body, w, idle
	r.Body = &ex.body
}

// bound makes the route timeout's deadline apply to reading the body too,
// so the timeout bounds the whole exchange: a client still sending (or
// stalling) when it passes is cut off, rather than holding the transport,
// which waits for the body before it gives up.
func (b *clientBody) bound(ctx context.Context) {
	d, ok := ctx.Deadline()
	if !ok {
		return
	}
	b.mu.Lock()
	b.until = d
	b.mu.Unlock()
}

func (b *clientBody) Read(p []byte) (int, error) {
	b.arm()
	n, err := b.rc.Read(p)
	switch {
	case err == nil:
	case err == io.EOF:
		// The whole body is in: the server now watches the connection
		// for the client going away, and our deadline must not fire on
		// that watch.
		b.disarm()
	default:
		b.mu.Lock()
		closed := b.closed
		b.mu.Unlock()
		if closed {
			return n, err // a read after Close is the caller's mistake, not the client's
		}
		e := &clientBodyError{err: err}
		b.failed.CompareAndSwap(nil, e)
		return n, e
	}
	return n, err
}

// arm sets the connection's read deadline for the next read: the idle
// timeout from now, or the route deadline when that comes first.
func (b *clientBody) arm() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	var d time.Time
	if b.idle > 0 {
		// A connection deadline is wall-clock time, so it is not taken
		// from the gateway's injectable clock.
		d = time.Now().Add(b.idle)
	}
	if !b.until.IsZero() && (d.IsZero() || b.until.Before(d)) {
		d = b.until
	}
	if d.IsZero() {
		return
	}
	if http.NewResponseController(b.w).SetReadDeadline(d) == nil {
		b.armed = true
	}
}

func (b *clientBody) disarm() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.armed && !b.closed {
		_ = http.NewResponseController(b.w).SetReadDeadline(time.Time{})
		b.armed = false
	}
}

// Close leaves an armed deadline in place: the server drains what is left
// of an unread body after the handler, and the deadline bounds that too.
func (b *clientBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return b.rc.Close()
}

// fault says who failed an exchange that got no usable upstream answer.
type fault uint8

const (
	faultUpstream      fault = iota // the instance: it counts against it
	faultClientGone                 // the client went away first (499)
	faultBodyTooLarge               // the body crossed -max-body-bytes (413)
	faultBodyTimeout                // the body stalled, or was not in by the route timeout (408)
	faultBodyMalformed              // bad chunked encoding, shorter than its Content-Length (400)
)

// inBody reports whether f is a fault of the request body (a 4xx).
func (f fault) inBody() bool { return f >= faultBodyTooLarge }

// classify is the one verdict on a failed exchange. The proxy's answer,
// outlier ejection, the circuit breaker, retries and the upstream error
// metric all use it, so a client's fault can never count against an
// instance in one of them and not in another. A fault reading the body
// wins over the context: a body read that hit the route deadline is the
// client's slowness, not the upstream's.
func classify(req *http.Request, err error) fault {
	if berr := bodyError(req, err); berr != nil {
		switch {
		case isBodyTooLarge(berr):
			return faultBodyTooLarge
		case isTimeout(berr):
			return faultBodyTimeout
		}
		return faultBodyMalformed
	}
	switch {
	case isBodyTooLarge(err):
		return faultBodyTooLarge
	case errors.Is(req.Context().Err(), context.Canceled):
		return faultClientGone
	}
	return faultUpstream
}

// clientFault reports whether a failed exchange was the client's doing.
// Such failures say nothing about the instance, so they must not eject
// it, open a breaker, spend the retry budget or count as upstream errors;
// otherwise any client could take instances out.
func clientFault(req *http.Request, err error) bool {
	return classify(req, err) != faultUpstream
}

// bodyError is the client body's read error behind err, or the one the
// exchange's body recorded (the transport may have reported it as a
// cancellation or a broken connection); nil when the body was fine.
// Calls the gateway makes for the request (forward auth, aggregate
// calls) share its exchange but never read its body, so a recorded error
// is always about the body being forwarded.
func bodyError(req *http.Request, err error) error {
	var be *clientBodyError
	if errors.As(err, &be) {
		return be
	}
	if ex := exchangeFrom(req.Context()); ex != nil {
		if be := ex.body.failed.Load(); be != nil {
			return be
		}
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// bodyFaultAnswer answers a body fault. The connection is closed after
// it: what the client sends next cannot be told from the rest of the
// broken body.
func (p *proxy) bodyFaultAnswer(w http.ResponseWriter, r *http.Request, ex *exchange, f fault, err error) {
	if berr := bodyError(r, err); berr != nil {
		err = berr
	}
	status, msg := http.StatusBadRequest, msgBodyMalformed
	switch f {
	case faultBodyTooLarge:
		status, msg = http.StatusRequestEntityTooLarge, msgBodyTooLarge
	case faultBodyTimeout:
		status, msg = http.StatusRequestTimeout, msgBodyTimeout
	}
	p.logger.Debug("client fault", "route", ex.route, "upstream", ex.upstream, "status", status, "error", err)
	w.Header().Set("Connection", "close")
	writeError(w, status, msg, ex.route)
}
