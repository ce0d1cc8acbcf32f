//lint:file-ignore SA1019 net/http's Transport (Go 1.26) refuses the :protocol pseudo-header an extended CONNECT needs (validateHeaders), so the client here is x/net's HTTP/2 transport, deprecated for that reason only.

package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/net/http2"

	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/tunnel"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// xconnectEnv is how Go's HTTP/2 server is told to accept extended
// CONNECT; it reads it from the environment once, at init.
const xconnectEnv = "http2xconnect=1"

// TestWebSocketOverHTTP2 runs a WebSocket over an HTTP/2 extended CONNECT
// (RFC 8441) through the gateway to an HTTP/1.1 upstream (coder/websocket).
// Without GODEBUG=http2xconnect=1 Go's server does not offer it; the test
// checks that, then runs itself again with it set.
func TestWebSocketOverHTTP2(t *testing.T) {
	clock := testkit.NewClock()
	// The request body is the tunnel's upstream direction: neither the body
	// limit nor the body's read timeout may apply to it.
	pg, _ := wsGateway(t, clock, tunnel.Options{}, wsDoc("24h"), func(o *Options) {
		o.MaxBodyBytes, o.BodyReadTimeout = 16, time.Nanosecond
	})
	connect := h2Connect(t, pg.gw, "/ws/chat")
	if !strings.Contains(os.Getenv("GODEBUG"), xconnectEnv) {
		if _, _, err := connect(); err == nil || !strings.Contains(err.Error(), "extended connect not supported") {
			t.Fatalf("extended CONNECT without GODEBUG: %v, want the server not to offer it", err)
		}
	}
	if reexecWithXConnect(t, "TestWebSocketOverHTTP2") {
		return
	}

	resp, pw, err := connect()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	defer pw.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("extended CONNECT: %d %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	say := func(msg string) {
		t.Helper()
		if _, err := pw.Write(clientFrame(0x1, []byte(msg))); err != nil {
			t.Fatal(err)
		}
		op, got := serverFrame(t, resp.Body)
		if op != 0x1 || string(got) != msg {
			t.Fatalf("echo: opcode %#x %q, want text %q", op, got, msg)
		}
	}
	say("hello over h2")
	clock.Advance(2 * time.Hour) // past the route's 1h timeout: it bounds the handshake only
	say("still here")
	if n := pg.gw.Tunnels().Open("ws"); n != 1 {
		t.Errorf("open tunnels of ws = %d, want 1", n)
	}
	// A close handshake ends the tunnel and the stream.
	if _, err := pw.Write(clientFrame(0x8, []byte{0x03, 0xe8})); err != nil {
		t.Fatal(err)
	}
	if op, _ := serverFrame(t, resp.Body); op != 0x8 {
		t.Fatalf("answer to close: opcode %#x, want close", op)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Logf("stream end: %v", err)
	}
	testkit.WaitFor(t, "tunnel closed", func() bool { return pg.gw.Tunnels().Open("") == 0 })
}

// clientFrame is one final, masked WebSocket frame (RFC 6455, 5.2) with a
// payload under 126 bytes, as a client sends it.
func clientFrame(opcode byte, payload []byte) []byte {
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b := append([]byte{0x80 | opcode, 0x80 | byte(len(payload))}, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

// serverFrame reads one unmasked frame with a payload under 126 bytes.
func serverFrame(t *testing.T, r io.Reader) (opcode byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatalf("frame header: %v", err)
	}
	if h[1]&0x80 != 0 || h[1]&0x7f >= 126 {
		t.Fatalf("unexpected frame header %x", h)
	}
	payload = make([]byte, h[1]&0x7f)
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatalf("frame payload: %v", err)
	}
	return h[0] & 0x0f, payload
}

