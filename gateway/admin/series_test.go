package admin

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/internal/registrytest"
	"github.com/gatewayco/gateway/registry"
)

// lockedClock is a clock tests advance while the gateway reads it.
type lockedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *lockedClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *lockedClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func getJSON(t *testing.T, h http.Handler, path string, v any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", path, rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, rec.Body)
	}
}

func TestSeriesEndpointChartsRoutesAndUnmatchedOverTheInjectedClock(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/users/fail" {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	t.Cleanup(backend.Close)
	host, port, _ := net.SplitHostPort(backend.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	clock := &lockedClock{t: time.Unix(2_000_000, 0).UTC().Add(3 * time.Second)}
	m := metrics.New(metrics.Options{Now: clock.now})
	gw := gateway.New(gateway.Options{Metrics: m, Now: clock.now})
	docs := &registrytest.Docs{}
	docs.Put("gateway/routes/users.hcl", "route \"users\" {\n  path_prefix = \"/users\"\n  methods = [\"GET\", \"HEAD\"]\n  service = \"users\"\n}\n")
	docs.Put("gateway/routes/idle.hcl", "route \"idle\" {\n  path_prefix = \"/idle\"\n  service = \"users\"\n}\n")
	insts := &registrytest.Instances{}
	insts.Set("users", registry.Instance{ID: "u1", Address: host, Port: p, Passing: true})
	load(t, gw, docs, insts)
	public := httptest.NewServer(gw)
	t.Cleanup(public.Close)
	send := func(method, path string, n int) {
		t.Helper()
		for range n {
			req, _ := http.NewRequest(method, public.URL+path, nil)
			resp, err := public.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	admin := Handler(gw, nil)
	var body seriesBody
	getJSON(t, admin, "/api/series", &body)
	if len(body.Series) != 0 {
		t.Fatalf("series before any request: %+v", body.Series)
	}

	send("GET", "/users/1", 15)
	send("GET", "/users/fail", 5)
	send("GET", "/nowhere", 2)
	send("POST", "/users/1", 3)
	getJSON(t, admin, "/api/series", &body)
	byName := map[string]seriesView{}
	for _, s := range body.Series {
		byName[s.Name] = s
	}
	users, ok := byName["users"]
	if !ok || len(body.Series) != 2 || byName["unmatched"].Kind != "unmatched" {
		t.Fatalf("series = %+v; want users and unmatched only (idle had no request)", body.Series)
	}
	n := metrics.SeriesBuckets
	if body.BucketSeconds != 10 || len(users.Requests) != n || len(users.P99Millis) != n {
		t.Fatalf("users series has %d points of %v s", len(users.Requests), body.BucketSeconds)
	}
	// 3 s into the bucket: 20 requests is 6.667/s, a quarter of them 5xx.
	if users.Requests[n-1] != 20 || users.RequestsPerSecond[n-1] != 6.667 || users.ErrorRatio[n-1] != 0.25 || users.P50Millis[n-1] <= 0 {
		t.Errorf("users' last point: %d requests, %v/s, error ratio %v, p50 %v ms",
			users.Requests[n-1], users.RequestsPerSecond[n-1], users.ErrorRatio[n-1], users.P50Millis[n-1])
	}
	if u := byName["unmatched"]; u.Requests[n-1] != 5 || u.ErrorRatio[n-1] != 0 {
		t.Errorf("unmatched last point: %d requests, error ratio %v; want 5 (2 404 + 3 405), none 5xx", u.Requests[n-1], u.ErrorRatio[n-1])
	}
	var state stateBody
	getJSON(t, admin, "/api/state", &state)
	if state.Unmatched.NotFound != 2 || state.Unmatched.MethodNotAllowed != 3 {
		t.Errorf("state unmatched = %+v, want 2 404 and 3 405", state.Unmatched)
	}

	// The next bucket: the chart moves one point left and a new last
	// point starts from zero.
	clock.add(metrics.SeriesBucketWidth)
	send("GET", "/users/1", 4)
	getJSON(t, admin, "/api/series?name=users", &body)
	if len(body.Series) != 1 {
		t.Fatalf("?name=users gave %+v", body.Series)
	}
	users = body.Series[0]
	if users.Requests[n-2] != 20 || users.RequestsPerSecond[n-2] != 2 || users.Requests[n-1] != 4 || users.ErrorRatio[n-1] != 0 {
		t.Errorf("after a bucket: previous %d (%v/s), last %d (error ratio %v); want 20 (2/s) and 4 (0)",
			users.Requests[n-2], users.RequestsPerSecond[n-2], users.Requests[n-1], users.ErrorRatio[n-1])
	}
	if !users.Start.Equal(body.Now.Truncate(metrics.SeriesBucketWidth).Add(-time.Duration(n-1) * metrics.SeriesBucketWidth)) {
		t.Errorf("series starts %v, now %v", users.Start, body.Now)
	}

	// Fifteen idle minutes later nothing is left to draw.
	clock.add(metrics.SeriesBuckets * metrics.SeriesBucketWidth)
	getJSON(t, admin, "/api/series", &body)
	if len(body.Series) != 0 {
		t.Errorf("series after 15 idle minutes: %+v", body.Series)
	}
}

func TestRoutesShowEffectiveSettings(t *testing.T) {
	gw := gateway.New(gateway.Options{})
	docs := &registrytest.Docs{}
	t.Setenv("ADMIN_TEST_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret")
	docs.Put("gateway/routes/a.hcl", `
route "plain" {
  path_prefix = "/plain"
  service     = "svc"
}
route "guarded" {
  path_prefix  = "/api"
  service      = "svc"
  strip_prefix = "/api"
  timeout      = "2s"
  retries      = 2
  rate_limit {
    requests_per_second = 5
    burst               = 10
    key                 = "ip"
    scope               = "cluster"
  }
  jwt {
    algorithms = ["HS256"]
    secret_env = "ADMIN_TEST_SECRET"
  }
  circuit_breaker {
    failure_ratio = 0.5
  }
}
`)
	insts := &registrytest.Instances{}
	insts.Set("svc", registry.Instance{ID: "s1", Address: "10.0.0.1", Port: 1, Passing: true})
	load(t, gw, docs, insts)
	var body struct {
		Routes []struct {
			Name     string       `json:"name"`
			Settings settingsView `json:"settings"`
		} `json:"routes"`
	}
	rec := httptest.NewRecorder()
	Handler(gw, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/routes", nil))
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Routes) != 2 {
		t.Fatalf("/routes: %v\n%s", err, rec.Body)
	}
	got := map[string]settingsView{}
	for _, r := range body.Routes {
		got[r.Name] = r.Settings
	}
	plain, g := got["plain"], got["guarded"]
	if plain.Timeout != "none" || plain.Retries != 0 || plain.Policies != (policiesView{}) {
		t.Errorf("plain settings = %+v", plain)
	}
	if g.StripPrefix != "/api" || g.Timeout != "2s" || g.Retries != 2 {
		t.Errorf("guarded settings = %+v", g)
	}
	rl, j, cb := g.Policies.RateLimit, g.Policies.JWT, g.Policies.CircuitBreaker
	if rl == nil || rl.RequestsPerSecond != 5 || rl.Burst != 10 || rl.Key != "ip" || rl.Scope != "cluster" {
		t.Errorf("rate limit = %+v", rl)
	}
	if j == nil || j.KeySource != "secret_env ADMIN_TEST_SECRET" {
		t.Errorf("jwt = %+v", j)
	}
	// Defaults filled in: the operator sees what the breaker does.
	if cb == nil || cb.FailureRatio != 0.5 || cb.MinRequests != 20 || cb.OpenTimeout != "30s" {
		t.Errorf("circuit breaker = %+v", cb)
	}
	if strings.Contains(rec.Body.String(), "s3cret") {
		t.Error("/routes shows the JWT secret")
	}
}
