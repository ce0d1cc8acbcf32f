package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gatewayco/gateway/internal/testkit"
)

// shadow is a mirror destination that records what reaches it and, while
// holding, keeps every request until released: a black hole.
type shadow struct {
	mu       sync.Mutex
	bodies   []string
	hosts    []string
	inFlight atomic.Int64
	peak     atomic.Int64
	hold     atomic.Bool
	arrived  chan struct{}
	release  chan struct{}
}

func (s *shadow) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, string(body))
	s.hosts = append(s.hosts, r.Host)
	s.mu.Unlock()
	if s.hold.Load() {
		select {
		case s.arrived <- struct{}{}:
		default:
		}
		<-s.release
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *shadow) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bodies)
}

func mirrorDoc(name, attrs string) string {
	return `route "` + name + `" {
  path_prefix = "/api/` + name + `"
  service     = "users"
  timeout     = "30s"
  mirror {
    service = "shadow"
` + attrs + `
  }
}
`
}

// TestMirrorCopiesShareAndNeverHoldsThePrimary: against real Consul and
// the built binary, a mirror at 10% copies about a tenth of the requests;
// a black-hole mirror (answering nothing until released) neither slows
// nor fails a primary request, holds at most max_concurrency copies and
// drops the rest, counted; a small body is copied whole, a body above the
// 64 KiB bound is not mirrored and is counted; the copies' goroutines are
// gone once the mirror answers.
func TestMirrorCopiesShareAndNeverHoldsThePrimary(t *testing.T) {
	client, addr := startConsul(t)
	startBackendWith(t, client, "users", "users-1", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"instance": "users-1", "read": n})
	})
	sh := &shadow{arrived: make(chan struct{}, 64), release: make(chan struct{})}
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(sh.release) }) }
	t.Cleanup(releaseAll)
	startBackendWith(t, client, "shadow", "shadow-1", sh.ServeHTTP)
	putRoute(t, client, "users.hcl", mirrorDoc("users", `    percent = 10`))
	gw := startGateway(t, addr)
	testkit.WaitFor(t, "route up", func() bool {
		rs := getRoutes(t, gw).Routes
		return len(rs) == 1 && len(rs[0].Instances) == 1
	})
	if ms := getRoutes(t, gw).Routes[0].Mirrors; len(ms) != 1 || ms[0].Service != "shadow" || ms[0].Percent != 10 || ms[0].MaxConcurrency != 16 {
		t.Errorf("/routes mirrors = %+v, want shadow at 10%% with 16 slots", ms)
	}
	metricOf := func(route, name string, labels ...string) float64 {
		return max(sample(scrape(t, gw), name, append([]string{"route=" + route, "mirror=shadow"}, labels...)...), 0)
	}
	metric := func(name string, labels ...string) float64 { return metricOf("users", name, labels...) }

	// A tenth, sampled by the gateway's own randomness: 2,000 requests
	// give 200 copies expected, standard deviation 13.4; the bounds are
	// 4.5 deviations away.
	const n = 2000
	for range n {
		if code, _ := getInstance(t, gw, "/api/users"); code != http.StatusOK {
			t.Fatalf("primary answered %d", code)
		}
	}
	testkit.WaitFor(t, "every copy counted", func() bool { return metric("gateway_mirror_requests_total", "result=ok") == float64(sh.received()) })
	got := sh.received()
	t.Logf("percent = 10: %d of %d requests mirrored (%.2f%%)", got, n, 100*float64(got)/n)
	if got < 140 || got > 260 {
		t.Errorf("mirrored %d of %d at 10%%, want 140..260", got, n)
	}
	for _, h := range sh.hosts[:1] {
		if !strings.HasSuffix(h, "-shadow") && !strings.Contains(h, "-shadow:") {
			t.Errorf("mirrored Host %q is not marked -shadow", h)
		}
	}

	// A black hole with room for two copies, on a route of its own so
	// no copy of the first route's table can reach it.
	baseline := goroutineBaseline(t, gw)
	putRoute(t, client, "users2.hcl", mirrorDoc("users2", "    percent = 100\n    max_concurrency = 2"))
	testkit.WaitFor(t, "second route", func() bool { return len(getRoutes(t, gw).Routes) == 2 })
	before := sh.received()
	sh.hold.Store(true)
	for range 2 {
		if code, _ := getInstance(t, gw, "/api/users2"); code != http.StatusOK {
			t.Fatalf("primary answered %d while the mirror holds", code)
		}
	}
	for range 2 {
		<-sh.arrived
	}
	const more = 50
	for range more {
		if code, _ := getInstance(t, gw, "/api/users2"); code != http.StatusOK {
			t.Fatalf("primary answered %d while the mirror holds", code)
		}
	}
	if d := metricOf("users2", "gateway_mirror_dropped_total", "reason=concurrency"); d != more {
		t.Errorf("dropped for concurrency: %v of %d requests while both slots were held, want all", d, more)
	}
	if p := sh.peak.Load(); p > 2 {
		t.Errorf("mirror saw %d copies at once, max_concurrency is 2", p)
	}
	t.Logf("black hole: %d primaries answered 200 with 2 copies held; peak copies in flight %d; %v dropped for concurrency",
		more, sh.peak.Load(), metricOf("users2", "gateway_mirror_dropped_total", "reason=concurrency"))
	sh.hold.Store(false)
	releaseAll()
	testkit.WaitFor(t, "held copies answered", func() bool { return metricOf("users2", "gateway_mirror_requests_total", "result=ok") == 2 })
	checkGoroutinesBack(t, gw, baseline)
	if sh.received()-before != 2 {
		t.Errorf("%d copies arrived, want the 2 held", sh.received()-before)
	}

	// Bodies, on the second route (every request, now unheld): a small
	// one is copied whole; one above 64 KiB, by length or
	// streamed without one, is not mirrored, and the primary still gets
	// all of it.
	post := func(body io.Reader, length int64) int64 {
		req, _ := http.NewRequest(http.MethodPost, gw.url("/api/users2"), body)
		req.ContentLength = length
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST: status %d", resp.StatusCode)
		}
		read, _ := m["read"].(float64)
		return int64(read)
	}
	small := strings.Repeat("s", 1000)
	before = sh.received()
	post(strings.NewReader(small), int64(len(small)))
	testkit.WaitFor(t, "small body mirrored", func() bool { return sh.received() == before+1 })
	sh.mu.Lock()
	if last := sh.bodies[len(sh.bodies)-1]; last != small {
		t.Errorf("mirrored body has %d bytes, want the %d sent", len(last), len(small))
	}
	sh.mu.Unlock()
	big := bytes.Repeat([]byte("b"), 100<<10)
	tooLarge := metricOf("users2", "gateway_mirror_dropped_total", "reason=body_too_large")
	if got := post(bytes.NewReader(big), int64(len(big))); got != int64(len(big)) {
		t.Errorf("primary read %d bytes of %d", got, len(big))
	}
	if got := post(io.MultiReader(bytes.NewReader(big)), -1); got != int64(len(big)) {
		t.Errorf("primary read %d bytes of %d streamed", got, len(big))
	}
	if d := metricOf("users2", "gateway_mirror_dropped_total", "reason=body_too_large") - tooLarge; d != 2 {
		t.Errorf("dropped as too large: %v, want 2", d)
	}
	if sh.received() != before+1 {
		t.Errorf("a body above the bound was mirrored")
	}
}
