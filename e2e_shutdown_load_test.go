package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
)

// TestSIGTERMUnderLoadCompletesEveryAcceptedRequest sends SIGTERM to the
// real binary while 8 clients keep sending requests that take a while
// upstream. Every request the gateway accepted must complete with 200; the
// only failures allowed are connections refused after it stopped
// listening, which were never accepted.
func TestSIGTERMUnderLoadCompletesEveryAcceptedRequest(t *testing.T) {
	client, addr := startConsul(t)
	var inFlight, maxInFlightAtSignal atomic.Int64
	startBackendWith(t, client, "slowish", "slowish-1", func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		time.Sleep(30 * time.Millisecond) // the upstream's work: requests overlap the signal
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	putRoute(t, client, "slowish.hcl", routeDoc("slowish", "/api/slowish", "slowish"))
	bin := buildGateway(t)
	p := startGatewayProcess(t, bin, "-consul", addr, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0",
		"-log-json", "-access-log=false", "-drain-timeout", "20s")
	url := "http://" + p.publicAddr + "/api/slowish"
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
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not exit after SIGTERM")
	}
	t.Logf("%d requests completed, %d upstream requests in flight at SIGTERM, %d clients refused afterwards", ok.Load(), maxInFlightAtSignal.Load(), refused.Load())
	if len(lost) > 0 {
		t.Fatalf("%d accepted requests failed at shutdown: %v", len(lost), lost)
	}
	if p.exitErr != nil {
		t.Fatalf("gateway exit: %v, want 0", p.exitErr)
	}
}
