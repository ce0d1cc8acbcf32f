package exchange

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// errClientBody marks every error that came from reading the client's
// request body. The transport reports such an error as its own failure,
// so without the mark a client that sends a broken body would count
// against the instance it was being forwarded to.
var errClientBody = errors.New("reading the client's request body")

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
	// reading counts reads waiting on the client right now. When the
	// route deadline ends the exchange while one waits, the transport
	// may report the deadline before the read returns its own timeout:
	// the body was not in by the deadline, so the fault is the client's.
	reading atomic.Int32

	// mu orders deadline changes against Close: ReverseProxy closes the
	// body before its handler returns, and the transport goroutine may
	// still call Read afterwards, when the connection may already be
	// serving the client's next request, whose deadlines are not ours.
	mu     sync.Mutex
	until  time.Time // the route timeout's deadline; zero for none
	armed  bool      // a deadline of ours is set on the connection
	closed bool
}

// GuardBody installs the body guard on r: every read is bounded by idle
// (zero or less: no bound) from the last one, and its failures are known
// to be the client's. w must be the server's own writer, whose connection
// carries the body.
func (ex *Exchange) GuardBody(w http.ResponseWriter, r *http.Request, idle time.Duration) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	ex.body.rc, ex.body.w, ex.body.idle = r.Body, w, idle
	r.Body = &ex.body
}

// BoundBody makes ctx's deadline (the route timeout's) apply to reading
// the body too, so the timeout bounds the whole exchange: a client still
// sending (or stalling) when it passes is cut off, rather than holding the
// transport, which waits for the body before it gives up.
func (ex *Exchange) BoundBody(ctx context.Context) { ex.body.bound(ctx) }

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
	// Deferred, so a read failed by the deadline is recorded in failed
	// before reading drops: Classify, racing this read's return, sees one
	// or the other, never a gap with neither (which read as the
	// upstream's timeout under load).
	b.reading.Add(1)
	defer b.reading.Add(-1)
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
		if closed && !isTimeout(err) {
			// A read after Close is the caller's mistake, not the
			// client's. A timeout is not: that read started before Close
			// and ran into the deadline waiting for the client.
			return n, err
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

// Fault says who failed an exchange that got no usable upstream answer.
type Fault uint8

// The verdicts Classify gives.
const (
	FaultUpstream       Fault = iota // the instance: it counts against it
	FaultClientGone                  // the client went away first (499)
	FaultClientDeadline              // the gRPC client's own grpc-timeout ran out (408)
	FaultMeshRefused                 // a Connect upstream refused the gateway's identity: policy, not failure (403)
	FaultBodyTooLarge                // the body crossed -max-body-bytes (413)
	FaultBodyTimeout                 // the body stalled, or was not in by the route timeout (408)
	FaultBodyMalformed               // bad chunked encoding, shorter than its Content-Length (400)
)

// InBody reports whether f is a fault of the request body (a 4xx).
func (f Fault) InBody() bool { return f >= FaultBodyTooLarge }

// Classify is the one verdict on a failed exchange. The proxy's answer,
// outlier ejection, the circuit breaker, retries and the upstream error
// metric all use it, so a client's fault can never count against an
// instance in one of them and not in another. A fault reading the body
// wins over the context: a body read that hit the route deadline is the
// client's slowness, not the upstream's.
func Classify(req *http.Request, err error) Fault {
	if berr := BodyError(req, err); berr != nil {
		switch {
		case IsBodyTooLarge(berr):
			return FaultBodyTooLarge
		case isTimeout(berr):
			return FaultBodyTimeout
		}
		return FaultBodyMalformed
	}
	switch {
	case IsBodyTooLarge(err):
		return FaultBodyTooLarge
	case errors.Is(req.Context().Err(), context.Canceled):
		return FaultClientGone
	case errors.Is(err, ErrMeshRefused):
		return FaultMeshRefused
	}
	if ex := From(req.Context()); ex != nil && ex.ClientDeadline && DeadlinePassed(req.Context()) {
		// The client chose a deadline shorter than the route's: no
		// instance is to blame for not beating it.
		return FaultClientDeadline
	}
	return FaultUpstream
}

// ErrMeshRefused marks a Connect upstream's refusal of the gateway's
// certificate (a TLS alert from it: an intention denies the gateway, or
// it does not trust the gateway's CA). The instance is up and deciding,
// so the refusal is a 403 and counts against no instance.
var ErrMeshRefused = errors.New("the upstream refused the gateway's mesh identity")

// ClientFault reports whether a failed exchange was the client's doing
// (or, for FaultMeshRefused, the mesh's policy): not the instance's.
// Such failures say nothing about the instance, so they must not eject
// it, open a breaker, spend the retry budget or count as upstream errors;
// otherwise any client could take instances out.
func ClientFault(req *http.Request, err error) bool {
	return Classify(req, err) != FaultUpstream
}

// BodyError is the client body's read error behind err, or the one the
// exchange's body recorded (the transport may have reported it as a
// cancellation or a broken connection); nil when the body was fine.
// Calls the gateway makes for the request (forward auth, aggregate
// calls) share its exchange but never read its body, so a recorded error
// is always about the body being forwarded.
func BodyError(req *http.Request, err error) error {
	var be *clientBodyError
	if errors.As(err, &be) {
		return be
	}
	if ex := From(req.Context()); ex != nil {
		// reading is loaded before failed, the reverse of the order Read
		// updates them in, so a read returning its timeout meanwhile is
		// seen as waiting or as failed.
		waiting := ex.body.reading.Load() > 0
		if be := ex.body.failed.Load(); be != nil {
			return be
		}
		if waiting && errors.Is(req.Context().Err(), context.DeadlineExceeded) {
			return &clientBodyError{err: os.ErrDeadlineExceeded}
		}
	}
	return nil
}

// DeadlinePassed reports whether ctx's deadline is over, even if its
// timer has not yet fired: a transport error that arrives at the deadline
// (an upstream resetting the stream at the same instant) is the deadline.
func DeadlinePassed(ctx context.Context) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
