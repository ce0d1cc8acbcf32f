package upstream

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
	"time"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
)

// WebSockets over HTTP/2 (extended CONNECT, RFC 8441): the client sends
// CONNECT with :protocol websocket on one stream, and the stream's two
// directions carry the WebSocket frames after a 200. Go's HTTP/2 server
// (Go 1.26) accepts such requests only when the process starts with
// GODEBUG=http2xconnect=1 (off by default, golang/go#71128); without it
// it does not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL and clients use
// HTTP/1.1. The stream cannot be hijacked, so ReverseProxy cannot proxy
// it: the gateway makes the HTTP/1.1 handshake to the upstream itself
// (RFC 6455, with its own Sec-WebSocket-Key) and copies frames between the
// stream and the upstream's connection, which carry the same bytes.

// errBadAccept is an upstream that switched protocols without proving it
// read our key: not a WebSocket server, or a broken one.
var errBadAccept = errors.New("upstream switched protocols with a wrong Sec-WebSocket-Accept")

// isExtendedConnect reports whether r is an HTTP/2 WebSocket request.
func isExtendedConnect(r *http.Request) bool {
	return r.Method == http.MethodConnect && r.ProtoMajor == 2 && isWebSocket(r.Header.Get(":protocol"))
}

// wsGUID is RFC 6455's key suffix for Sec-WebSocket-Accept.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// serveH2Tunnel serves an extended CONNECT of route rc: the handshake to
// the upstream over HTTP/1.1, then the tunnel, with the slot, timeouts
// and shutdown of an HTTP/1.1 tunnel.
func (p *Proxy) serveH2Tunnel(w http.ResponseWriter, r *http.Request, rc *config.Route) {
	ex := exchange.From(r.Context())
	tn, hs, ok := p.startTunnel(w, r, rc)
	if !ok {
		return
	}
	defer tn.Done()
	defer hs.release()
	r = r.WithContext(hs)

	var raw [16]byte
	_, _ = rand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])
	out := r.Clone(hs)
	out.Method, out.Proto, out.ProtoMajor, out.ProtoMinor = http.MethodGet, "HTTP/1.1", 1, 1
	out.Body, out.ContentLength, out.GetBody = http.NoBody, 0, nil
	out.RequestURI = ""
	out.Header.Del(":protocol")
	p.rewrite(&httputil.ProxyRequest{In: r, Out: out})
	out.Header.Set("Connection", "Upgrade")
	out.Header.Set("Upgrade", "websocket")
	out.Header.Set("Sec-WebSocket-Key", key)
	out.Header.Set("Sec-WebSocket-Version", "13")

	resp, err := ex.Upstream.RoundTrip(out)
	if err != nil {
		p.upstreamError(w, r, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Over HTTP/2 a 2xx is the tunnel opening (RFC 8441): an
		// upstream that did not switch (not a WebSocket server) must
		// not pass for one, or the client reads its page as frames.
		p.logger.Debug("upstream answered a WebSocket handshake without switching protocols", "route", ex.Route, "upstream", ex.Instance, "status", resp.StatusCode)
		exchange.WriteError(w, http.StatusBadGateway, exchange.MsgUpstreamDown, ex.Route)
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// A refusal (403, 426, ...) goes back as the upstream gave it.
		copyResponseHeader(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return
	}
	back, ok := resp.Body.(io.ReadWriteCloser)
	if !ok || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) || !isWebSocket(resp.Header.Get("Upgrade")) {
		p.upstreamError(w, r, errBadAccept)
		return
	}
	if !hs.detach() {
		p.upstreamError(w, r, errHandshakeTimeout)
		return
	}
	for _, h := range []string{"Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"} {
		if v := resp.Header.Values(h); len(v) > 0 {
			w.Header()[h] = v
		}
	}
	w.WriteHeader(http.StatusOK)
	rc2 := http.NewResponseController(w)
	if err := rc2.Flush(); err != nil {
		return
	}
	stream := tn.Attach(newStreamConn(r.Body, w, rc2), rc.TunnelIdleTimeout())
	errc := make(chan error, 2)
	go func() { _, err := io.Copy(back, stream); errc <- err }()
	go func() {
		_, err := io.Copy(stream, back)
		if err == nil {
			// The upstream ended: that is the tunnel's end too.
			_ = stream.(interface{ CloseWrite() error }).CloseWrite()
		}
		errc <- err
	}()
	<-errc
	_ = stream.Close()
	_ = back.Close()
	<-errc
	ex.Bytes = tn.BytesDown()
}

// copyResponseHeader copies an upstream's answer headers, hop-by-hop ones
// left out.
func copyResponseHeader(dst, src http.Header) {
	for k, vs := range src {
		switch k {
		case "Connection", "Upgrade", "Keep-Alive", "Transfer-Encoding", "Te", "Trailer", "Proxy-Connection":
			continue
		}
		dst[k] = vs
	}
}

// streamConn is an HTTP/2 stream as a net.Conn, so the tunnel tracker
// treats both kinds of tunnel alike: reads come from the request body,
// writes go to the response and are flushed at once, and Close ends the
// stream both ways (the handler then returns).
type streamConn struct {
	body io.ReadCloser
	w    io.Writer
	rc   *http.ResponseController

	closed  atomic.Bool
	writing atomic.Bool // a Write is in progress
}

func newStreamConn(body io.ReadCloser, w io.Writer, rc *http.ResponseController) net.Conn {
	return &streamConn{body: body, w: w, rc: rc}
}

func (s *streamConn) Read(p []byte) (int, error) { return s.body.Read(p) }

// Write may block for as long as the client grants no flow-control
// window; Close unblocks it, so it holds no lock Close needs. Only one
// copy writes, so writing needs no count.
func (s *streamConn) Write(p []byte) (int, error) {
	s.writing.Store(true)
	defer s.writing.Store(false)
	if s.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := s.w.Write(p)
	if err == nil {
		err = s.rc.Flush()
	}
	return n, err
}

// Close ends the stream for the tracker (idle timeout, end of a drain)
// and for the copies: closing a server request body makes its reads
// fail. A write in progress may be waiting on a client that stopped
// reading, and nothing else would end it (the stream lives until the
// handler returns, which waits for that write), so then a write deadline
// in the past resets the stream. Without one the handler's return ends
// the stream cleanly. Write and Close each set their flag before reading
// the other's, so a write that starts during Close is refused or reset.
func (s *streamConn) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if s.writing.Load() {
		_ = s.rc.SetWriteDeadline(time.Now().Add(-time.Second))
	}
	return s.body.Close()
}

func (s *streamConn) LocalAddr() net.Addr                { return h2Addr{} }
func (s *streamConn) RemoteAddr() net.Addr               { return h2Addr{} }
func (s *streamConn) SetDeadline(t time.Time) error      { return s.rc.SetReadDeadline(t) }
func (s *streamConn) SetReadDeadline(t time.Time) error  { return s.rc.SetReadDeadline(t) }
func (s *streamConn) SetWriteDeadline(t time.Time) error { return s.rc.SetWriteDeadline(t) }

// h2Addr stands for the stream's addresses, which a stream does not have.
type h2Addr struct{}

func (h2Addr) Network() string { return "h2" }
func (h2Addr) String() string  { return "http2-stream" }