// TestH2WebSocketStalledClientDoesNotBlockShutdown: a client that opens
// an HTTP/2 WebSocket and stops reading leaves the gateway's write to the
// stream waiting on flow control. Ending the tunnel (idle, drain) must
// still end it, not wait behind that write forever.
func TestH2WebSocketStalledClientDoesNotBlockShutdown(t *testing.T) {
	if reexecWithXConnect(t, "TestH2WebSocketStalledClientDoesNotBlockShutdown") {
		return
	}
	clock := testkit.NewClock()
	_, flood := startUpstream(t, "ws-flood", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		msg := make([]byte, 32<<10)
		for c.Write(r.Context(), websocket.MessageBinary, msg) == nil {
		}
	})
	m := metrics.New(metrics.Options{})
	opts := Options{Metrics: m, Tunnels: tunnel.New(tunnel.Options{Now: clock.Now, AfterFunc: clock.AfterFunc, Metrics: m})}
	pg := startPolicyGateway(t, opts, wsDoc("1h"), map[string][]registry.Instance{"ws": {flood}})
	resp, pw, err := h2Connect(t, pg.gw, "/ws/flood")()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	defer pw.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("extended CONNECT: %d", resp.StatusCode)
	}
	// The client reads nothing: once its stream window (4 MiB for x/net's
	// transport, less what the server buffers) is used up, the gateway's
	// write blocks.
	testkit.WaitFor(t, "stream window used up", func() bool {
		return sample(t, m, "gateway_tunnel_bytes_total", "route", "ws", "direction", "down") >= 4<<20-64<<10
	})
	drain, end := context.WithCancel(context.Background())
	end()
	done := make(chan int, 1)
	go func() { done <- pg.gw.Tunnels().Shutdown(drain) }()
	select {
	case n := <-done:
		if n != 1 {
			t.Errorf("Shutdown closed %d tunnels, want 1", n)
		}
	case <-time.After(testkit.Timeout):
		t.Fatal("Shutdown still waiting on a tunnel whose client stopped reading")
	}
}

// h2Connect serves h over TLS with HTTP/2 and returns a function that
// opens a WebSocket on path with an extended CONNECT: the response, whose
// body is the stream's downward half, and the writer of its upward half.
func h2Connect(t *testing.T, h http.Handler, path string) func() (*http.Response, *io.PipeWriter, error) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tr := &http2.Transport{TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
	t.Cleanup(tr.CloseIdleConnections)
	return func() (*http.Response, *io.PipeWriter, error) {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest(http.MethodConnect, srv.URL+path, pr)
		req.Header.Set(":protocol", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			pw.Close()
		}
		return resp, pw, err
	}
}

// reexecWithXConnect runs test again in a child process with
// GODEBUG=http2xconnect=1 (Go's HTTP/2 server reads it once, at init) and
// reports true, the child's result being the test's; false when this
// process already has it and the test should run here.
func reexecWithXConnect(t *testing.T, test string) bool {
	t.Helper()
	if strings.Contains(os.Getenv("GODEBUG"), xconnectEnv) {
		return false
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG="+xconnectEnv+","+os.Getenv("GODEBUG"))
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+test)) {
		t.Fatalf("with GODEBUG=%s: %v\n%s", xconnectEnv, err, out)
	}
	return true
}

// TestH2WebSocketUpstreamThatDoesNotSwitch: over HTTP/2 a 2xx answer to
// an extended CONNECT means the tunnel is open (RFC 8441), so an upstream
// that answers the WebSocket handshake with a plain 200 (not a WebSocket
// server) must not be passed on as one: the client would take the
// upstream's page for WebSocket frames.
func TestH2WebSocketUpstreamThatDoesNotSwitch(t *testing.T) {
	if reexecWithXConnect(t, "TestH2WebSocketUpstreamThatDoesNotSwitch") {
		return
	}
	_, plain := startUpstream(t, "plain", nil) // answers 200 JSON to anything
	pg := startPolicyGateway(t, Options{}, wsDoc("1h"), map[string][]registry.Instance{"ws": {plain}})
	resp, pw, err := h2Connect(t, pg.gw, "/ws/x")()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	defer pw.Close()
	expectJSONError(t, resp, http.StatusBadGateway, exchange.MsgUpstreamDown)
}
