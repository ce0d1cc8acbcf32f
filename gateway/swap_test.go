package gateway

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// TestTableSwapsUnderLoadLoseNoRequest publishes over a thousand tables
// while clients keep sending requests: each swap changes the instance set
// and the route set, yet every request must succeed, because a request
// finishes on the table it loaded.
func TestTableSwapsUnderLoadLoseNoRequest(t *testing.T) {
	insts := startUpstreams(t, "a", "b", "c")
	gw := New(Options{})
	b := newTableBuilder(gw.deps)
	// Two shapes of table that both serve /api: the instance set and an
	// unrelated route alternate between swaps.
	shapes := []struct {
		routes []config.Route
		insts  []registry.Instance
	}{
		{[]config.Route{prefixRoute("api", "/api", "svc")}, insts},
		{[]config.Route{prefixRoute("api", "/api", "svc"), prefixRoute("extra", "/extra", "svc")}, insts[1:]},
	}
	publish := func(i int) {
		s := shapes[i%2]
		gw.Publish(b.build(s.routes, fixed(map[string][]registry.Instance{"svc": s.insts}), nil))
	}
	publish(0)
	srv := serve(t, gw)

	var stop atomic.Bool
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			client := srv.Client()
			for !stop.Load() {
				resp, err := client.Get(srv.URL + "/api/x")
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, resp.Status)
					continue
				}
				ok.Add(1)
			}
		})
	}
	const swaps = 1500
	for i := 1; i <= swaps; i++ {
		publish(i)
		// Let requests interleave with swaps instead of all swaps landing
		// before the first request: wait for progress every few swaps.
		if i%10 == 0 {
			before := ok.Load()
			testkit.WaitValue(t, "requests served after the swap", func() (int64, bool) { n := ok.Load(); return n, n > before })
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d swaps, %d requests succeeded, %d failed", swaps, ok.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed during table swaps; first: %v", failed.Load(), firstErr.Load())
	}
}

// TestBalancerStateOutlivesTableRebuilds checks that a rebuild (as on every
// health change) does not restart round-robin at the first instance.
func TestBalancerStateOutlivesTableRebuilds(t *testing.T) {
	insts := startUpstreams(t, "a", "b", "c")
	gw := New(Options{})
	b := newTableBuilder(gw.deps)
	routes := []config.Route{prefixRoute("api", "/api", "svc")}
	srv := serve(t, gw)
	var seq []string
	for range 6 {
		// A fresh table before every request, as if health changed each time.
		gw.Publish(b.build(routes, fixed(map[string][]registry.Instance{"svc": insts}), nil))
		_, body := get(t, srv.Client(), srv.URL+"/api")
		seq = append(seq, body["instance"])
	}
	want := []string{"a", "b", "c", "a", "b", "c"}
	for i := range want {
		if seq[i] != want[i] {
			t.Fatalf("instances across rebuilds = %v, want %v", seq, want)
		}
	}
}

// startUpstreams starts one echoing upstream per name.
func startUpstreams(t *testing.T, names ...string) []registry.Instance {
	t.Helper()
	var insts []registry.Instance
	for _, name := range names {
		_, in := startUpstream(t, name, nil)
		insts = append(insts, in)
	}
	return insts
}
