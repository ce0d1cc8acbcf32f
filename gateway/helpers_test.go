package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway/accesslog"
	"github.com/gatewayco/gateway/internal/testkit"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// upstream is a real HTTP server standing for one service instance. It
// answers with its name so tests can see which instance served.
func startUpstream(t *testing.T, name string, h http.HandlerFunc) (*httptest.Server, registry.Instance) {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{
				"instance": name, "path": r.URL.Path, "raw_path": r.URL.RawPath, "host": r.Host,
				"xff": r.Header.Get("X-Forwarded-For"), "xfh": r.Header.Get("X-Forwarded-Host"),
				"xfp": r.Header.Get("X-Forwarded-Proto"), "conn_hdr": r.Header.Get("X-Hop"),
				"forged": r.Header.Get("X-Forwarded-Port") + r.Header.Get("X-Forwarded-Prefix") + r.Header.Get("X-Forwarded-Ssl") + r.Header.Get("X-Real-Ip"),
			})
		}
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, instanceOf(t, name, srv.Listener.Addr())
}

func instanceOf(t testing.TB, id string, addr net.Addr) registry.Instance {
	t.Helper()
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return registry.Instance{ID: id, Address: host, Port: p, Passing: true}
}

// fixed serves the same instances for every service key.
func fixed(m map[string][]registry.Instance) func(registry.ServiceKey) []registry.Instance {
	return func(k registry.ServiceKey) []registry.Instance { return m[k.Name] }
}

func prefixRoute(name, prefix, service string) config.Route {
	return config.Route{Name: name, PathPrefix: prefix, Service: service, Balancer: "round_robin", SourceKey: "test"}
}

// get sends a request through h and decodes a JSON answer.
func get(t *testing.T, client *http.Client, url string) (int, map[string]string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET %s: status %d, body %q is not a JSON object: %v", url, resp.StatusCode, body, err)
	}
	return resp.StatusCode, m
}

// serve starts the gateway on a real listener, as clients reach it.
func serve(t *testing.T, gw *Gateway) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return srv
}

func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// headerEcho is an upstream (or auth service, or aggregate call) that
// records the last header set it received and answers 200 with a JSON
// body, an X-User for copy_headers, and an X-Request-Id of its own, which
// the gateway must replace on the way back.
type headerEcho struct {
	mu   sync.Mutex
	last http.Header
}

func (h *headerEcho) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.last = r.Header.Clone()
	h.mu.Unlock()
	w.Header().Set("X-Request-Id", "upstream-own-id")
	w.Header().Set("X-User", "u1")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// got is the header set of the last request received.
func (h *headerEcho) got() http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// accessLogTo is an access log writing JSON lines to buf, flushed often
// so tests wait little; closed at cleanup.
func accessLogTo(t *testing.T, buf *testkit.Buffer) *accesslog.Logger {
	t.Helper()
	l := accesslog.New(buf, accesslog.Options{FlushInterval: 5 * time.Millisecond}, func(err error) { t.Errorf("access log: %v", err) })
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}

// closeIdle closes a transport's idle connections, so a test checking
// for leaked goroutines or sockets sees none left by kept-alive ones.
func closeIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
