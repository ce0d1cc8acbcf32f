package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/tunnel"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// wsEcho is a WebSocket upstream (coder/websocket) that echoes every
// message back.
func wsEcho(t *testing.T) registry.Instance {
	t.Helper()
	_, inst := startUpstream(t, "ws-1", testkit.WebSocketEcho)
	return inst
}

// wsGateway serves src's routes over one echoing WebSocket upstream, with
// its tunnels bounded by limits and on clock. Loopback is a trusted
// proxy, so X-Forwarded-For can stand for distinct clients.
func wsGateway(t *testing.T, clock *testkit.Clock, limits tunnel.Options, src string, more ...func(*Options)) (*policyGateway, *metrics.Metrics) {
	t.Helper()
	m := metrics.New(metrics.Options{})
	limits.Now, limits.AfterFunc, limits.Metrics = clock.Now, clock.AfterFunc, m
	opts := Options{Metrics: m, Tunnels: tunnel.New(limits), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	for _, f := range more {
		f(&opts)
	}
	pg := startPolicyGateway(t, opts, src, map[string][]registry.Instance{"ws": {wsEcho(t)}})
	return pg, m
}

func wsURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") }

func dialWS(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", url, err, resp)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// echo sends msg and expects it back.
func echo(t *testing.T, c *websocket.Conn, msg string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return err
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if string(b) != msg {
		t.Fatalf("echo: got %q, want %q", b, msg)
	}
	return nil
}

const wsRoute = `route "ws" {
  path_prefix  = "/ws"
  service      = "ws"
  timeout      = "1h"
  idle_timeout = "%s"
}`

func wsDoc(idle string) string { return strings.Replace(wsRoute, "%s", idle, 1) }

func TestWebSocketTunnelOutlivesRouteTimeout(t *testing.T) {
	clock := testkit.NewClock()
	pg, m := wsGateway(t, clock, tunnel.Options{}, wsDoc("24h"))
	c := dialWS(t, wsURL(pg.url)+"/ws/chat")
	if err := echo(t, c, "one"); err != nil {
		t.Fatal(err)
	}
	// Two hours on the tunnels' clock: the route's one-hour timeout bounds
	// the handshake only, and the tunnel lives on.
	clock.Advance(2 * time.Hour)
	for i, msg := range []string{"two", "three"} {
		if err := echo(t, c, msg); err != nil {
			t.Fatalf("message %d after the route timeout: %v", i+2, err)
		}
	}
	if got := pg.gw.Tunnels().Open("ws"); got != 1 {
		t.Errorf("open tunnels of ws = %d, want 1", got)
	}
	if got := sample(t, m, "gateway_tunnels_open", "route", "ws"); got != 1 {
		t.Errorf("gateway_tunnels_open = %v, want 1", got)
	}
	c.Close(websocket.StatusNormalClosure, "")
	testkit.WaitFor(t, "tunnel closed", func() bool { return pg.gw.Tunnels().Open("") == 0 })
	// After the close handshake both sides close TCP; which one the
	// tunnel sees end first is a race, so either reason is right, once.
	closed := func() (float64, float64) {
		return sample(t, m, "gateway_tunnels_closed_total", "route", "ws", "reason", tunnel.ReasonUpstream),
			sample(t, m, "gateway_tunnels_closed_total", "route", "ws", "reason", tunnel.ReasonClient)
	}
	testkit.WaitFor(t, "the close counted", func() bool { up, cl := closed(); return up+cl > 0 })
	if up, cl := closed(); up+cl != 1 {
		t.Errorf("closed{reason=upstream} = %v, {reason=client} = %v, want one close in all", up, cl)
	}
	if up, down := sample(t, m, "gateway_tunnel_bytes_total", "direction", "up"), sample(t, m, "gateway_tunnel_bytes_total", "direction", "down"); up == 0 || down == 0 {
		t.Errorf("tunnel bytes up %v down %v, want both counted", up, down)
	}
}

func TestWebSocketIdleTimeoutClosesQuietTunnel(t *testing.T) {
	clock := testkit.NewClock()
	pg, m := wsGateway(t, clock, tunnel.Options{}, wsDoc("1m"))
	c := dialWS(t, wsURL(pg.url)+"/ws")
	if err := echo(t, c, "hello"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "idle timer set", func() bool { return clock.Timers() >= 1 })
	// Traffic 40s in postpones the cut: at the minute the timer finds
	// only 20s of quiet and looks again later.
	clock.Advance(40 * time.Second)
	if err := echo(t, c, "still here"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(20 * time.Second)
	testkit.WaitFor(t, "idle timer set again", func() bool { return clock.Timers() >= 1 })
	if err := echo(t, c, "after a minute"); err != nil {
		t.Fatalf("a tunnel with traffic 20s ago was cut: %v", err)
	}
	clock.Advance(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	if _, _, err := c.Read(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read on a tunnel idle for a minute: %v, want it closed", err)
	}
	testkit.WaitFor(t, "tunnel closed", func() bool { return pg.gw.Tunnels().Open("") == 0 })
	if got := sample(t, m, "gateway_tunnels_closed_total", "route", "ws", "reason", tunnel.ReasonIdle); got != 1 {
		t.Errorf("closed{reason=idle} = %v, want 1", got)
	}
}

func TestWebSocketTunnelLimitAnswers503(t *testing.T) {
	clock := testkit.NewClock()
	pg, _ := wsGateway(t, clock, tunnel.Options{Max: 1}, wsDoc("1h"))
	c := dialWS(t, wsURL(pg.url)+"/ws")
	if err := echo(t, c, "first"); err != nil {
		t.Fatal(err)
	}
	_, resp, err := websocket.Dial(context.Background(), wsURL(pg.url)+"/ws", nil)
	if err == nil {
		t.Fatal("a second tunnel past -max-tunnels 1 was opened")
	}
	expectJSONError(t, resp, http.StatusServiceUnavailable, exchange.MsgTooManyTunnels)
	// Ordinary requests are not tunnels and still pass.
	if r := do(t, "GET", pg.url+"/ws/plain"); r.status == http.StatusServiceUnavailable {
		t.Errorf("plain request refused while the tunnel slots are full: %d %s", r.status, r.body)
	}
	c.Close(websocket.StatusNormalClosure, "")
	testkit.WaitFor(t, "slot back", func() bool { return pg.gw.Tunnels().Open("") == 0 })
	if err := echo(t, dialWS(t, wsURL(pg.url)+"/ws"), "again"); err != nil {
		t.Fatal(err)
	}
}

func TestWebSocketTunnelsPerClientAreBounded(t *testing.T) {
	clock := testkit.NewClock()
	pg, _ := wsGateway(t, clock, tunnel.Options{MaxPerClient: 2}, wsDoc("1h"))
	from := func(ip string) *websocket.DialOptions {
		return &websocket.DialOptions{HTTPHeader: http.Header{"X-Forwarded-For": {ip}}}
	}
	for i := range 2 {
		c, _, err := websocket.Dial(context.Background(), wsURL(pg.url)+"/ws", from("10.0.0.1"))
		if err != nil {
			t.Fatalf("tunnel %d of the client: %v", i+1, err)
		}
		t.Cleanup(func() { c.CloseNow() })
	}
	_, resp, err := websocket.Dial(context.Background(), wsURL(pg.url)+"/ws", from("10.0.0.1"))
	if err == nil {
		t.Fatal("a third tunnel of one client was opened past -max-tunnels-per-client 2")
	}
	expectJSONError(t, resp, http.StatusServiceUnavailable, exchange.MsgTooManyTunnels)
	c, _, err := websocket.Dial(context.Background(), wsURL(pg.url)+"/ws", from("10.0.0.2"))
	if err != nil {
		t.Fatalf("another client was refused: %v", err)
	}
	defer c.CloseNow()
	if err := echo(t, c, "other client"); err != nil {
		t.Fatal(err)
	}
}

func TestWebSocketShutdownClosesTunnelsAtDrainEnd(t *testing.T) {
	clock := testkit.NewClock()
	pg, m := wsGateway(t, clock, tunnel.Options{}, wsDoc("1h"))
	c := dialWS(t, wsURL(pg.url)+"/ws")
	if err := echo(t, c, "before"); err != nil {
		t.Fatal(err)
	}
	drain, endDrain := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- pg.gw.Tunnels().Shutdown(drain) }()
	// During the drain the tunnel keeps working and new ones are refused.
	if err := echo(t, c, "during the drain"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "new tunnels refused", func() bool {
		_, resp, err := websocket.Dial(context.Background(), wsURL(pg.url)+"/ws", nil)
		return err != nil && resp != nil && resp.StatusCode == http.StatusServiceUnavailable
	})
	select {
	case n := <-done:
		t.Fatalf("Shutdown returned (closed %d) with a tunnel open and the drain running", n)
	default:
	}
	endDrain()
	if n := <-done; n != 1 {
		t.Errorf("Shutdown closed %d tunnels at the drain's end, want 1", n)
	}
	if n := pg.gw.Tunnels().Open(""); n != 0 {
		t.Errorf("%d tunnels open after Shutdown returned", n)
	}
	if err := echo(t, c, "after"); err == nil {
		t.Error("tunnel still echoes after the drain ended")
	}
	if got := sample(t, m, "gateway_tunnels_closed_total", "route", "ws", "reason", tunnel.ReasonShutdown); got != 1 {
		t.Errorf("closed{reason=shutdown} = %v, want 1", got)
	}
}

func TestWebSocketHandshakePassesRoutePolicies(t *testing.T) {
	t.Setenv("WS_SECRET", "s3cret")
	clock := testkit.NewClock()
	pg, m := wsGateway(t, clock, tunnel.Options{}, `route "ws" {
  path_prefix = "/ws"
  service     = "ws"
  jwt {
    algorithms = ["HS256"]
    secret_env = "WS_SECRET"
  }
}`)
	_, resp, err := websocket.Dial(context.Background(), wsURL(pg.url)+"/ws", nil)
	if err == nil {
		t.Fatal("handshake without a token was let through")
	}
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("refused handshake: %d %s, want 401 JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if n := sample(t, m, "gateway_tunnels_opened_total", "route", "ws"); n != 0 {
		t.Errorf("refused handshake opened %v tunnels", n)
	}
}

func TestNonWebSocketUpgradeIsForwardedAsPlainRequest(t *testing.T) {
	rec := &headerEcho{}
	_, inst := startUpstream(t, "h-1", rec.ServeHTTP)
	pg := startPolicyGateway(t, Options{}, `route "h" {
  path_prefix = "/h"
  service     = "h"
}`, map[string][]registry.Instance{"h": {inst}})
	r := do(t, "GET", pg.url+"/h", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA")
	if r.status != http.StatusOK {
		t.Fatalf("status %d %s, want the upstream's 200", r.status, r.body)
	}
	for _, h := range []string{"Upgrade", "Connection", "Http2-Settings"} {
		if v := rec.got().Get(h); v != "" {
			t.Errorf("upstream got %s: %q; an h2c upgrade must not reach it", h, v)
		}
	}
}

func TestWebSocketHandshakeWithBodyIsRefused(t *testing.T) {
	clock := testkit.NewClock()
	pg, _ := wsGateway(t, clock, tunnel.Options{}, wsDoc("1h"))
	req, _ := http.NewRequest("GET", pg.url+"/ws", strings.NewReader("body"))
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	expectJSONError(t, resp, http.StatusBadRequest, exchange.MsgUpgradeBody)
}

// expectJSONError checks resp is the gateway's JSON error status/msg.
func expectJSONError(t *testing.T, resp *http.Response, status int, msg string) {
	t.Helper()
	if resp == nil {
		t.Fatalf("no response, want %d %q", status, msg)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body exchange.ErrorBody
	if resp.StatusCode != status || json.Unmarshal(b, &body) != nil || body.Error != msg {
		t.Fatalf("got %d %s, want %d with error %q", resp.StatusCode, b, status, msg)
	}
}

// TestConnectIsNotProxied: a plain CONNECT (here HTTP/1.1 with a path) is
// refused, not forwarded to an upstream as a CONNECT it would not expect;
// only an HTTP/2 extended CONNECT for WebSocket is served (see
// TestWebSocketOverHTTP2).
func TestConnectIsNotProxied(t *testing.T) {
	rec := &headerEcho{}
	_, inst := startUpstream(t, "h-1", rec.ServeHTTP)
	pg := startPolicyGateway(t, Options{}, `route "h" {
  path_prefix = "/h"
  service     = "h"
}`, map[string][]registry.Instance{"h": {inst}})
	r := do(t, "CONNECT", pg.url+"/h/x")
	if r.status != http.StatusMethodNotAllowed || rec.got() != nil {
		t.Fatalf("CONNECT: %d %s (upstream saw %v), want 405 and no upstream call", r.status, r.body, rec.got())
	}
}

func TestWebSocketRouteTimeoutBoundsTheHandshake(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	_, inst := startUpstream(t, "slow-ws", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select { // the handshake is held until the test lets go
		case <-release:
		case <-r.Context().Done():
			return
		}
		if c, err := websocket.Accept(w, r, nil); err == nil {
			c.CloseNow()
		}
	})
	clock := testkit.NewClock()
	m := metrics.New(metrics.Options{})
	tr := tunnel.New(tunnel.Options{Max: 1, Now: clock.Now, AfterFunc: clock.AfterFunc, Metrics: m})
	pg := startPolicyGateway(t, Options{Metrics: m, Tunnels: tr}, wsDoc("24h"), map[string][]registry.Instance{"ws": {inst}})
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		_, resp, err := websocket.Dial(context.Background(), wsURL(pg.url)+"/ws", nil)
		done <- result{resp, err}
	}()
	<-arrived
	clock.Advance(2 * time.Hour) // past the route's 1h timeout, 101 not yet sent
	res := <-done
	if res.err == nil {
		t.Fatal("handshake answered after the route timeout")
	}
	expectJSONError(t, res.resp, http.StatusGatewayTimeout, exchange.MsgUpstreamTimeout)
	if n := sample(t, m, "gateway_tunnels_opened_total", "route", "ws"); n != 0 {
		t.Errorf("a timed-out handshake opened %v tunnels", n)
	}
	testkit.WaitFor(t, "the only slot back", func() bool {
		_, err := tr.Reserve("probe", "probe")
		return err == nil
	})
}
