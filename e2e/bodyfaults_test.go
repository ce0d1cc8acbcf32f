package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
)

// bodyFault is a request whose body the client gets wrong. No HTTP client
// produces these, so they are written by hand over TCP.
type bodyFault struct {
	name string
	// raw is everything the client sends: headers and part of a body.
	raw string
	// halfClose: the client then closes its sending side (a body shorter
	// than its Content-Length), still waiting for the answer.
	halfClose bool
	// trickle: the client keeps sending one body byte every 20 ms and
	// never finishes.
	trickle bool
	status  int
}

func malformedChunked(path string) bodyFault {
	return bodyFault{name: "malformed chunked", status: http.StatusBadRequest,
		raw: "POST " + path + " HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n"}
}

func shortBody(path string) bodyFault {
	return bodyFault{name: "short body, then close", status: http.StatusBadRequest, halfClose: true,
		raw: "POST " + path + " HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n0123456789"}
}

func stalledBody(path string) bodyFault {
	return bodyFault{name: "stall mid-body", status: http.StatusRequestTimeout,
		raw: "POST " + path + " HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n0123456789"}
}

func trickledBody(path string) bodyFault {
	return bodyFault{name: "trickle forever", status: http.StatusRequestTimeout, trickle: true,
		raw: "POST " + path + " HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000000\r\n\r\n0123456789"}
}

// sendFault sends f on a new connection and checks the gateway's answer:
// f.status, a JSON error naming route, and the connection closed after it.
func sendFault(t *testing.T, addr, route string, f bodyFault) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A guard, not a measurement: a gateway that never answers fails the
	// test instead of hanging it.
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, f.raw); err != nil {
		t.Fatal(err)
	}
	if f.halfClose {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	if f.trickle {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := conn.Write([]byte("x")); err != nil {
						return
					}
				}
			}
		}()
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%s: no answer: %v", f.name, err)
	}
	var body struct{ Error, Route string }
	derr := json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != f.status || derr != nil || body.Error == "" || body.Route != route {
		t.Fatalf("%s: %s %+v (%v), want %d with a JSON error for route %q", f.name, resp.Status, body, derr, f.status, route)
	}
	// What follows a broken body cannot be read as a next request.
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("%s: connection still open after the answer: %v", f.name, err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestClientBodyFaultsAreNotUpstreamFailures: one client sending broken
// bodies gets 4xx answers, and the healthy instance behind the route is
// neither ejected nor counted as failing, nor does the route's breaker
// open: another client is served as before.
func TestClientBodyFaultsAreNotUpstreamFailures(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	b := startBackendWith(t, client, "body", "body-1", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return // the gateway gave up on the request; so do we
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"instance": "body-1"})
	})
	putRoute(t, client, "body.hcl", `route "body" {
  path_prefix = "/api/body"
  service     = "body"
  timeout     = "300ms"
  circuit_breaker {
    failure_ratio = 0.5
    min_requests  = 5
    open_timeout  = "1m"
  }
}
`)
	a := startGateway(t, addr)
	testkit.WaitFor(t, "route served", func() bool { code, _ := getInstance(t, a, "/api/body"); return code == 200 })

	faults := []bodyFault{malformedChunked("/api/body"), shortBody("/api/body"), stalledBody("/api/body")}
	const n = 50
	for i := range n {
		sendFault(t, a.public, "body", faults[i%len(faults)])
	}

	// Another client, on its own connection.
	if code, inst := getInstance(t, a, "/api/body"); code != 200 || inst != "body-1" {
		t.Fatalf("after %d client faults a good request got %d from %q, want 200 from body-1", n, code, inst)
	}
	rt := getRoutes(t, a).Routes[0]
	if inst := rt.Instances[0]; inst.Ejected || rt.CircuitBreaker != "closed" {
		t.Fatalf("after %d client faults /routes shows ejected=%v, breaker %v; want not ejected, closed", n, inst.Ejected, rt.CircuitBreaker)
	}
	fams := scrape(t, a)
	host := b.addr()
	if got := sample(fams, "gateway_upstream_errors_total", "service=body", "instance="+host); got > 0 {
		t.Fatalf("gateway_upstream_errors_total{instance=%q} = %v, want 0: client faults are not upstream errors", host, got)
	}
	// Malformed and short bodies answer 400, stalled ones 408.
	if got := max(sample(fams, "gateway_requests_total", "route=body", "code=400"), 0) +
		max(sample(fams, "gateway_requests_total", "route=body", "code=408"), 0); got != n {
		t.Fatalf("gateway_requests_total{route=body,code=400 or 408} = %v, want %d", got, n)
	}
	t.Logf("%d broken bodies from one client: all 4xx; instance not ejected, breaker closed, no upstream error counted", n)
}

