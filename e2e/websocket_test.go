package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/testkit"
)

// startWSBackend registers an instance of service that accepts WebSocket
// connections (coder/websocket) and echoes every message back.
func startWSBackend(t *testing.T, client *api.Client, service, id string) *backend {
	t.Helper()
	return startBackendWith(t, client, service, id, testkit.WebSocketEcho)
}

// dialWS opens a WebSocket through the gateway; the connection is closed
// at cleanup.
func dialWS(t *testing.T, p *gatewayProc, path string, header http.Header) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+p.public+path, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", path, err, resp)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// wsEcho sends msg and reads it back.
func wsEcho(c *websocket.Conn, msg string) error {
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
		return fmt.Errorf("echo %q, want %q", b, msg)
	}
	return nil
}

// waitClosed waits for the gateway to close c (a read fails other than by
// the wait's own bound).
func waitClosed(t *testing.T, c *websocket.Conn, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	_, _, err := c.Read(ctx)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: read %v, want the tunnel closed", what, err)
	}
}

const wsRoutes = `
route "ws" {
  path_prefix  = "/ws/"
  service      = "echo"
  timeout      = "300ms"
  idle_timeout = "1h"
}
route "wsidle" {
  path_prefix  = "/idle/"
  service      = "echo"
  idle_timeout = "500ms"
}
route "wsauth" {
  path_prefix = "/auth/"
  service     = "echo"
` + jwtBlock + `
}
`

func TestWebSocketThroughTheGateway(t *testing.T) {
	t.Parallel()
	client, consulAddr := startConsul(t)
	startWSBackend(t, client, "echo", "echo-1")
	putRoute(t, client, "ws.hcl", wsRoutes)
	gw := startGateway(t, consulAddr)
	testkit.WaitFor(t, "three routes with their instance", func() bool {
		rs := getRoutes(t, gw).Routes
		return len(rs) == 3 && len(rs[0].Instances) == 1 && len(rs[1].Instances) == 1 && len(rs[2].Instances) == 1
	})
	baseline := goroutineBaseline(t, gw)

	// Messages both ways, well past the route's 300ms timeout: it bounds
	// the handshake, not the tunnel.
	c := dialWS(t, gw, "/ws/chat", nil)
	opened := time.Now()
	if err := wsEcho(c, "first"); err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, gw)
	if n := sample(fams, "gateway_connections_open"); n != 1 {
		t.Errorf("gateway_connections_open = %v with one tunnel and no other client, want 1: a hijacked connection keeps its -max-conns slot", n)
	}
	testkit.WaitFor(t, "three route timeouts since the handshake", func() bool { return time.Since(opened) > 900*time.Millisecond })
	for _, msg := range []string{"second", strings.Repeat("x", 16<<10)} {
		if err := wsEcho(c, msg); err != nil {
			t.Fatalf("tunnel cut after the route timeout: %v", err)
		}
	}
	if r := getRoutes(t, gw).Routes; r[0].Name != "ws" || r[0].Tunnels != 1 {
		t.Errorf("/routes: %+v, want route ws with 1 tunnel", r[0])
	}
	if n := sample(scrape(t, gw), "gateway_tunnels_open", "route=ws"); n != 1 {
		t.Errorf("gateway_tunnels_open{route=ws} = %v, want 1", n)
	}

	// The handshake passes the route's jwt policy like any request.
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws://"+gw.public+"/auth/x", nil)
	if err == nil {
		t.Fatal("handshake without a token reached the upstream")
	}
	var body struct {
		Error string `json:"error"`
		Route string `json:"route"`
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal(b, &body) != nil || body.Route != "wsauth" {
		t.Fatalf("refused handshake: %d %s, want 401 JSON of route wsauth", resp.StatusCode, b)
	}
	authed := dialWS(t, gw, "/auth/x", http.Header{"Authorization": {"Bearer " + hsToken(t, jwt.MapClaims{"sub": "u-1"})}})
	if err := wsEcho(authed, "with a token"); err != nil {
		t.Fatal(err)
	}

	// A quiet tunnel is closed after its route's idle_timeout.
	idle := dialWS(t, gw, "/idle/x", nil)
	if err := wsEcho(idle, "then silence"); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, idle, "tunnel quiet for its 500ms idle_timeout")
	testkit.WaitFor(t, "idle close counted", func() bool {
		return sample(scrape(t, gw), "gateway_tunnels_closed_total", "route=wsidle", "reason=idle") == 1
	})

	c.Close(websocket.StatusNormalClosure, "")
	authed.Close(websocket.StatusNormalClosure, "")
	testkit.WaitFor(t, "every tunnel closed", func() bool {
		f := scrape(t, gw)
		return sample(f, "gateway_tunnels_open", "route=ws") == 0 && sample(f, "gateway_tunnels_open", "route=wsauth") == 0
	})
	fams = scrape(t, gw)
	for _, route := range []string{"ws", "wsauth", "wsidle"} {
		if n := sample(fams, "gateway_tunnels_opened_total", "route="+route); n != 1 {
			t.Errorf("gateway_tunnels_opened_total{route=%s} = %v, want 1", route, n)
		}
	}
	if up := sample(fams, "gateway_tunnel_bytes_total", "route=ws", "direction=up"); up < 16<<10 {
		t.Errorf("gateway_tunnel_bytes_total{ws,up} = %v, want at least the 16 KiB message", up)
	}
	checkGoroutinesBack(t, gw, baseline)
}

func TestSIGTERMClosesTunnelsAtTheDrainDeadlineThenExits(t *testing.T) {
	t.Parallel()
	client, consulAddr := startConsul(t)
	startWSBackend(t, client, "echo", "echo-1")
	putRoute(t, client, "ws.hcl", routeDoc("ws", "/ws/", "echo"))
	gw := startGateway(t, consulAddr, "-drain-timeout", "3s")
	testkit.WaitFor(t, "route with its instance", func() bool {
		rs := getRoutes(t, gw).Routes
		return len(rs) == 1 && len(rs[0].Instances) == 1
	})
	c := dialWS(t, gw, "/ws/x", nil)
	if err := wsEcho(c, "before"); err != nil {
		t.Fatal(err)
	}
	gw.signal(t, syscall.SIGTERM)
	testkit.WaitFor(t, "shutdown logged", func() bool { return strings.Contains(gw.logText(), "shutting down") })
	signalled := time.Now()
	// The drain lets the tunnel run on...
	if err := wsEcho(c, "during the drain"); err != nil {
		t.Fatalf("tunnel cut at SIGTERM, before the drain ended: %v", err)
	}
	if !gw.running() {
		t.Fatal("gateway exited with a tunnel open and the drain running")
	}
	// ...and closes it at its end; only then does the process exit.
	waitClosed(t, c, "tunnel at the end of the drain")
	if d := time.Since(signalled); d < time.Second {
		t.Errorf("tunnel closed %v after SIGTERM was logged, well before the 3s drain could end", d)
	}
	if err := gw.wait(t, stopTimeout); err != nil {
		t.Fatalf("gateway exit: %v, want status 0", err)
	}
	if !strings.Contains(gw.logText(), "stopped") {
		t.Error("gateway did not log a clean stop")
	}
}
