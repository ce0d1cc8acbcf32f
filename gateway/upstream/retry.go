package upstream

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"

	"go.opentelemetry.io/otel/trace"

	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/gateway/tracing"
)

// Retry is an upstream's retry behaviour; the zero value never retries.
type Retry struct {
	// Retries is how many more instances a failed attempt may try.
	Retries int
	// NonIdempotent lets PUT and DELETE be retried too.
	NonIdempotent bool
	// Budget caps retries at a share of the route's requests; it is
	// shared by the route's tables, and required when Retries > 0.
	Budget *policy.RetryBudget
}

// maxReplayBody bounds the request body buffered so a PUT can be replayed.
const maxReplayBody = 1 << 20

// send picks an instance and forwards req, retrying on another instance
// when the attempt failed before any answer reached the client: on a
// connection error or a 502/503/504 status, which send sees before
// ReverseProxy has written anything; a gRPC call, on a failed connect
// only. All attempts share req's context, so the route timeout bounds
// them together.
func (u *Upstream) send(req *http.Request) (*http.Response, error) {
	tries := 1
	// dialOnly: a gRPC call is retried only when its attempt provably
	// never reached an instance (the connection was refused or timed out
	// before a byte of the request was sent), since a call may act on
	// the upstream as soon as it arrives; its body, streamed and never
	// buffered, is then still unread and goes to the next instance.
	dialOnly := false
	var body io.ReadCloser
	if u.retry.Retries > 0 {
		ok, err := u.retryable(req)
		if err != nil {
			// The client's body broke while it was buffered: no
			// instance has seen the request, and none is blamed.
			return nil, err
		}
		switch {
		case ok:
			tries += u.retry.Retries
		case exchange.IsGRPC(req):
			tries += u.retry.Retries
			dialOnly, body = true, req.Body
		}
	}
	if u.retry.Budget != nil {
		u.retry.Budget.Request()
	}
	view := u.newView()
	defer releaseView(view)
	u.avoidPicks(req, view)
	if u.sticky != nil {
		view.pinned = u.sticky.pinned(req) + 1
	}
	for attempt := 1; ; attempt++ {
		i := u.pick(view)
		if i < 0 {
			if u.metrics != nil {
				u.noInstance.Record(true)
			}
			return nil, ErrNoInstance
		}
		r := req
		if attempt > 1 {
			if ex := exchange.From(req.Context()); ex != nil {
				ex.Retries = attempt - 1
			}
			r = req.Clone(req.Context())
			if req.GetBody != nil {
				r.Body, _ = req.GetBody()
			}
		}
		var held *heldBody
		if dialOnly && body != nil && body != http.NoBody {
			held = &heldBody{rc: body}
			r.Body = held
		}
		span := u.traceAttempt(r, i, attempt-1)
		resp, err := u.to(r, i)
		tracing.EndAttempt(span, resp, err)
		view.tried = append(view.tried, i)
		if attempt >= tries || len(view.tried) >= len(u.hosts) {
			return resp, err
		}
		if dialOnly && !(isDialError(err) && req.Context().Err() == nil && !held.wasRead()) {
			return resp, err
		}
		if !dialOnly && !retryWorthy(req, resp, err) {
			return resp, err
		}
		// A failed dial never reached the service, so retrying it adds no
		// load there; everything else spends the budget.
		if !isDialError(err) && !u.retry.Budget.TryRetry() {
			return resp, err
		}
		if resp != nil {
			// The answer is discarded; draining a little lets the
			// connection be reused.
			_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
			resp.Body.Close()
		}
	}
}

// retryable reports whether req may be sent twice: GET, HEAD, OPTIONS and
// TRACE always, PUT and DELETE when the route allows it, POST and PATCH
// never. A body must be replayable; a small one is buffered for that, and
// an error reading it (the client's fault) is returned.
func (u *Upstream) retryable(req *http.Request) (bool, error) {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	case http.MethodPut, http.MethodDelete:
		if !u.retry.NonIdempotent {
			return false, nil
		}
	default:
		return false, nil
	}
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil {
		return true, nil
	}
	if req.ContentLength < 0 || req.ContentLength > maxReplayBody {
		return false, nil
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxReplayBody+1))
	req.Body.Close()
	if err != nil {
		return false, err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	if int64(len(body)) != req.ContentLength {
		// Cannot happen with a server request, whose body ends at its
		// Content-Length or fails; sent once as read otherwise.
		return false, nil
	}
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return true, nil
}

// heldBody is a streamed body lent to one attempt: the transport closes
// a request's body when the attempt fails, but one it never read is
// still whole, so it is kept for the next attempt instead (the server
// closes it when the call ends).
type heldBody struct {
	rc   io.ReadCloser
	mu   sync.Mutex
	read bool
}

func (b *heldBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	b.read = true
	b.mu.Unlock()
	return b.rc.Read(p)
}

func (b *heldBody) Close() error {
	if b.wasRead() {
		return b.rc.Close()
	}
	return nil
}

// wasRead reports whether the attempt read any of the body; a nil
// heldBody (no body) never was.
func (b *heldBody) wasRead() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.read
}

// isDialError reports whether err is a failure to connect, as opposed to
// one after the request may have reached the instance.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// retryWorthy: a connection error while the request's context is still
// live (the route timeout or the client ending it is final) and that was
// not the client's fault (another instance would fail the same way), or
// a status meaning "this instance cannot serve now".
func retryWorthy(req *http.Request, resp *http.Response, err error) bool {
	if err != nil {
		return req.Context().Err() == nil && !exchange.ClientFault(req, err)
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// instanceFailed is the verdict outlier ejection records: only failures
// that say "this instance cannot serve" count: no connection, a reset, a
// timeout, or 502/503/504. A client's fault (see exchange.Classify: it went away,
// or its body broke or stalled) or a cancelled aggregate call says
// nothing about the instance.
func instanceFailed(req *http.Request, resp *http.Response, err error) bool {
	if err != nil {
		return !exchange.ClientFault(req, err)
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// traceAttempt starts the client span of attempt retry+1 of r to
// instance i (a no-op span with tracing off) and writes its trace
// context into r's headers.
func (u *Upstream) traceAttempt(r *http.Request, i, retry int) trace.Span {
	if !tracing.On() {
		return tracing.StartAttempt(r, "", "", "", retry)
	}
	route := ""
	if ex := exchange.From(r.Context()); ex != nil {
		route = ex.Route
	}
	return tracing.StartAttempt(r, route, u.service.Name, u.hosts[i], retry)
}
