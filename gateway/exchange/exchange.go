// Package exchange is the per-request record every layer of the gateway
// shares, and the answers and verdicts that go with it: the gateway's own
// JSON errors, whose fault a failed exchange was (client or upstream), and
// the forwarding headers an upstream may believe. It sits below every
// other gateway package, so a router, a policy, an upstream and an
// aggregate can all read and write the same request's record without
// importing one another.
package exchange

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/gatewayco/gateway/gateway/metrics"
)

// HeaderRequestID carries the request's correlation ID to the upstream and
// back to the client; the access log records it too.
const HeaderRequestID = "X-Request-Id"

// Exchange is the per-request record shared by the access log, the route
// handler and the proxy. One allocation carries everything the request
// needs beyond what net/http already allocates: the chosen upstream, the
// route for logs, and the status recorder. It wraps the client's
// ResponseWriter, so whatever writes the answer records it. Its fields are
// written by the request's own goroutine only; an aggregate's concurrent
// calls run without it (see NewContext).
type Exchange struct {
	http.ResponseWriter
	// Start is when the gateway received the request.
	Start time.Time
	// Route is the matched route or aggregate; empty until matched.
	Route string
	// Instance is host:port of the chosen instance; empty until picked.
	Instance string
	// Service is the name of the service the chosen instance belongs to;
	// empty until picked.
	Service string
	// Retries counts the attempts after the first one, on other
	// instances.
	Retries int
	// Upstream is the matched route's upstream, which the proxy sends
	// the request to; nil until matched.
	Upstream http.RoundTripper
	// Strip is the prefix the proxy removes from the path; empty for none.
	Strip string
	// Status is the final status answered; zero until the answer starts.
	Status int
	// Bytes counts the body bytes answered.
	Bytes int64
	// Metrics are the matched route's children; nil until matched or
	// without metrics.
	Metrics *metrics.Route
	// RequestID is X-Request-Id, set on the response when it starts.
	RequestID string
	// GRPC is set when the request is a gRPC call (IsGRPC): the gateway's
	// own errors are then answered in gRPC form (see WriteError).
	GRPC bool
	// ClientDeadline is set when the gRPC client's grpc-timeout, not the
	// route timeout, bounds the call: its running out is then the
	// client's doing (see Classify).
	ClientDeadline bool

	body clientBody // the request body's guard, when there is a body
	// upHeader holds the headers auth set for the upstream (verified
	// claims, forward_auth copies); nil when none. They are applied to the
	// outgoing request, never to the inbound one, so a client naming them
	// in Connection cannot have ReverseProxy strip them.
	upHeader http.Header
	// idValue is RequestID as the one-element value of the answer's
	// X-Request-Id, so stamping it allocates nothing.
	idValue [1]string
	// ctx is the request's context carrying the exchange (NewContext),
	// part of this one allocation instead of a context.WithValue.
	ctx exchangeContext
}

// ErrHeaderValue rejects a value the gateway would set on an upstream
// request but that is not a valid HTTP field value; sent, the transport
// would fail it and count the failure against the upstream.
var ErrHeaderValue = errors.New("invalid header value")

// SetUpstreamHeader records values for the upstream request's header name
// (in canonical form), replacing any earlier ones; ErrHeaderValue when one
// cannot be a header value.
func (e *Exchange) SetUpstreamHeader(name string, values ...string) error {
	for _, v := range values {
		if !validHeaderValue(v) {
			return fmt.Errorf("%w for %s", ErrHeaderValue, name)
		}
	}
	if e.upHeader == nil {
		e.upHeader = make(http.Header, 2)
	}
	e.upHeader[name] = values
	return nil
}

// UpstreamHeaderFields is what auth recorded for the upstream request
// (canonical names; nil when nothing), which ApplyUpstreamHeaders sets
// before the request ID: for a forwarding path that builds the outgoing
// header itself. The caller must not modify it.
func (e *Exchange) UpstreamHeaderFields() http.Header { return e.upHeader }

// UpstreamHeader returns the first value auth recorded for the upstream
// header name (canonical form), or "".
func (e *Exchange) UpstreamHeader(name string) string { return e.upHeader.Get(name) }

// ApplyUpstreamHeaders sets the gateway's own headers on an outgoing
// request's h: the request ID and what auth recorded. Callers apply them
// last, after hop-by-hop removal, so what the gateway says is what the
// upstream gets.
func (e *Exchange) ApplyUpstreamHeaders(h http.Header) {
	for k, vs := range e.upHeader {
		h[k] = vs
	}
	if e.RequestID != "" {
		h.Set(HeaderRequestID, e.RequestID)
	}
}

// validHeaderValue is httpguts.ValidHeaderFieldValue, which net/http's
// transport applies: no control characters (CR, LF, NUL, DEL and the
// rest) other than horizontal tab. Bytes from 0x80 up are allowed.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; (b < ' ' && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

type contextKey struct{}

// NewContext returns ctx carrying ex. A nil ex hides the request's
// exchange from what runs under ctx: an aggregate's concurrent calls must
// not all write the one record.
func NewContext(ctx context.Context, ex *Exchange) context.Context {
	if ex == nil || ex.ctx.ex != nil {
		return context.WithValue(ctx, contextKey{}, ex)
	}
	ex.ctx = exchangeContext{Context: ctx, ex: ex}
	return &ex.ctx
}

// exchangeContext is a context carrying an exchange: what
// context.WithValue would make, inside the Exchange's own allocation.
type exchangeContext struct {
	context.Context
	ex *Exchange
}

func (c *exchangeContext) Value(key any) any {
	if key == (contextKey{}) {
		return c.ex
	}
	return c.Context.Value(key)
}

// From returns the request's exchange, or nil outside the gateway.
func From(ctx context.Context) *Exchange {
	ex, _ := ctx.Value(contextKey{}).(*Exchange)
	return ex
}

// begin records the first status and stamps the request ID on the
// response. Set (not Add) replaces an X-Request-Id the upstream echoed, so
// the client sees exactly one.
func (e *Exchange) begin(code int) {
	if e.Status != 0 {
		return
	}
	e.Status = code
	if e.RequestID != "" {
		e.idValue[0] = e.RequestID
		e.ResponseWriter.Header()[HeaderRequestID] = e.idValue[:1:1]
	}
}

// WriteHeader records the status for the access log. Informational
// answers (100 Continue, 103 Early Hints) pass through unrecorded: the
// final status comes after them, and it is the one logs and metrics need.
func (e *Exchange) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		e.ResponseWriter.WriteHeader(code)
		return
	}
	e.begin(code)
	e.ResponseWriter.WriteHeader(code)
}

// Write records the byte count and the implicit 200.
func (e *Exchange) Write(b []byte) (int, error) {
	e.begin(http.StatusOK)
	n, err := e.ResponseWriter.Write(b)
	e.Bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection, so flushing,
// deadlines and upgrades (WebSocket via ReverseProxy) keep working.
func (e *Exchange) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// Flush streams partial responses (server-sent events, long polls);
// ReverseProxy flushes through it.
func (e *Exchange) Flush() {
	e.begin(http.StatusOK)
	_ = http.NewResponseController(e.ResponseWriter).Flush()
}

// Hijack hands the connection over for protocol upgrades; ReverseProxy
// looks for it through ResponseController, which calls Unwrap, but older
// callers type-assert http.Hijacker directly.
func (e *Exchange) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	e.begin(http.StatusSwitchingProtocols)
	return http.NewResponseController(e.ResponseWriter).Hijack()
}
