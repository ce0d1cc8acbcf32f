package gateway

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// byKey serves instances per service and tag, as Consul's health watches
// do for split destinations.
func byKey(m map[string][]registry.Instance) func(registry.ServiceKey) []registry.Instance {
	return func(k registry.ServiceKey) []registry.Instance { return m[k.String()] }
}

// canaryRoute is a 95/5 split of service u between tags v1 and v2, v2
// also reached with X-Canary: 1 or the cookie canary=1.
func canaryRoute(w1, w2 int) config.Route {
	r := prefixRoute("users", "/", "")
	r.Splits = []config.Split{
		{Service: "u", Tag: "v1", Weight: w1},
		{Service: "u", Tag: "v2", Weight: w2, WhenHeader: map[string]string{"X-Canary": "1"}, WhenCookie: map[string]string{"canary": "1"}},
	}
	return r
}

// splitFixture is a gateway with one instance per version.
type splitFixture struct {
	gw     *Gateway
	b      *tableBuilder
	m      *metrics.Metrics
	clock  *testkit.Clock
	srv    string
	client *http.Client
	v1, v2 registry.Instance
}

func newSplitFixture(t *testing.T) *splitFixture {
	t.Helper()
	_, v1 := startUpstream(t, "v1", nil)
	_, v2 := startUpstream(t, "v2", nil)
	m := metrics.New(metrics.Options{})
	clock := testkit.NewClock()
	gw := New(Options{Metrics: m, Now: clock.Now})
	srv := serve(t, gw)
	return &splitFixture{gw: gw, b: newTableBuilder(gw.deps), m: m, clock: clock, srv: srv.URL, client: srv.Client(), v1: v1, v2: v2}
}

func (f *splitFixture) publish(r config.Route, v1, v2 []registry.Instance) {
	f.gw.Publish(f.b.build([]config.Route{r}, byKey(map[string][]registry.Instance{"u:v1": v1, "u:v2": v2}), nil))
}

// send sends one GET with the header and cookie given (empty: none) and
// returns the status and the instance that answered.
func (f *splitFixture) send(t *testing.T, header, cookie string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv+"/x", nil)
	if header != "" {
		req.Header.Add("X-Canary", header)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("status %d, body %q is not JSON", resp.StatusCode, body)
	}
	inst, _ := m["instance"].(string)
	return resp.StatusCode, inst
}

// TestSplitSharesFollowWeightsAndMoveOffAnEmptyDestination: a 95/5 split
// sends about 5 % to v2 (the tolerance holds for weighted random and for
// smooth weighted round robin); with v2 empty every request goes to v1
// and none fails, the destination is shown unavailable and counted; the
// observed counts outlive a swap with unchanged weights and restart when
// the weights change.
func TestSplitSharesFollowWeightsAndMoveOffAnEmptyDestination(t *testing.T) {
	f := newSplitFixture(t)
	f.publish(canaryRoute(95, 5), []registry.Instance{f.v1}, []registry.Instance{f.v2})

	const n = 4000
	got := map[string]int{}
	for range n {
		status, inst := f.send(t, "", "")
		if status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
		got[inst]++
	}
	// 4000 draws at p = 0.05 have a standard deviation of 0.34 %; 1.5 %
	// is over four of them.
	if share := float64(got["v2"]) / n; math.Abs(share-0.05) > 0.015 || got["v1"]+got["v2"] != n {
		t.Fatalf("shares %v: v2 got %.2f %%, want 5 %% ± 1.5", got, 100*share)
	}
	st := f.gw.Table().Routes()[0].SplitStates(f.clock.Now())
	if len(st) != 2 || st[0].Served != uint64(got["v1"]) || st[1].Served != uint64(got["v2"]) || !st[0].Available || !st[1].Available {
		t.Fatalf("split states %+v, want served %v and both available", st, got)
	}

	// A swap with the same weights (an instance change) keeps the counts.
	f.publish(canaryRoute(95, 5), []registry.Instance{f.v1}, nil)
	for range 200 {
		if status, inst := f.send(t, "", ""); status != http.StatusOK || inst != "v1" {
			t.Fatalf("v2 has no instance: got %d from %q, want 200 from v1", status, inst)
		}
	}
	st = f.gw.Table().Routes()[0].SplitStates(f.clock.Now())
	if st[1].Available || st[0].Served != uint64(got["v1"]+200) || st[1].Served != uint64(got["v2"]) {
		t.Fatalf("split states %+v after v2 emptied", st)
	}
	if u := sample(t, f.m, "gateway_split_unavailable_total", "route", "users", "destination", "u:v2"); u != 200 {
		t.Errorf("gateway_split_unavailable_total{u:v2} = %v, want 200", u)
	}
	if s := sample(t, f.m, "gateway_split_requests_total", "route", "users", "destination", "u:v1"); s != float64(got["v1"]+200) {
		t.Errorf("gateway_split_requests_total{u:v1} = %v, want %d", s, got["v1"]+200)
	}

	// New weights: observed shares start again.
	f.publish(canaryRoute(50, 50), []registry.Instance{f.v1}, []registry.Instance{f.v2})
	if st = f.gw.Table().Routes()[0].SplitStates(f.clock.Now()); st[0].Served != 0 || st[1].Served != 0 {
		t.Fatalf("split states %+v after a weight change, want counts from zero", st)
	}

	// Nothing anywhere: 503 JSON.
	f.publish(canaryRoute(95, 5), nil, nil)
	if status, _ := f.send(t, "", ""); status != http.StatusServiceUnavailable {
		t.Fatalf("no destination has an instance: status %d, want 503", status)
	}

	// The route gone, so are its split series.
	f.gw.Publish(f.b.build([]config.Route{prefixRoute("other", "/", "u")}, byKey(nil), nil))
	if n := len(series(t, f.m, "gateway_split_requests_total")) + len(series(t, f.m, "gateway_split_unavailable_total")); n != 0 {
		t.Errorf("%d split series left after the split route went", n)
	}
}

