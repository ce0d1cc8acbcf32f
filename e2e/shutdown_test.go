package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/testkit"
)

func TestSIGTERMDrainsInFlightRequestDeregistersAndExitsZero(t *testing.T) {
	t.Parallel()
	client, consulAddr := startConsul(t)

	// The upstream holds every request until the test releases it, so the
	// request is provably in flight when SIGTERM arrives.
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-time.After(30 * time.Second):
		}
		_, _ = io.WriteString(w, "slow answer")
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	host, port, _ := net.SplitHostPort(slow.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	if err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "slow-1", Name: "slow", Address: host, Port: p}); err != nil {
		t.Fatal(err)
	}
	putRoute(t, client, "slow.hcl", routeDoc("slow", "/api/slow", "slow"))

	gw := startGateway(t, consulAddr, "-register", "-drain-timeout", "20s")
	testkit.WaitFor(t, "route with its instance", func() bool {
		r := getRoutes(t, gw).Routes
		return len(r) == 1 && len(r[0].Instances) == 1
	})
	registered := func() bool {
		s, _, err := client.Catalog().Service("gateway", "", nil)
		return err == nil && len(s) == 1
	}
	testkit.WaitFor(t, "gateway registered", registered)

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(gw.url("/api/slow"))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{code: resp.StatusCode, body: string(b), err: err}
	}()
	<-arrived

	gw.signal(t, syscall.SIGTERM)
	testkit.WaitFor(t, "new connections refused", func() bool {
		c, err := net.DialTimeout("tcp", gw.public, time.Second)
		if err == nil {
			c.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})
	testkit.WaitFor(t, "gateway deregistered while the request drains", func() bool { return !registered() })
	select {
	case r := <-done:
		t.Fatalf("request finished before the upstream answered: %+v", r)
	default:
	}
	if !gw.running() {
		t.Fatalf("gateway exited with a request in flight: %v", gw.wait(t, stopTimeout))
	}

	start := time.Now()
	close(release)
	r := <-done
	if r.err != nil || r.code != 200 || r.body != "slow answer" {
		t.Fatalf("in-flight request: code %d body %q err %v; want 200 \"slow answer\"", r.code, r.body, r.err)
	}
	err := gw.wait(t, stopTimeout)
	t.Logf("release -> exit: %v", time.Since(start))
	if err != nil {
		t.Fatalf("exit: %v, want status 0", err)
	}
}

// TestSIGTERMUnderLoadCompletesEveryAcceptedRequest sends SIGTERM to the
// binary while 8 clients keep sending requests that take a while
// upstream. Every request the gateway accepted must complete with 200; the
// only failures allowed are connections refused after it stopped
// listening, which were never accepted.
func TestSIGTERMUnderLoadCompletesEveryAcceptedRequest(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	var inFlight, maxInFlightAtSignal atomic.Int64
	startBackendWith(t, client, "slowish", "slowish-1", func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		time.Sleep(30 * time.Millisecond) // the upstream's work: requests overlap the signal
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	putRoute(t, client, "slowish.hcl", routeDoc("slowish", "/api/slowish", "slowish"))
	p := startGateway(t, addr, "-drain-timeout", "20s")
	url := p.url("/api/slowish")
	testkit.WaitFor(t, "route served", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	var ok, refused atomic.Int64
	var mu sync.Mutex
	var lost []string
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
			defer c.CloseIdleConnections()
			for {
				resp, err := c.Get(url)
				if errors.Is(err, syscall.ECONNREFUSED) {
					refused.Add(1)
					return // the gateway stopped listening: never accepted
				}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						ok.Add(1)
						continue
					}
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				mu.Lock()
				lost = append(lost, err.Error())
				mu.Unlock()
				return
			}
		})
	}
	testkit.WaitFor(t, "load flowing", func() bool { return ok.Load() >= 100 })
	testkit.WaitFor(t, "requests in flight upstream", func() bool { return inFlight.Load() >= 2 })
	maxInFlightAtSignal.Store(inFlight.Load())
	p.signal(t, syscall.SIGTERM)
	wg.Wait()
	err := p.wait(t, stopTimeout)
	t.Logf("%d requests completed, %d upstream requests in flight at SIGTERM, %d clients refused afterwards", ok.Load(), maxInFlightAtSignal.Load(), refused.Load())
	if len(lost) > 0 {
		t.Fatalf("%d accepted requests failed at shutdown: %v", len(lost), lost)
	}
	if err != nil {
		t.Fatalf("gateway exit: %v, want 0", err)
	}
}
