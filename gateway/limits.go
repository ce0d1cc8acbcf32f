package gateway

import (
	"net/http"
	"time"

	"github.com/gatewayco/gateway/gateway/exchange"
)

// DefaultMaxBodyBytes bounds request bodies unless configured otherwise:
// large enough for any JSON API, small enough that one client cannot make
// the gateway stream gigabytes to an upstream that never asked for them.
const DefaultMaxBodyBytes = 10 << 20

// DefaultBodyReadTimeout is how long a client may go without sending a
// byte of its request body, nginx's client_body_timeout: generous for a
// slow mobile link, yet a client that stops mid-body no longer holds its
// request and an upstream connection until the TCP keep-alive gives up.
const DefaultBodyReadTimeout = 60 * time.Second

// limitBody enforces the body limit: a declared length over it is refused
// at once; a chunked body is cut off when it crosses the limit, and the
// proxy turns that read error into 413. The body is then guarded (see
// exchange.Exchange.GuardBody): reads are bounded in time, and their failures are known to
// be the client's. It reports false when it already answered.
func (g *Gateway) limitBody(ex *exchange.Exchange, r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if r.Method == http.MethodConnect && r.ProtoMajor == 2 {
		// An HTTP/2 CONNECT's body is a tunnel's client side (WebSocket
		// over HTTP/2): its bounds are the tunnel's (idle_timeout,
		// -max-tunnels), not a request body's. Any other CONNECT is
		// refused before its body is read.
		return true
	}
	if g.maxBody > 0 {
		if r.ContentLength > g.maxBody {
			exchange.WriteError(ex, http.StatusRequestEntityTooLarge, exchange.MsgBodyTooLarge, "")
			return false
		}
		r.Body = http.MaxBytesReader(ex, r.Body, g.maxBody)
	}
	ex.GuardBody(ex.ResponseWriter, r, g.bodyTimeout)
	return true
}
