package registry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/testkit"
)

func TestNewClientUsesEnvironmentAndAddrOverride(t *testing.T) {
	verifyNoLeaks(t)
	answer := func(int, fakeRequest) fakeAnswer { return fakeAnswer{Index: 1, Body: []*api.KVPair{}} }
	fromEnv, fromArg := newFakeConsul(t, answer), newFakeConsul(t, answer)
	t.Setenv(api.HTTPAddrEnvName, fromEnv.URL)
	t.Setenv(api.HTTPTokenEnvName, "secret-token")

	tests := []struct {
		name string
		addr string
		want *fakeConsul
	}{
		{"empty addr uses CONSUL_HTTP_ADDR", "", fromEnv},
		{"addr overrides CONSUL_HTTP_ADDR", fromArg.URL, fromArg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.want.count()
			client, transport, err := newClient(tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer transport.CloseIdleConnections()
			if transport.MaxConnsPerHost != ShortCallSlots || transport.MaxIdleConnsPerHost < ShortCallSlots {
				t.Errorf("MaxConnsPerHost = %d, MaxIdleConnsPerHost = %d; want %d and at least that", transport.MaxConnsPerHost, transport.MaxIdleConnsPerHost, ShortCallSlots)
			}
			if _, _, err := client.KV().List("x/", nil); err != nil {
				t.Fatal(err)
			}
			reqs := tt.want.requests()
			if len(reqs) != before+1 {
				t.Fatalf("request did not reach the expected server")
			}
			if tok := reqs[before].Token; tok != "secret-token" {
				t.Errorf("token = %q, want CONSUL_HTTP_TOKEN", tok)
			}
		})
	}

	// The exported wrapper must behave the same.
	if c, err := NewClient(""); err != nil || c == nil {
		t.Fatalf("NewClient: %v", err)
	}
}

func TestNewClientRejectsBadAddress(t *testing.T) {
	if _, err := NewClient("gopher://x"); err == nil {
		t.Fatal("want an error for an unknown scheme")
	}
}

// TestClientBoundsAnswerBodies answers with bodies past the client's bound,
// one announced by Content-Length and one streamed without it: both calls
// fail with ErrAnswerTooLarge rather than being decoded. A real agent
// cannot send a hostile answer, hence the plain HTTP server.
func TestClientBoundsAnswerBodies(t *testing.T) {
	verifyNoLeaks(t)
	const bound = 64 << 10
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Consul-Index", "1")
		check := `{"Node":"n","CheckID":"c","Status":"passing","Output":"` + strings.Repeat("x", 1000) + `"},`
		body := "[" + strings.Repeat(check, 2*bound/len(check)) + `{"Node":"n"}]`
		switch r.URL.Path {
		case "/v1/health/state/any":
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		case "/v1/health/service/web":
			w.(http.Flusher).Flush() // chunked: no length announced
		case "/v1/health/node/small":
			body = `[{"Node":"small","CheckID":"c","Status":"passing"}]`
		}
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	client, transport, err := newClientLimit(srv.URL, bound)
	if err != nil {
		t.Fatal(err)
	}
	defer transport.CloseIdleConnections()
	if _, _, err := client.Health().State("any", nil); !errors.Is(err, ErrAnswerTooLarge) {
		t.Errorf("announced oversize answer: err = %v, want ErrAnswerTooLarge", err)
	}
	if _, _, err := client.Health().Service("web", "", false, nil); !errors.Is(err, ErrAnswerTooLarge) {
		t.Errorf("streamed oversize answer: err = %v, want ErrAnswerTooLarge", err)
	}
	checks, _, err := client.Health().Node("small", nil)
	if err != nil || len(checks) != 1 {
		t.Errorf("small answer: %v, %v", checks, err)
	}
}

// TestClientAddressDefaultsToLoopbackIPv4: without -consul and
// CONSUL_HTTP_ADDR the client talks to 127.0.0.1:8500, as the help says,
// not the api package's localhost:8500.
func TestClientAddressDefaultsToLoopbackIPv4(t *testing.T) {
	t.Setenv(api.HTTPAddrEnvName, "")
	if got := Address(""); got != DefaultAddr || DefaultAddr != "127.0.0.1:8500" {
		t.Errorf("Address(\"\") = %q, want 127.0.0.1:8500", got)
	}
	if got := Address("10.0.0.1:8500"); got != "10.0.0.1:8500" {
		t.Errorf("Address(flag) = %q, want the flag's", got)
	}
	t.Setenv(api.HTTPAddrEnvName, "127.0.0.2:9500")
	if got := Address(""); got != "127.0.0.2:9500" {
		t.Errorf("Address(\"\") with CONSUL_HTTP_ADDR = %q, want the variable's", got)
	}
}

// TestConnectionsAreLanesPlusShortSlots holds the client to its design:
// however many short calls are made at once they share ShortCallSlots
// connections, waiting for one, while each lane (a watch loop's) holds a
// connection of its own that short calls never take.
func TestConnectionsAreLanesPlusShortSlots(t *testing.T) {
	verifyNoLeaks(t)
	release := make(chan struct{})
	var inFlight, conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		<-release
		w.Header().Set("X-Consul-Index", "1")
		_, _ = io.WriteString(w, "{}")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	client, transport, err := newClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer transport.CloseIdleConnections()
	var wg sync.WaitGroup
	defer wg.Wait()
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // first, also when a wait fails: the calls wait for it

	const short, lanes = 3 * ShortCallSlots, 3
	call := func(ctx context.Context) {
		wg.Go(func() {
			var out any
			if _, err := client.Raw().Query("/v1/x", &out, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
				t.Error(err)
			}
		})
	}
	for range short {
		call(context.Background())
	}
	testkit.WaitFor(t, "the short calls to fill their slots", func() bool { return inFlight.Load() == ShortCallSlots })
	ls := make([]lane, lanes)
	for i := range ls {
		call(withLane(context.Background(), &ls[i]))
	}
	// Every lane gets through beside the waiting short calls.
	testkit.WaitFor(t, "each lane's call beside them", func() bool { return inFlight.Load() == ShortCallSlots+lanes })
	if n := conns.Load(); n != ShortCallSlots+lanes {
		t.Errorf("%d connections with %d short calls and %d lanes busy, want %d", n, short, lanes, ShortCallSlots+lanes)
	}
	free()
	wg.Wait()
	if n := conns.Load(); n > ShortCallSlots+lanes {
		t.Errorf("%d connections opened in all, want at most %d", n, ShortCallSlots+lanes)
	}
	for i := range ls {
		ls[i].close()
	}
}