// TestStalledBodyIsCutOff: a client that stops sending its body, or
// trickles it forever, is answered 408 once the route timeout or the body
// read timeout passes; the upstream request is cancelled, and no
// goroutine is left behind.
func TestStalledBodyIsCutOff(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	var reached, cancelled atomic.Int64
	startBackendWith(t, client, "slowbody", "slowbody-1", func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done() // never answers: only a cancelled request ends here
		cancelled.Add(1)
	})
	putRoute(t, client, "slowbody.hcl", `route "timed" {
  path_prefix = "/api/timed"
  service     = "slowbody"
  timeout     = "200ms"
}
route "untimed" {
  path_prefix = "/api/untimed"
  service     = "slowbody"
}
`)
	a := startGateway(t, addr, "-body-read-timeout", "300ms")
	testkit.WaitFor(t, "routes loaded", func() bool { return len(getRoutes(t, a).Routes) == 2 })
	goroutines := goroutineBaseline(t, a)

	cases := []struct {
		route string
		fault bodyFault
	}{
		{"timed", stalledBody("/api/timed")},     // the route timeout passes first
		{"timed", trickledBody("/api/timed")},    // never idle, but the route timeout bounds the body too
		{"untimed", stalledBody("/api/untimed")}, // no route timeout: the body read timeout
	}
	for _, c := range cases {
		t.Run(c.route+": "+c.fault.name, func(t *testing.T) {
			start := time.Now()
			sendFault(t, a.public, c.route, c.fault)
			t.Logf("answered 408 after %v", time.Since(start).Round(time.Millisecond))
		})
	}
	testkit.WaitFor(t, "every upstream request cancelled", func() bool { return cancelled.Load() == reached.Load() })
	if reached.Load() != int64(len(cases)) {
		t.Fatalf("upstream saw %d requests, want %d", reached.Load(), len(cases))
	}
	checkGoroutinesBack(t, a, goroutines)
}

// TestConnectionLimits: -max-conns stops accepting while that many client
// connections are open (the next one waits in the kernel's backlog until
// one closes, and the metrics show it), and -idle-timeout closes keep-alive
// connections left idle.
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	startBackend(t, client, "conns", "conns-1")
	putRoute(t, client, "conns.hcl", routeDoc("conns", "/api/conns", "conns"))

	// get sends a keep-alive GET on conn and reads the answer.
	get := func(t *testing.T, conn net.Conn, br *bufio.Reader) (*http.Response, error) {
		t.Helper()
		if _, err := io.WriteString(conn, "GET /api/conns HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	dial := func(t *testing.T, a *gatewayProc) (net.Conn, *bufio.Reader) {
		t.Helper()
		conn, err := net.Dial("tcp", a.public)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		// A guard against hanging, not a measurement.
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		return conn, bufio.NewReader(conn)
	}

	t.Run("max conns", func(t *testing.T) {
		a := startGateway(t, addr, "-max-conns", "2")
		testkit.WaitFor(t, "route loaded", func() bool { return len(getRoutes(t, a).Routes) == 1 })
		var conns []net.Conn
		for i := range 2 {
			conn, br := dial(t, a)
			if resp, err := get(t, conn, br); err != nil || resp.StatusCode != 200 {
				t.Fatalf("connection %d: %v %v", i+1, resp, err)
			}
			conns = append(conns, conn)
		}
		testkit.WaitFor(t, "the limit reported", func() bool {
			fams := scrape(t, a)
			return sample(fams, "gateway_connections_open") == 2 && sample(fams, "gateway_connections_limit_reached_total") >= 1
		})

		third, br := dial(t, a)
		answered := make(chan error, 1)
		go func() {
			resp, err := get(t, third, br)
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %s", resp.Status)
			}
			answered <- err
		}()
		// Proving that something does not happen takes a wait; 300 ms is
		// ample for a loopback request that would be served at once.
		select {
		case err := <-answered:
			t.Fatalf("third connection served while two were open (%v)", err)
		case <-time.After(300 * time.Millisecond):
		}
		if got := sample(scrape(t, a), "gateway_connections_open"); got != 2 {
			t.Fatalf("gateway_connections_open = %v with the third waiting, want 2", got)
		}
		conns[0].Close()
		if err := <-answered; err != nil {
			t.Fatalf("third connection after one closed: %v", err)
		}
		testkit.WaitFor(t, "open connections back to 2", func() bool { return sample(scrape(t, a), "gateway_connections_open") == 2 })
	})

	t.Run("idle timeout", func(t *testing.T) {
		a := startGateway(t, addr, "-idle-timeout", "300ms")
		testkit.WaitFor(t, "route loaded", func() bool { return len(getRoutes(t, a).Routes) == 1 })
		conn, br := dial(t, a)
		if resp, err := get(t, conn, br); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		start := time.Now()
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("idle keep-alive connection: %v, want closed by the gateway", err)
		}
		t.Logf("idle keep-alive connection closed after %v", time.Since(start).Round(time.Millisecond))
	})
}
