//lint:file-ignore SA1019 net/http's Transport (Go 1.26) refuses the :protocol pseudo-header an extended CONNECT needs, so the client here is x/net's HTTP/2 transport, deprecated for that reason only.

package e2e

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/net/http2"

	"github.com/gatewayco/gateway/internal/testkit"
)

// TestSIGTERMWithHTTP2TunnelExitsZero: a WebSocket over HTTP/2 is a
// stream the TLS server's Shutdown waits for, unlike a hijacked HTTP/1.1
// connection. Closing it at the drain's end is the expected outcome, as
// for any tunnel, so the process must still exit 0.
func TestSIGTERMWithHTTP2TunnelExitsZero(t *testing.T) {
	// Go's HTTP/2 server offers extended CONNECT only with this setting,
	// read from the gateway's environment at its start.
	t.Setenv("GODEBUG", "http2xconnect=1")
	client, consulAddr := startConsul(t)
	startWSBackend(t, client, "echo", "echo-1")
	putRoute(t, client, "ws.hcl", routeDoc("ws", "/ws/", "echo"))
	pair := newCertPair(t, t.TempDir(), "gw", "gw.test")
	gw := startGateway(t, consulAddr, "-tls-listen", "127.0.0.1:0", "-tls-cert", pair.certFile, "-tls-key", pair.keyFile, "-drain-timeout", "1s")
	testkit.WaitFor(t, "route with its instance", func() bool {
		rs := getRoutes(t, gw).Routes
		return len(rs) == 1 && len(rs[0].Instances) == 1
	})
	tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: pair.pool, ServerName: "gw.test"}}
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodConnect, gw.tlsURL("/ws/x"), pr)
	req.Header.Set(":protocol", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("extended CONNECT: %d %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	gw.signal(t, syscall.SIGTERM)
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Log("stream ended cleanly at the drain's end")
	}
	if err := gw.wait(t, stopTimeout); err != nil {
		t.Fatalf("gateway exit: %v, want status 0\n%s", err, gw.logText())
	}
	if !strings.Contains(gw.logText(), "closed WebSocket tunnels at the end of the drain") {
		t.Error("the tunnel was not closed by the drain's end")
	}
}
