package gateway

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// mirrorsIdle reports whether no copy of the builder's last table holds a
// slot.
func mirrorsIdle(b *tableBuilder) bool {
	for _, s := range b.states.mirrors.prev {
		if s.InFlight() > 0 {
			return false
		}
	}
	return true
}

// TestMirrorShareIsExactWithInjectedSampler: with a sampler stepping
// through 0..99, a 10% mirror copies exactly a tenth of the requests, and
// a 2.5% one exactly its share, each to its own destination.
func TestMirrorShareIsExactWithInjectedSampler(t *testing.T) {
	var step atomic.Int64
	gw := New(Options{Proxy: ProxyOptions{MirrorSample: func() float64 { return float64((step.Add(1) - 1) % 100) }}})
	b := newTableBuilder(gw.deps)
	_, primary := startUpstream(t, "primary", nil)
	var tenth, small atomic.Int64
	_, m1 := startUpstream(t, "m1", func(w http.ResponseWriter, r *http.Request) { tenth.Add(1) })
	_, m2 := startUpstream(t, "m2", func(w http.ResponseWriter, r *http.Request) { small.Add(1) })
	r := prefixRoute("api", "/", "svc")
	r.Mirrors = []config.Mirror{{Service: "m1", Percent: 10, MaxConcurrency: 1024}, {Service: "m2", Percent: 2.5, MaxConcurrency: 1024}}
	gw.Publish(b.build([]config.Route{r}, fixed(map[string][]registry.Instance{"svc": {primary}, "m1": {m1}, "m2": {m2}}), nil))
	srv := serve(t, gw)
	const n = 4000
	for range n {
		if code, body := get(t, srv.Client(), srv.URL+"/x"); code != http.StatusOK || body["instance"] != "primary" {
			t.Fatalf("primary: %d %v", code, body)
		}
	}
	testkit.WaitFor(t, "copies done", func() bool { return mirrorsIdle(b) })
	// The two mirrors draw in turn from one sampler: every 50 requests
	// the first sees 0, 2, ..., 98 (five below 10) and the second 1, 3,
	// ..., 99 (one below 2.5).
	if got, want := tenth.Load(), int64(n/50*5); got != want {
		t.Errorf("10%% mirror got %d copies of %d requests, want %d (10%%)", got, n, want)
	}
	if got, want := small.Load(), int64(n/50*1); got != want {
		t.Errorf("2.5%% mirror got %d copies of %d requests, want %d (2%%: the numbers it draws are odd)", got, n, want)
	}
	t.Logf("%d requests: %d copies at 10%%, %d at 2.5%%", n, tenth.Load(), small.Load())
}

// TestMirrorFailuresNeverTouchThePrimary: a mirror whose every copy is
// reset leaves the primary's answers, its circuit breaker and its
// instances' ejection record alone.
func TestMirrorFailuresNeverTouchThePrimary(t *testing.T) {
	gw := New(Options{})
	b := newTableBuilder(gw.deps)
	_, primary := startUpstream(t, "primary", nil)
	bad, attempts := resettingUpstream(t)
	r := prefixRoute("api", "/", "svc")
	r.Policy.Retries = 1
	r.Policy.CircuitBreaker = &config.CircuitBreaker{FailureRatio: 0.5, MinRequests: 3, OpenTimeout: config.DefaultOpenTimeout}
	r.Mirrors = []config.Mirror{{Service: "svc", Tag: "shadow", Percent: 100, MaxConcurrency: 1024}}
	insts := func(k registry.ServiceKey) []registry.Instance {
		if k.Tag == "shadow" {
			return []registry.Instance{bad}
		}
		return []registry.Instance{primary}
	}
	tbl := b.build([]config.Route{r}, insts, nil)
	gw.Publish(tbl)
	srv := serve(t, gw)
	const n = 200
	for range n {
		if code, _ := get(t, srv.Client(), srv.URL+"/x"); code != http.StatusOK {
			t.Fatalf("primary answered %d", code)
		}
	}
	testkit.WaitFor(t, "copies done", func() bool { return mirrorsIdle(b) })
	if got := attempts.Load(); got != n {
		t.Errorf("mirror got %d copies, want %d", got, n)
	}
	rt := tbl.routes[0]
	if st, ok := rt.Breaker(); !ok || st != policy.BreakerClosed {
		t.Errorf("breaker %v after %d failed copies, want closed", st, n)
	}
	for _, in := range rt.InstanceStates(gw.deps.now()) {
		if in.Ejected {
			t.Errorf("instance %s ejected", in.HostPort())
		}
	}
}

// TestMirrorSlotsComeBackWhenThePrimaryNeverSends: a request with a body
// that never reaches an instance (its service has none: 503) gives its
// copy's slot back when it ends, so later requests are still mirrored.
func TestMirrorSlotsComeBackWhenThePrimaryNeverSends(t *testing.T) {
	gw := New(Options{})
	b := newTableBuilder(gw.deps)
	var copies atomic.Int64
	_, m := startUpstream(t, "m", func(w http.ResponseWriter, r *http.Request) { copies.Add(1) })
	r := prefixRoute("api", "/", "svc")
	r.Mirrors = []config.Mirror{{Service: "m", Percent: 100, MaxConcurrency: 1}}
	insts := map[string][]registry.Instance{"m": {m}}
	gw.Publish(b.build([]config.Route{r}, fixed(insts), nil))
	srv := serve(t, gw)
	for range 5 {
		resp, err := srv.Client().Post(srv.URL+"/x", "text/plain", strings.NewReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("no instance: status %d, want 503", resp.StatusCode)
		}
		testkit.WaitFor(t, "slot back", func() bool { return mirrorsIdle(b) })
	}
	if copies.Load() != 0 {
		t.Errorf("%d copies of requests whose body nobody read", copies.Load())
	}
}
