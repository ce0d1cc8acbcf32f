package gateway

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

// exchange is the per-request record shared by the access log, the route
// handler and the proxy. One allocation carries everything the request
// needs beyond what net/http already allocates: the chosen upstream, the
// route for logs, and the status recorder.
type exchange struct {
	http.ResponseWriter
	start    time.Time
	route    string
	upstream string    // host:port of the chosen instance; empty until picked
	up       *upstream // the matched route's upstream; nil until matched
	strip    string    // prefix the proxy removes from the path; empty for none
	status   int
	bytes    int64
	metrics  *metrics.Route // the matched route's children; nil until matched
	reqID    string         // X-Request-Id, set on the response when it starts
	body     clientBody     // the request body's guard, when there is a body
	// upHeader holds the headers auth set for the upstream (verified
	// claims, forward_auth copies); nil when none. They are applied to the
	// outgoing request, never to the inbound one, so a client naming them
	// in Connection cannot have ReverseProxy strip them.
	upHeader http.Header
}

// errHeaderValue rejects a value the gateway would set on an upstream
// request but that is not a valid HTTP field value; sent, the transport
// would fail it and count the failure against the upstream.
var errHeaderValue = errors.New("invalid header value")

// setUpstreamHeader records values for the upstream request's header name
// (in canonical form), replacing any earlier ones.
func (e *exchange) setUpstreamHeader(name string, values ...string) error {
	for _, v := range values {
		if !validHeaderValue(v) {
			return fmt.Errorf("%w for %s", errHeaderValue, name)
		}
	}
	if e.upHeader == nil {
		e.upHeader = make(http.Header, 2)
	}
	e.upHeader[name] = values
	return nil
}

// applyUpstreamHeaders sets the gateway's own headers on an outgoing
// request's h: the request ID and what auth recorded. Callers apply them
// last, after hop-by-hop removal, so what the gateway says is what the
// upstream gets.
func (e *exchange) applyUpstreamHeaders(h http.Header) {
	for k, vs := range e.upHeader {
		h[k] = vs
	}
	if e.reqID != "" {
		h.Set(headerRequestID, e.reqID)
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

type exchangeKey struct{}

// exchangeFrom returns the request's exchange, or nil outside the gateway.
func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// begin records the first status and stamps the request ID on the
// response. Set (not Add) replaces an X-Request-Id the upstream echoed, so
// the client sees exactly one.
func (e *exchange) begin(code int) {
	if e.status != 0 {
		return
	}
	e.status = code
	if e.reqID != "" {
		e.ResponseWriter.Header().Set(headerRequestID, e.reqID)
	}
}

// WriteHeader records the status for the access log. Informational
// answers (100 Continue, 103 Early Hints) pass through unrecorded: the
// final status comes after them, and it is the one logs and metrics need.
func (e *exchange) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		e.ResponseWriter.WriteHeader(code)
		return
	}
	e.begin(code)
	e.ResponseWriter.WriteHeader(code)
}

// Write records the byte count and the implicit 200.
func (e *exchange) Write(b []byte) (int, error) {
	e.begin(http.StatusOK)
	n, err := e.ResponseWriter.Write(b)
	e.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection, so flushing,
// deadlines and upgrades (WebSocket via ReverseProxy) keep working.
func (e *exchange) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// Flush streams partial responses (server-sent events, long polls);
// ReverseProxy flushes through it.
func (e *exchange) Flush() {
	e.begin(http.StatusOK)
	_ = http.NewResponseController(e.ResponseWriter).Flush()
}

// Hijack hands the connection over for protocol upgrades; ReverseProxy
// looks for it through ResponseController, which calls Unwrap, but older
// callers type-assert http.Hijacker directly.
func (e *exchange) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	e.begin(http.StatusSwitchingProtocols)
	return http.NewResponseController(e.ResponseWriter).Hijack()
}
