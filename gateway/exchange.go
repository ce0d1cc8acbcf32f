package gateway

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"time"
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
	metrics  *routeMetrics // the matched route's children; nil until matched
	reqID    string        // X-Request-Id, set on the response when it starts
	body     clientBody    // the request body's guard, when there is a body
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
