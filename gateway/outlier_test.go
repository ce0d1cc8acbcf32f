package gateway

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// resettingUpstream accepts connections and closes them at once, like a
// process that crashes on every request; it counts the attempts.
func resettingUpstream(t *testing.T) (registry.Instance, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			_ = c.(*net.TCPConn).SetLinger(0) // RST, not FIN
			c.Close()
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return instanceOf(t, "bad", ln.Addr()), &n
}

// TestFailingInstanceIsEjectedRetriedAfterAndForgottenWhenConsulDropsIt:
// with retries no GET fails; after five consecutive failures the instance
// gets no traffic until its ejection ends; an instance Consul removed and
// listed again starts with a clean record.
func TestFailingInstanceIsEjectedRetriedAfterAndForgottenWhenConsulDropsIt(t *testing.T) {
	_, good1 := startUpstream(t, "good-1", nil)
	_, good2 := startUpstream(t, "good-2", nil)
	bad, attempts := resettingUpstream(t)
	clock := testkit.NewClock()
	gw := New(Options{Now: clock.Now})
	b := newTableBuilder(gw.deps)
	r := prefixRoute("api", "/", "svc")
	r.Policy.Retries = 2
	all := []registry.Instance{good1, bad, good2}
	publish := func(insts []registry.Instance) {
		gw.Publish(b.build([]config.Route{r}, fixed(map[string][]registry.Instance{"svc": insts}), nil))
	}
	publish(all)
	srv := serve(t, gw)
	client := srv.Client()
	send := func(n int) {
		t.Helper()
		for range n {
			resp, err := client.Get(srv.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: a GET failed although two instances are healthy", resp.StatusCode)
			}
		}
	}

	send(60)
	if got := attempts.Load(); got != balancer.DefaultOutlierFailures {
		t.Fatalf("bad instance saw %d attempts in 60 requests, want exactly %d before its ejection", got, balancer.DefaultOutlierFailures)
	}
	if !gw.Table().Routes()[0].InstanceStates(clock.Now())[1].Ejected {
		t.Fatal("bad instance not marked ejected")
	}

	clock.Advance(balancer.DefaultOutlierEjection + time.Second)
	send(30)
	second := attempts.Load() - balancer.DefaultOutlierFailures
	if second != balancer.DefaultOutlierFailures {
		t.Fatalf("after the ejection ended the bad instance saw %d attempts, want %d (then ejected again)", second, balancer.DefaultOutlierFailures)
	}
	// The second ejection lasts twice as long.
	clock.Advance(balancer.DefaultOutlierEjection + time.Second)
	before := attempts.Load()
	send(30)
	if attempts.Load() != before {
		t.Fatal("a second ejection must last longer than the first")
	}

	// Consul drops the instance, then lists it again: clean record.
	publish([]registry.Instance{good1, good2})
	publish(all)
	if gw.Table().Routes()[0].InstanceStates(clock.Now())[1].Ejected {
		t.Fatal("an instance Consul listed again kept its old ejection")
	}
}

func TestOutlierEjectionCanBeTurnedOff(t *testing.T) {
	_, good := startUpstream(t, "good", nil)
	bad, attempts := resettingUpstream(t)
	gw := New(Options{Proxy: ProxyOptions{OutlierFailures: -1}})
	r := prefixRoute("api", "/", "svc")
	r.Policy.Retries = 1
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{r}, fixed(map[string][]registry.Instance{"svc": {good, bad}}), nil))
	srv := serve(t, gw)
	for range 40 {
		resp, err := srv.Client().Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// Round robin with retries sends the bad instance about every other
	// request; with ejection it would stop after balancer.DefaultOutlierFailures.
	if got := attempts.Load(); got <= 2*balancer.DefaultOutlierFailures {
		t.Fatalf("without ejection the bad instance saw only %d of 40 requests", got)
	}
}

// TestOversizedBodiesDoNotEjectInstances: a client crossing the body
// limit gets 413; the instance it was sent to keeps a clean record, so
// clients cannot take healthy instances out of rotation.
func TestOversizedBodiesDoNotEjectInstances(t *testing.T) {
	_, good := startUpstream(t, "good", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	})
	gw := New(Options{MaxBodyBytes: 1024})
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{prefixRoute("api", "/", "svc")},
		fixed(map[string][]registry.Instance{"svc": {good}}), nil))
	srv := serve(t, gw)
	for range 2 * balancer.DefaultOutlierFailures {
		// A reader without a length makes the body chunked, so the limit
		// is only crossed while the proxy streams it.
		resp, err := srv.Client().Post(srv.URL+"/upload", "text/plain", io.MultiReader(strings.NewReader(strings.Repeat("x", 64<<10))))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413", resp.StatusCode)
		}
	}
	if gw.Table().Routes()[0].InstanceStates(time.Now())[0].Ejected {
		t.Fatal("oversized client bodies ejected a healthy instance")
	}
}
