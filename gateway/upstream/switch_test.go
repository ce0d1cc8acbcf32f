package upstream

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/registry"
)

// TestSwitchToUnaskedProtocolIsClosed: an upstream answering 101 with a
// protocol the request did not ask for (or to a request that asked for
// none) gets a 502, and its connection is closed and its request no
// longer counts in flight; ReverseProxy alone would leave both open.
func TestSwitchToUnaskedProtocolIsClosed(t *testing.T) {
	for _, c := range []struct{ name, upgrade string }{{"websocket asked, other given", "websocket"}, {"nothing asked", ""}} {
		t.Run(c.name, func(t *testing.T) {
			closed := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, brw, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: other\r\n\r\n")
				_ = brw.Flush()
				_, _ = io.Copy(io.Discard, conn) // until the gateway closes it
				close(closed)
			}))
			defer srv.Close()
			addr := srv.Listener.Addr().(*net.TCPAddr)
			loads := balancer.NewLoadTracker()
			bal, _ := balancer.New(balancer.RoundRobin)
			tr := NewTransport(0, 0)
			defer tr.CloseIdleConnections()
			u := New(Config{Service: registry.ServiceKey{Name: "svc"}, Loads: loads, Balancer: bal, Transport: tr,
				Instances: []registry.Instance{{ID: "a", Address: addr.IP.String(), Port: addr.Port, Passing: true}}})
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if c.upgrade != "" {
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", c.upgrade)
				req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
				req.Header.Set("Sec-WebSocket-Version", "13")
			}
			req = req.WithContext(exchange.NewContext(req.Context(), &exchange.Exchange{Route: "r"}))
			rec := httptest.NewRecorder()
			NewProxy(nil, nil).Handler(&config.Route{Name: "r"}, u).ServeHTTP(rec, req)
			if rec.Code != http.StatusBadGateway {
				t.Errorf("answer %d, want 502", rec.Code)
			}
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream's connection was left open")
			}
			if n := u.loads[0].N(); n != 0 {
				t.Errorf("in flight after the refused switch = %d, want 0", n)
			}
		})
	}
}
