package upstream

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/tunnel"
)

// WebSocket upgrades go through the shared ReverseProxy (plain requests
// take forward.go's path, held to it by forward_diff_test.go), after the
// route's policies: it forwards the handshake, and when the
// upstream answers 101 it hijacks the client's connection and copies both
// ways until one side ends. What this file adds around it: a slot in the
// tunnel tracker, a route timeout that bounds the handshake but not the
// tunnel, and the client's connection handed to the tracker, which bounds
// its idle time and closes it at the end of a drain.

// errHandshakeTimeout is the hijack refused because the route timeout
// passed while the upstream's 101 was on its way: the tunnel would start
// already cut off.
var errHandshakeTimeout = errors.New("route timeout passed before the upstream switched protocols")

// upgradeType is the protocol r asks to switch to, as ReverseProxy reads
// it: the Upgrade header when Connection lists "upgrade"; "" otherwise.
// Every proxied request passes through it (twice), and most HTTP/1.1
// clients send a Connection header, so it allocates nothing.
func upgradeType(h http.Header) string {
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return h.Get("Upgrade")
			}
		}
	}
	return ""
}

// isWebSocket reports whether an upgrade asks for WebSocket, the one
// protocol the gateway lets a client switch to. Anything else (h2c in
// particular, which would let a client speak HTTP/2 to an upstream past
// every per-request policy) is forwarded as a plain request.
func isWebSocket(up string) bool { return strings.EqualFold(up, "websocket") }

// dropUpgrade removes a non-WebSocket upgrade from the outgoing request,
// which ReverseProxy put back after removing hop-by-hop headers.
func dropUpgrade(in *http.Request, out http.Header) {
	if up := upgradeType(in.Header); up != "" && !isWebSocket(up) {
		out.Del("Upgrade")
		out.Del("Connection")
	}
}

// serveTunnel proxies a WebSocket handshake of route rc and, once the
// upstream switches protocols, its tunnel.
func (p *Proxy) serveTunnel(w http.ResponseWriter, r *http.Request, rc *config.Route) {
	ex := exchange.From(r.Context())
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		// A handshake has no body (RFC 6455, 4.1); one that has could
		// leave its read deadline on the connection the tunnel takes over.
		w.Header().Set("Connection", "close")
		exchange.WriteError(w, http.StatusBadRequest, exchange.MsgUpgradeBody, ex.Route)
		return
	}
	tn, hs, ok := p.startTunnel(w, r, rc)
	if !ok {
		return
	}
	defer tn.Done()
	defer hs.release()
	r = r.WithContext(hs)
	if rc.Timeout > 0 {
		ex.BoundBody(hs)
	}
	p.rp.ServeHTTP(&tunnelWriter{ResponseWriter: w, tn: tn, hs: hs, idle: rc.TunnelIdleTimeout()}, r)
	if down := tn.BytesDown(); down > 0 {
		ex.Bytes = down
	}
}

// startTunnel takes a tunnel slot for r, answering 503 when there is
// none (ok false), and starts its handshake's context. The caller must
// call hs.release, then tn.Done, when the request ends.
func (p *Proxy) startTunnel(w http.ResponseWriter, r *http.Request, rc *config.Route) (tn *tunnel.Tunnel, hs *handshake, ok bool) {
	route := exchange.From(r.Context()).Route
	tn, err := p.tunnels.Reserve(route, exchange.ClientAddr(r, p.trusted))
	if err != nil {
		w.Header().Set("Retry-After", "1")
		exchange.WriteError(w, http.StatusServiceUnavailable, exchange.MsgTooManyTunnels, route)
		return nil, nil, false
	}
	return tn, newHandshake(r.Context(), rc.Timeout, p.tunnels.AfterFunc), true
}

// tunnelWriter hands the client's connection to the tunnel when
// ReverseProxy hijacks it, which it does only once the upstream answered
// 101 and the protocols matched.
type tunnelWriter struct {
	http.ResponseWriter
	tn   *tunnel.Tunnel
	hs   *handshake
	idle time.Duration
}

// Hijack ends the handshake's deadline and attaches the connection.
func (tw *tunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !tw.hs.detach() {
		return nil, nil, errHandshakeTimeout
	}
	c, brw, err := http.NewResponseController(tw.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Deadlines the server or the body guard left on the connection were
	// for the request; the tunnel's bound is its idle timeout.
	_ = c.SetDeadline(time.Time{})
	return tw.tn.Attach(c, tw.idle), brw, nil
}

// Unwrap lets ResponseController reach the writers below (flush, deadlines).
func (tw *tunnelWriter) Unwrap() http.ResponseWriter { return tw.ResponseWriter }

// handshake is an upgrade request's context. Until detach it ends like the
// route timeout's (DeadlineExceeded at the deadline, or with the client's
// request); after detach the deadline no longer applies. ReverseProxy
// closes the upstream side of a tunnel when its request's context ends, so
// a plain context.WithTimeout would cut every tunnel at the route
// timeout.
type handshake struct {
	context.Context // cancelled with context.DeadlineExceeded as its cause at the deadline
	cancel          context.CancelCauseFunc
	deadline        time.Time // zero: no route timeout

	mu       sync.Mutex
	stop     func() bool // stops the route timeout's timer; nil: none
	detached bool
}

// newHandshake starts the handshake's context; afterFunc times the route
// timeout (the tunnel tracker's clock). The Deadline it reports, for the
// dialer and the body guard, is on the wall clock.
func newHandshake(parent context.Context, timeout time.Duration, afterFunc func(time.Duration, func()) func() bool) *handshake {
	ctx, cancel := context.WithCancelCause(parent)
	h := &handshake{Context: ctx, cancel: cancel}
	if timeout > 0 {
		h.deadline = time.Now().Add(timeout)
		h.mu.Lock()
		h.stop = afterFunc(timeout, h.expire)
		h.mu.Unlock()
	}
	return h
}

func (h *handshake) expire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.detached {
		h.cancel(context.DeadlineExceeded)
	}
}

// detach lifts the deadline; false when it already passed (or the client
// went away).
func (h *handshake) detach() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.Context.Err() != nil {
		return false
	}
	h.detached = true
	if h.stop != nil {
		h.stop()
	}
	return true
}

// release frees the timer and the context once the request is over.
func (h *handshake) release() {
	h.mu.Lock()
	if h.stop != nil {
		h.stop()
	}
	h.mu.Unlock()
	h.cancel(context.Canceled)
}

// Deadline is the route timeout's, which the body guard and the dialer
// honour during the handshake.
func (h *handshake) Deadline() (time.Time, bool) {
	if h.deadline.IsZero() {
		return h.Context.Deadline()
	}
	return h.deadline, true
}

// Err reports DeadlineExceeded when the route timeout ended the
// handshake, as context.WithTimeout would: the proxy answers that with 504.
func (h *handshake) Err() error {
	err := h.Context.Err()
	if err != nil && errors.Is(context.Cause(h.Context), context.DeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}
