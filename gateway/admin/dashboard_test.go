package admin

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/internal/registrytest"
	"github.com/gatewayco/gateway/registry"
)

// syncHealth is a Health that also knows when Consul last answered, as
// registry.Status does.
type syncHealth struct {
	err  error
	last time.Time
}

func (s *syncHealth) Err() error             { return s.err }
func (s *syncHealth) LastSuccess() time.Time { return s.last }

func TestStateEndpointReportsRoutesErrorsConsulAndRates(t *testing.T) {
	clock := time.Unix(5000, 0).UTC()
	m := metrics.New(metrics.Options{})
	gw := gateway.New(gateway.Options{Metrics: m, Now: func() time.Time { return clock }})
	docs := &registrytest.Docs{}
	docs.Put("gateway/routes/users.hcl", "route \"users\" {\n  path_prefix = \"/api/users\"\n  methods     = [\"GET\"]\n  service     = \"users\"\n}\n")
	docs.Put("gateway/routes/bad.hcl", "route \"z\" {\n  nonsense = 1\n}\n")
	insts := &registrytest.Instances{}
	insts.Set("users", registry.Instance{ID: "users-1", Address: "10.0.0.7", Port: 9000, Passing: true})
	load(t, gw, docs, insts)
	health := &syncHealth{last: clock.Add(-2 * time.Second)}
	admin := Handler(gw, health)

	state := func() stateBody {
		t.Helper()
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, httptest.NewRequest("GET", "/api/state", nil))
		var s stateBody
		if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
			t.Fatalf("/api/state: %v\n%s", err, rec.Body)
		}
		return s
	}
	s := state()
	if s.Consul.Status != "ok" || s.Consul.LastSync == nil || !s.Consul.LastSync.Equal(health.last) {
		t.Errorf("consul = %+v, want ok with last sync %v", s.Consul, health.last)
	}
	if len(s.Entries) != 1 {
		t.Fatalf("entries = %+v, want the users route", s.Entries)
	}
	e := s.Entries[0]
	if e.Kind != "route" || e.Name != "users" || e.Match != "/api/users*" || e.Balancer != "round_robin" ||
		len(e.Services) != 1 || len(e.Services[0].Instances) != 1 || e.Services[0].Instances[0].Address != "10.0.0.7" {
		t.Errorf("entry = %+v", e)
	}
	if e.Rate != nil {
		t.Errorf("first poll has a rate %+v; want none (no earlier sample)", e.Rate)
	}
	if len(s.Errors) != 1 || !strings.Contains(s.Errors[0].Message, "bad.hcl:2:3") {
		t.Errorf("errors = %+v", s.Errors)
	}

	// 20 requests, 5 of them 5xx, over 2 s of the injected clock.
	rm := m.Route("users")
	for i := range 20 {
		status := 200
		if i%4 == 0 {
			status = 502
		}
		m.Observe(rm, "GET", status, time.Millisecond)
	}
	clock = clock.Add(2 * time.Second)
	health.err = errors.New("consul unreachable: connection refused")
	s = state()
	if s.Consul.Status != "degraded" || !strings.Contains(s.Consul.Reason, "connection refused") {
		t.Errorf("consul = %+v, want degraded with the reason", s.Consul)
	}
	r := s.Entries[0].Rate
	if r == nil || r.RequestsPerSecond != 10 || r.ErrorsPerSecond != 2.5 || r.ErrorRatio != 0.25 || r.WindowSeconds != 2 {
		t.Errorf("rate = %+v, want 10 req/s, 2.5 err/s, ratio 0.25 over 2 s", r)
	}
}

func TestRateWindowKeepsBoundedSpacedSamples(t *testing.T) {
	var w rateWindow
	t0 := time.Unix(0, 0)
	c := func(n uint64) map[string][2]uint64 { return map[string][2]uint64{"route/a": {n, 0}} }
	// Polls every 100 ms for 30 s: samples stay >= 1 s apart and <= 10 s old.
	for i := range 300 {
		w.observe(t0.Add(time.Duration(i)*100*time.Millisecond), c(uint64(i)))
	}
	if n := len(w.samples); n > int(rateWindowMax/rateSampleEvery)+1 {
		t.Fatalf("%d samples kept, want at most %d", n, int(rateWindowMax/rateSampleEvery)+1)
	}
	r := w.observe(t0.Add(30*time.Second), c(300))["route/a"]
	if r == nil || r.RequestsPerSecond != 10 || r.WindowSeconds > 10 || r.WindowSeconds < 9 {
		t.Fatalf("rate = %+v, want 10 req/s over about 10 s", r)
	}
	// After a pause longer than the window, the old samples are dropped.
	if r := w.observe(t0.Add(time.Minute), c(400))["route/a"]; r != nil {
		t.Fatalf("rate after a long pause = %+v, want none", r)
	}
	// A counter that went backwards (route re-created) yields no rate.
	w.observe(t0.Add(time.Minute+2*time.Second), c(100))
	if r := w.observe(t0.Add(time.Minute+3*time.Second), c(50))["route/a"]; r != nil {
		t.Fatalf("rate for a shrinking counter = %+v", r)
	}
}

