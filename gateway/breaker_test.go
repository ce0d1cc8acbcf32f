package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// switchable is an upstream whose answer status tests flip, counting hits.
type switchable struct {
	status atomic.Int64
	hits   atomic.Int64
}

func startSwitchable(t *testing.T, name string) (*switchable, registry.Instance) {
	t.Helper()
	s := &switchable{}
	s.status.Store(200)
	_, in := startUpstream(t, name, func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(s.status.Load()))
		_, _ = w.Write([]byte(`{"instance":"` + name + `","path":"` + r.URL.Path + `"}`))
	})
	return s, in
}

const breakerDoc = `
route "fb" {
  path_prefix = "/fb"
  service     = "fb"
  circuit_breaker {
    failure_ratio = 0.5
    min_requests  = 4
    open_timeout  = "200ms"
    fallback {
      status       = 200
      content_type = "application/json"
      body         = "{\"orders\": []}"
    }
  }
}
route "stale" {
  path_prefix = "/stale"
  service     = "stale"
  circuit_breaker {
    failure_ratio = 0.5
    min_requests  = 2
    open_timeout  = "1h"
    serve_stale   = true
  }
}
`

// breakerState is the route's breaker state as /routes shows it; "" for
// none.
func breakerState(rt *Route) string {
	if st, ok := rt.Breaker(); ok {
		return st.String()
	}
	return ""
}

func waitState(t *testing.T, pg *policyGateway, route, want string) {
	t.Helper()
	testkit.WaitValue(t, "the breaker state", func() (string, bool) { s := breakerState(pg.route(route)); return s, s == want })
}

func TestBreakerOpensOnRatioServesFallbackHalfOpensAndCloses(t *testing.T) {
	up, inst := startSwitchable(t, "fb-1")
	pg := startPolicyGateway(t, Options{}, breakerDoc, map[string][]registry.Instance{"fb": {inst}})

	// 4xx answers are the client's fault: they never trip the breaker.
	up.status.Store(404)
	for range 10 {
		if r := do(t, "GET", pg.url+"/fb"); r.status != 404 {
			t.Fatalf("status %d, want the upstream's 404", r.status)
		}
	}
	if s := breakerState(pg.route("fb")); s != "closed" {
		t.Fatalf("4xx answers opened the breaker: %s", s)
	}

	// The 10 answers above count as successes, so exactly 10 failures make
	// the ratio 10/20 = 0.5 and trip it. Each failure is passed to the
	// client as the upstream sent it.
	up.status.Store(500)
	for i := 1; i <= 10; i++ {
		if s := breakerState(pg.route("fb")); s != "closed" {
			t.Fatalf("breaker %s after %d of %d requests failed", s, i-1, 10+i-1)
		}
		if r := do(t, "GET", pg.url+"/fb"); r.status != 500 {
			t.Fatalf("status %d while closed, want the upstream's 500", r.status)
		}
	}
	if s := breakerState(pg.route("fb")); s != "open" {
		t.Fatalf("breaker %s after 10 of 20 failed, want open", s)
	}
	hits := up.hits.Load()
	r := do(t, "GET", pg.url+"/fb")
	if r.status != 200 || r.body != `{"orders": []}` || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("open breaker answered %d %q, want the fallback", r.status, r.body)
	}
	if up.hits.Load() != hits {
		t.Fatal("an open breaker let a request through to the upstream")
	}

	// The service recovers; after open_timeout one probe goes through and
	// its success closes the breaker.
	up.status.Store(200)
	waitState(t, pg, "fb", "half_open")
	if r := do(t, "GET", pg.url+"/fb"); r.status != 200 || !strings.Contains(r.body, "fb-1") {
		t.Fatalf("probe: %d %s", r.status, r.body)
	}
	if s := breakerState(pg.route("fb")); s != "closed" {
		t.Fatalf("breaker %s after a successful probe, want closed", s)
	}
}

