package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// startConsul starts a real dev-mode agent for one test.
func startConsul(t *testing.T) (*api.Client, string) {
	t.Helper()
	srv := consultest.StartDev(t)
	return consulClient(t, srv.HTTPAddr), srv.HTTPAddr
}

func consulClient(t *testing.T, addr string) *api.Client {
	t.Helper()
	client, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// startGateway runs the gateway as main does, on loopback ports.
func startGateway(t *testing.T, consulAddr string, extra ...string) *app {
	t.Helper()
	return startGatewayLogged(t, consulAddr, hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}), extra...)
}

// startGatewayLogged is startGateway logging to logger, for tests that
// read the gateway's log.
func startGatewayLogged(t *testing.T, consulAddr string, logger hclog.Logger, extra ...string) *app {
	t.Helper()
	// Parse real flags, so tests run with the binary's defaults.
	var f serveFlags
	fs := newServeFlagSet(&f, io.Discard)
	if err := fs.Parse(append([]string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-consul", consulAddr, "-access-log=false"}, extra...)); err != nil {
		t.Fatal(err)
	}
	a, err := startApp(f, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.shutdown(5 * time.Second); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	testkit.WaitFor(t, "gateway /health answers 200", func() bool {
		code, _ := adminGet(t, a, "/health")
		return code == 200
	})
	return a
}

// testWriter sends gateway logs to the test log, so a failure shows them.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// backend is one upstream instance registered in Consul with a TTL check,
// so tests flip its health instantly instead of waiting for an interval.
type backend struct {
	id, service string
	srv         *httptest.Server
}

func startBackend(t *testing.T, client *api.Client, service, id string) *backend {
	t.Helper()
	return startBackendWith(t, client, service, id, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"instance": id, "path": r.URL.Path})
	})
}

// startBackendWith is startBackend with the upstream's own handler.
func startBackendWith(t *testing.T, client *api.Client, service, id string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{id: id, service: service}
	b.srv = httptest.NewServer(h)
	t.Cleanup(b.srv.Close)
	host, port, _ := net.SplitHostPort(b.srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: service, Address: host, Port: p,
		Check: &api.AgentServiceCheck{CheckID: "ttl-" + id, TTL: "10m"},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.setHealth(t, client, api.HealthPassing)
	return b
}

func (b *backend) setHealth(t *testing.T, client *api.Client, status string) {
	t.Helper()
	if err := client.Agent().UpdateTTL("ttl-"+b.id, "test", status); err != nil {
		t.Fatal(err)
	}
}

func putRoute(t *testing.T, client *api.Client, key, doc string) {
	t.Helper()
	if _, err := client.KV().Put(&api.KVPair{Key: "gateway/routes/" + key, Value: []byte(doc)}, nil); err != nil {
		t.Fatal(err)
	}
}

// getInstance sends one request through the gateway and returns its status
// and the instance that answered ("" for gateway errors).
func getInstance(t *testing.T, a *app, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + a.publicAddr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	inst, _ := body["instance"].(string)
	return resp.StatusCode, inst
}

func adminGet(t *testing.T, a *app, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + a.adminAddr + path)
	if err != nil {
		t.Fatalf("GET admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("admin %s: %v", path, err)
	}
	return resp.StatusCode, body
}

func routeDoc(name, prefix, service string) string {
	return fmt.Sprintf("route %q {\n  path_prefix = %q\n  service     = %q\n}\n", name, prefix, service)
}

// load keeps clients busy sending GETs to url until finish, counting
// successes and failures: the fault tests' "under concurrent load".
type load struct {
	ok, failed atomic.Int64
	firstErr   atomic.Value
	stop       atomic.Bool
	wg         sync.WaitGroup
}

func startLoad(t *testing.T, url string, clients int) *load {
	t.Helper()
	l := &load{}
	for range clients {
		l.wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
			// Closing its connections on exit lets leak checks count the
			// gateway's goroutines without the load's.
			defer c.CloseIdleConnections()
			for !l.stop.Load() {
				resp, err := c.Get(url)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				if err != nil {
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	t.Cleanup(func() { l.stop.Store(true); l.wg.Wait() })
	return l
}

// finish stops the clients and fails the test if any request failed.
func (l *load) finish(t *testing.T) int64 {
	t.Helper()
	l.stop.Store(true)
	l.wg.Wait()
	if n := l.failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed; first: %v", n, n+l.ok.Load(), l.firstErr.Load())
	}
	return l.ok.Load()
}

// waitProgress waits until the load has completed n more requests, so a
// fault is injected while traffic really flows.
func (l *load) waitProgress(t *testing.T, n int64) {
	t.Helper()
	base := l.ok.Load() + l.failed.Load()
	testkit.WaitFor(t, "load progress", func() bool { return l.ok.Load()+l.failed.Load() >= base+n })
}

// rawRequest sends req to the gateway's public listener byte for byte
// (Go's client would canonicalise the Host, the path or a missing Host)
// and returns the status and the JSON body's "instance" and "error".
func rawRequest(t *testing.T, a *app, req string) (status int, instance, errMsg string) {
	t.Helper()
	conn, err := net.Dial("tcp", a.publicAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	instance, _ = body["instance"].(string)
	errMsg, _ = body["error"].(string)
	return resp.StatusCode, instance, errMsg
}