func TestDashboardPageIsSelfContained(t *testing.T) {
	admin := Handler(gateway.New(gateway.Options{Metrics: metrics.New(metrics.Options{})}), nil)
	rec := httptest.NewRecorder()
	admin.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, banned := range []string{"http://", "https://", "<link", "src="} {
		if strings.Contains(body, banned) {
			t.Errorf("page references an external asset (%q)", banned)
		}
	}
	if !strings.Contains(body, `fetch("api/state"`) {
		t.Error("page does not poll api/state")
	}
	if !strings.Contains(body, `fetch("api/series"`) {
		t.Error("page does not poll api/series for its charts")
	}
	rec = httptest.NewRecorder()
	admin.ServeHTTP(rec, httptest.NewRequest("GET", "/nope", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404 (only / is the page)", rec.Code)
	}
	rec = httptest.NewRecorder()
	admin.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "gateway_config_reloads_total") {
		t.Errorf("GET /metrics = %d", rec.Code)
	}
}

// TestViewsShowBreakersAndAggregatesAsTheTableHasThem: /routes and the
// dashboard spell a breaker's state one way, and list an aggregate with
// its balancer and every call's instances.
func TestViewsShowBreakersAndAggregatesAsTheTableHasThem(t *testing.T) {
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(sick.Close)
	host, port, _ := net.SplitHostPort(sick.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	gw := gateway.New(gateway.Options{Metrics: metrics.New(metrics.Options{})})
	docs := &registrytest.Docs{}
	docs.Put("k", `
route "fragile" {
  path_prefix = "/fragile"
  service     = "sick"
  circuit_breaker {
    failure_ratio = 0.5
    min_requests  = 3
    open_timeout  = "1m"
  }
}
aggregate "dash" {
  path     = "/dash/{id}"
  balancer = "random"
  call "a" {
    service = "svc"
    path    = "/a/{id}"
  }
}
`)
	insts := &registrytest.Instances{}
	insts.Set("sick", registry.Instance{ID: "sick-1", Address: host, Port: p, Passing: true})
	insts.Set("svc", registry.Instance{ID: "s1", Address: "10.0.0.1", Port: 1, Passing: true},
		registry.Instance{ID: "s2", Address: "10.0.0.2", Port: 1, Passing: true})
	load(t, gw, docs, insts)
	public := httptest.NewServer(gw)
	t.Cleanup(public.Close)
	for range 4 {
		resp, err := public.Client().Get(public.URL + "/fragile")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	admin := Handler(gw, nil)
	rec := httptest.NewRecorder()
	admin.ServeHTTP(rec, httptest.NewRequest("GET", "/routes", nil))
	var routes struct {
		Routes []struct {
			Name           string `json:"name"`
			CircuitBreaker string `json:"circuit_breaker"`
		} `json:"routes"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &routes); err != nil {
		t.Fatal(err)
	}
	if len(routes.Routes) != 1 || routes.Routes[0].CircuitBreaker != "open" {
		t.Fatalf("/routes = %s; want fragile with its breaker open", rec.Body)
	}
	s := buildState(gw, nil, &rateWindow{})
	var found int
	for _, e := range s.Entries {
		switch e.Name {
		case "fragile":
			found++
			if e.Breaker != "open" {
				t.Errorf("dashboard breaker = %q, want open", e.Breaker)
			}
		case "dash":
			found++
			if e.Kind != "aggregate" || e.Balancer != "random" || len(e.Services) != 1 || len(e.Services[0].Instances) != 2 {
				t.Errorf("dashboard aggregate entry = %+v", e)
			}
		}
	}
	if found != 2 {
		t.Fatalf("dashboard entries = %+v", s.Entries)
	}
}