func TestOpenBreakerServesStaleGETsElse503WithRetryAfter(t *testing.T) {
	up, inst := startSwitchable(t, "stale-1")
	pg := startPolicyGateway(t, Options{}, breakerDoc, map[string][]registry.Instance{"stale": {inst}})
	if r := do(t, "GET", pg.url+"/stale/a?q=1"); r.status != 200 {
		t.Fatalf("warm-up: %d", r.status)
	}
	up.status.Store(503)
	do(t, "GET", pg.url+"/stale/b") // 1 of 2 failed: ratio 0.5 reached
	if s := breakerState(pg.route("stale")); s != "open" {
		t.Fatalf("breaker %s, want open", s)
	}

	// A swap with the same policy keeps the open breaker and its cache.
	pg.publish(t, breakerDoc)
	r := do(t, "GET", pg.url+"/stale/a?q=1")
	if r.status != 200 || r.header.Get(policy.StaleHeader) != "1" || !strings.Contains(r.body, `"path":"/stale/a"`) {
		t.Fatalf("cached URL while open: %d %q %s, want the stale 200", r.status, r.header.Get(policy.StaleHeader), r.body)
	}
	for _, req := range []struct{ method, path string }{{"GET", "/stale/never-seen"}, {"POST", "/stale/a?q=1"}} {
		r := do(t, req.method, pg.url+req.path)
		// open_timeout is 1h: Retry-After is the time left, in seconds.
		if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); r.status != 503 || ra < 3500 || ra > 3600 || !strings.Contains(r.body, `"error":"circuit breaker open"`) {
			t.Fatalf("%s %s while open: %d Retry-After %q %s, want 503 JSON", req.method, req.path, r.status, r.header.Get("Retry-After"), r.body)
		}
	}
}

// TestStaleAnswersAreNeverPersonal: while the breaker is open, an answer
// that belonged to one user (credentials, cookies, Set-Cookie, private)
// is never replayed to another, and hosts never share answers.
func TestStaleAnswersAreNeverPersonal(t *testing.T) {
	var failing atomic.Bool
	_, inst := startUpstream(t, "stale-1", func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/stale/cookie":
			w.Header().Set("Set-Cookie", "session=alice")
		case "/stale/private":
			w.Header().Set("Cache-Control", "private, max-age=60")
		}
		fmt.Fprintf(w, `{"for":%q,"host":%q}`, r.Header.Get("Authorization")+r.Header.Get("Cookie"), r.Host)
	})
	pg := startPolicyGateway(t, Options{}, breakerDoc, map[string][]registry.Instance{"stale": {inst}})
	get := func(path string, headers ...string) response {
		t.Helper()
		req, _ := http.NewRequest("GET", pg.url+path, nil)
		for _, h := range headers {
			k, v, _ := strings.Cut(h, ": ")
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
	}

	get("/stale/me", "Authorization: Bearer alice")
	get("/stale/me-cookie", "Cookie: session=alice")
	get("/stale/cookie")
	get("/stale/private")
	get("/stale/public", "Host: a.example.com")
	failing.Store(true)
	for i := 0; i < 20 && breakerState(pg.route("stale")) != "open"; i++ {
		get(fmt.Sprintf("/stale/fail-%d", i))
	}
	if s := breakerState(pg.route("stale")); s != "open" {
		t.Fatalf("breaker %s, want open", s)
	}
	for _, tc := range []struct {
		path    string
		headers []string
	}{
		{"/stale/me", []string{"Authorization: Bearer bob"}},
		{"/stale/me", nil},
		{"/stale/me-cookie", []string{"Cookie: session=bob"}},
		{"/stale/me-cookie", nil},
		{"/stale/cookie", nil},
		{"/stale/private", nil},
		{"/stale/public", []string{"Host: b.example.com"}},
	} {
		if r := get(tc.path, tc.headers...); r.status != http.StatusServiceUnavailable || r.header.Get("Set-Cookie") != "" {
			t.Errorf("GET %s %v while open: %d %q %s; want 503, never another user's answer", tc.path, tc.headers, r.status, r.header.Get("Set-Cookie"), r.body)
		}
	}
	if r := get("/stale/public", "Host: a.example.com"); r.status != 200 || r.header.Get(policy.StaleHeader) != "1" {
		t.Errorf("the public answer for its own host: %d %s, want the stale 200", r.status, r.body)
	}
}