// TestSplitForcedByHeaderOrCookie: a matching header or cookie reaches v2
// every time; a near miss (another value, the value as a second header
// value, a different case) does not force; a forced destination with no
// instance answers 503 instead of falling back to v1.
func TestSplitForcedByHeaderOrCookie(t *testing.T) {
	f := newSplitFixture(t)
	// Weight 0 for v2 would be reached only when forced; 1 keeps the test
	// about forcing, since v2 then gets almost nothing otherwise.
	f.publish(canaryRoute(10_000, 1), []registry.Instance{f.v1}, []registry.Instance{f.v2})
	for range 50 {
		if _, inst := f.send(t, "1", ""); inst != "v2" {
			t.Fatalf("X-Canary: 1 reached %q, want v2", inst)
		}
		if _, inst := f.send(t, "", "a=b; canary=1"); inst != "v2" {
			t.Fatalf("cookie canary=1 reached %q, want v2", inst)
		}
	}
	notForced := 0
	for _, c := range []struct{ header, cookie string }{{"2", ""}, {"01", ""}, {"", "canary=11"}, {"", "Canary=1"}} {
		for range 20 {
			if _, inst := f.send(t, c.header, c.cookie); inst == "v1" {
				notForced++
			}
		}
	}
	if notForced < 75 { // 80 requests at 1/10001 for v2
		t.Fatalf("near misses: only %d of 80 went to v1, they must not force v2", notForced)
	}
	// The value as the second of two header values does not force.
	req, _ := http.NewRequest(http.MethodGet, f.srv+"/x", nil)
	req.Header.Add("X-Canary", "0")
	req.Header.Add("X-Canary", "1")
	for range 20 {
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if m["instance"] == "v2" {
			notForced--
		}
	}
	if notForced < 75 {
		t.Fatalf("second header value forced v2")
	}

	f.publish(canaryRoute(95, 5), []registry.Instance{f.v1}, nil)
	req, _ = http.NewRequest(http.MethodGet, f.srv+"/x", nil)
	req.Header.Set("X-Canary", "1")
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/json" || body["error"] == nil {
		t.Fatalf("forced to an empty v2: %d %v %v, want a 503 JSON error", resp.StatusCode, resp.Header, body)
	}
}

// TestSplitDestinationStateOutlivesSwaps: each destination has its own
// circuit breaker, the same object in the next table while
// the route's policy is unchanged, as a one-service route's.
func TestSplitDestinationStateOutlivesSwaps(t *testing.T) {
	f := newSplitFixture(t)
	r := canaryRoute(95, 5)
	r.Policy.CircuitBreaker = &config.CircuitBreaker{FailureRatio: 0.5, MinRequests: 5, OpenTimeout: time.Second}
	f.publish(r, []registry.Instance{f.v1}, []registry.Instance{f.v2})
	first := f.gw.Table().Routes()[0].splitter.Destinations()
	f.publish(r, []registry.Instance{f.v1}, nil) // an instance change
	second := f.gw.Table().Routes()[0].splitter.Destinations()
	if first[0].Up.Breaker() == nil || first[0].Up.Breaker() == first[1].Up.Breaker() {
		t.Fatal("the destinations share a breaker, or have none")
	}
	for i := range first {
		if first[i].Up.Breaker() != second[i].Up.Breaker() || first[i].Served != second[i].Served {
			t.Errorf("destination %d: state not carried over the swap", i)
		}
	}
}
