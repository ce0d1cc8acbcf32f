package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/upstream"
	"github.com/gatewayco/gateway/registry"
)

// benchRoutes makes n routes spread over 10 hosts and host-less routes,
// half path templates and half prefixes, like a large shared gateway.
func benchRoutes(n int) []config.Route {
	routes := make([]config.Route, 0, n)
	for i := range n {
		r := config.Route{Name: fmt.Sprintf("r%d", i), Service: fmt.Sprintf("svc%d", i%1000), Balancer: "round_robin"}
		if i%3 == 0 {
			r.Host = fmt.Sprintf("h%d.example.com", i%10)
		}
		if i%2 == 0 {
			r.Path = fmt.Sprintf("/api/s%d/items/{id}", i)
		} else {
			r.PathPrefix = fmt.Sprintf("/api/p%d/", i)
		}
		routes = append(routes, r)
	}
	return routes
}

// BenchmarkTableRebuild builds a table of 1,000 routes over 1,000
// services of 3 instances each, as every health change does.
func BenchmarkTableRebuild(b *testing.B) {
	gw := New(Options{})
	routes := benchRoutes(1000)
	insts := map[string][]registry.Instance{}
	for i := range 1000 {
		for j := range 3 {
			insts[fmt.Sprintf("svc%d", i)] = append(insts[fmt.Sprintf("svc%d", i)],
				registry.Instance{ID: fmt.Sprintf("i%d-%d", i, j), Address: "10.0.0.1", Port: 8000 + j, Passing: true})
		}
	}
	tb := newTableBuilder(gw.deps)
	b.ReportAllocs()
	for b.Loop() {
		tb.build(routes, fixed(insts), nil)
	}
}

// proxyBench is the gateway and request of the BenchmarkProxy variants:
// one prefix route, all policies off, to a local upstream answering a
// small JSON body.
func proxyBench(b *testing.B) (*Gateway, *http.Request) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	b.Cleanup(up.Close)
	gw := New(Options{})
	inst := instanceOf(b, "u", up.Listener.Addr())
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{prefixRoute("api", "/api", "svc")},
		fixed(map[string][]registry.Instance{"svc": {inst}}), nil))
	return gw, httptest.NewRequest("GET", "http://gw/api/users/7", nil)
}

// BenchmarkProxy is one proxied request through the whole gateway (table
// load, match, balancer, ReverseProxy, transport) to a local upstream,
// all policies off; allocations are the figure to watch.
func BenchmarkProxy(b *testing.B) {
	gw, req := proxyBench(b)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkProxyBare is BenchmarkProxy answering into a reused writer
// that allocates nothing, so allocs/op minus BenchmarkDirect's is the
// gateway's own count (httptest.ResponseRecorder adds about 7 of its own).
func BenchmarkProxyBare(b *testing.B) {
	gw, req := proxyBench(b)
	w := &bareWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.code = 0
		gw.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatal(w.code)
		}
	}
}

// bareWriter is a ResponseWriter that keeps the status and drops the body.
type bareWriter struct {
	h    http.Header
	code int
}

func (w *bareWriter) Header() http.Header { return w.h }

func (w *bareWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *bareWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}

// BenchmarkProxyAllPolicies is BenchmarkProxy through a route with every
// policy on: rate limit, JWT, retries and a circuit breaker.
func BenchmarkProxyAllPolicies(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	b.Setenv("BENCH_JWT_SECRET", "bench-secret")
	gw := New(Options{})
	inst := instanceOf(b, "u", up.Listener.Addr())
	doc, err := config.Parse("bench", []byte(`
route "api" {
  path_prefix = "/api"
  service     = "svc"
  retries     = 2
  timeout     = "5s"
  rate_limit {
    requests_per_second = 1e9
    burst               = 1000000000
    key                 = "jwt:sub"
  }
  jwt {
    algorithms = ["HS256"]
    secret_env = "BENCH_JWT_SECRET"
  }
  circuit_breaker {
    failure_ratio = 0.5
    min_requests  = 20
    open_timeout  = "30s"
  }
}
`), 1)
	if err != nil {
		b.Fatal(err)
	}
	gw.Publish(newTableBuilder(gw.deps).build(doc.Routes, fixed(map[string][]registry.Instance{"svc": {inst}}), nil))
	req := httptest.NewRequest("GET", "http://gw/api/users/7", nil)
	req.Header.Set("Authorization", "Bearer "+benchToken(b, "bench-secret"))
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

func benchToken(b *testing.B, secret string) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	s, err := tok.SignedString([]byte(secret))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkDirect is the floor BenchmarkProxy is read against: the same
// request sent straight to the same upstream over a transport configured
// like the gateway's. BenchmarkProxy minus BenchmarkDirect is what the
// gateway itself costs (allocations included).
func BenchmarkDirect(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	tr := upstream.NewTransport(0, 0)
	defer tr.CloseIdleConnections()
	buf := make([]byte, 32*1024)
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("GET", up.URL+"/users/7", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.CopyBuffer(io.Discard, resp.Body, buf)
		resp.Body.Close()
	}
}
