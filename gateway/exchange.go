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
}

type exchangeKey struct{}

// exchangeFrom returns the request's exchange, or nil outside the gateway.
func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// WriteHeader records the status for the access log.
func (e *exchange) WriteHeader(code int) {
	if e.status == 0 {
		e.status = code
	}
	e.ResponseWriter.WriteHeader(code)
}

// Write records the byte count and the implicit 200.
func (e *exchange) Write(b []byte) (int, error) {
	if e.status == 0 {
		e.status = http.StatusOK
	}
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
	if e.status == 0 {
		e.status = http.StatusOK
	}
	_ = http.NewResponseController(e.ResponseWriter).Flush()
}

// Hijack hands the connection over for protocol upgrades; ReverseProxy
// looks for it through ResponseController, which calls Unwrap, but older
// callers type-assert http.Hijacker directly.
func (e *exchange) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if e.status == 0 {
		e.status = http.StatusSwitchingProtocols
	}
	return http.NewResponseController(e.ResponseWriter).Hijack()
}
