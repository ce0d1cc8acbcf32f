package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/gatewayco/gateway/gateway/aggregate"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/registry"
)

// verifyNoLeaks fails the test if goroutines started during it outlive it.
// Call it first so its cleanup runs last, after servers and clients are gone.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	current := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, current) })
}

// testAggregate is an aggregate on path with the defaults Parse applies.
func testAggregate(path string, calls ...config.Call) config.Aggregate {
	return config.Aggregate{
		Name: "agg", SourceKey: "test", Path: path,
		TimeoutStatus: config.DefaultTimeoutStatus, BusinessStatus: config.DefaultBusinessStatus,
		MaxConcurrency: len(calls), MaxResponseBytes: config.DefaultMaxResponseBytes, Calls: calls,
	}
}

// serveAggregate publishes a table with the aggregate and serves it on a
// real listener.
func serveAggregate(t *testing.T, ag config.Aggregate, insts map[string][]registry.Instance) *httptest.Server {
	t.Helper()
	gw := New(Options{})
	// Registered before serve, so it runs after the server closed.
	t.Cleanup(func() { closeIdle(gw.deps.transport) })
	gw.Publish(newTableBuilder(gw.deps).buildAll(nil, []config.Aggregate{ag}, fixed(insts), nil, nil))
	return serve(t, gw)
}

type aggAnswer struct {
	status  int
	partial string
	body    map[string]json.RawMessage
	errors  map[string]aggregate.CallError
}

func getAggregate(t *testing.T, url string, hdr http.Header) aggAnswer {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := aggAnswer{status: resp.StatusCode, partial: resp.Header.Get("X-Gateway-Partial")}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("status %d, body %q is not a JSON object: %v", resp.StatusCode, raw, err)
	}
	if e, ok := a.body["errors"]; ok {
		if err := json.Unmarshal(e, &a.errors); err != nil {
			t.Fatalf("errors member %s: %v", e, err)
		}
	}
	return a
}

func jsonHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

func statusHandler(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", code) }
}

func TestAggregateMergesAndClassifiesCallOutcomes(t *testing.T) {
	verifyNoLeaks(t)
	handlers := map[string]http.HandlerFunc{
		"ok":       jsonHandler(`{"id":7}`),
		"list":     jsonHandler(`[1,2]`),
		"empty":    func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) },
		"notfound": statusHandler(404),
		"broken":   statusHandler(500),
		"html":     func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>oops</html>") },
		"big":      jsonHandler(`"` + strings.Repeat("x", 200) + `"`),
	}
	insts := map[string][]registry.Instance{}
	for name, h := range handlers {
		_, in := startUpstream(t, name, h)
		insts[name] = []registry.Instance{in}
	}
	// "nobody" has no instance at all.

	tests := []struct {
		name     string
		calls    map[string]bool // service -> required
		status   int
		partial  string
		members  map[string]string // call -> merged JSON (null for failed)
		failures map[string]aggregate.CallError
	}{
		{"all succeed", map[string]bool{"ok": true, "list": false, "empty": false}, 200, "",
			map[string]string{"ok": `{"id":7}`, "list": `[1,2]`, "empty": `null`}, nil},
		{"optional 500 is a partial system failure", map[string]bool{"ok": true, "broken": false}, 200, "true",
			map[string]string{"ok": `{"id":7}`, "broken": `null`},
			map[string]aggregate.CallError{"broken": {Kind: aggregate.KindSystem, Status: 500, Message: "upstream answered 500 Internal Server Error"}}},
		{"optional 404 is a partial business failure", map[string]bool{"ok": true, "notfound": false}, 200, "true",
			map[string]string{"ok": `{"id":7}`, "notfound": `null`},
			map[string]aggregate.CallError{"notfound": {Kind: aggregate.KindBusiness, Status: 404, Message: "upstream answered 404 Not Found"}}},
		{"optional non-JSON is a system failure", map[string]bool{"ok": true, "html": false}, 200, "true",
			map[string]string{"ok": `{"id":7}`, "html": `null`},
			map[string]aggregate.CallError{"html": {Kind: aggregate.KindSystem, Status: 502, Message: "upstream answered invalid JSON"}}},
		{"optional oversized body is a system failure", map[string]bool{"ok": true, "big": false}, 200, "true",
			map[string]string{"ok": `{"id":7}`, "big": `null`},
			map[string]aggregate.CallError{"big": {Kind: aggregate.KindSystem, Status: 502, Message: "response larger than 100 bytes"}}},
		{"optional without instances is a system failure", map[string]bool{"ok": true, "nobody": false}, 200, "true",
			map[string]string{"ok": `{"id":7}`, "nobody": `null`},
			map[string]aggregate.CallError{"nobody": {Kind: aggregate.KindSystem, Status: 503, Message: exchange.MsgNoInstance}}},
		{"required 404 answers 200 with an error", map[string]bool{"notfound": true, "ok": false}, 200, "", nil,
			map[string]aggregate.CallError{"notfound": {Kind: aggregate.KindBusiness, Status: 404, Message: "upstream answered 404 Not Found"}}},
		{"required 500 answers 502", map[string]bool{"broken": true, "ok": false}, 502, "", nil,
			map[string]aggregate.CallError{"broken": {Kind: aggregate.KindSystem, Status: 500, Message: "upstream answered 500 Internal Server Error"}}},
		{"required non-JSON answers 502", map[string]bool{"html": true}, 502, "", nil,
			map[string]aggregate.CallError{"html": {Kind: aggregate.KindSystem, Status: 502, Message: "upstream answered invalid JSON"}}},
		{"required without instances answers 503", map[string]bool{"nobody": true}, 503, "", nil,
			map[string]aggregate.CallError{"nobody": {Kind: aggregate.KindSystem, Status: 503, Message: exchange.MsgNoInstance}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []config.Call
			for _, svc := range []string{"ok", "list", "empty", "notfound", "broken", "html", "big", "nobody"} {
				if req, ok := tt.calls[svc]; ok {
					calls = append(calls, config.Call{Name: svc, Service: svc, Path: "/x", Required: req})
				}
			}
			ag := testAggregate("/agg", calls...)
			ag.MaxResponseBytes = 100
			srv := serveAggregate(t, ag, insts)
			got := getAggregate(t, srv.URL+"/agg", nil)
			if got.status != tt.status || got.partial != tt.partial {
				t.Fatalf("status %d partial %q, want %d %q; body %v", got.status, got.partial, tt.status, tt.partial, got.body)
			}
			for call, want := range tt.members {
				if string(got.body[call]) != want {
					t.Errorf("member %q = %s, want %s", call, got.body[call], want)
				}
			}
			if tt.members == nil {
				// A required failure is a gateway error naming the aggregate.
				var route string
				_ = json.Unmarshal(got.body["route"], &route)
				if route != "agg" || got.body["error"] == nil {
					t.Errorf("required failure body %v lacks error and route", got.body)
				}
			}
			if fmt.Sprint(got.errors) != fmt.Sprint(tt.failures) && (len(got.errors) != 0 || len(tt.failures) != 0) {
				t.Errorf("errors = %v, want %v", got.errors, tt.failures)
			}
		})
	}
}

func TestAggregateMembersFollowDeclarationOrder(t *testing.T) {
	verifyNoLeaks(t)
	_, in := startUpstream(t, "u", jsonHandler(`1`))
	insts := map[string][]registry.Instance{"u": {in}}
	ag := testAggregate("/agg",
		config.Call{Name: "zeta", Service: "u", Path: "/"},
		config.Call{Name: "alpha", Service: "u", Path: "/"},
		config.Call{Name: `q"uote`, Service: "u", Path: "/"})
	srv := serveAggregate(t, ag, insts)
	resp, err := http.Get(srv.URL + "/agg")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want := `{"zeta":1,"alpha":1,"q\"uote":1}`; string(body) != want {
		t.Fatalf("body %s, want %s", body, want)
	}
}

func TestAggregateEscapesPathAndQueryValues(t *testing.T) {
	verifyNoLeaks(t)
	var mu sync.Mutex
	var seen []string // request URIs as the upstream received them
	_, in := startUpstream(t, "u", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.RequestURI)
		mu.Unlock()
		_, _ = io.WriteString(w, `{}`)
	})
	insts := map[string][]registry.Instance{"u": {in}}
	ag := testAggregate("/d/{id}",
		config.Call{Name: "a", Service: "u", Path: "/users/{id}/q/{query.ref}"},
		config.Call{Name: "b", Service: "u", Path: "/orders?user={id}&ref={query.ref}"})
	srv := serveAggregate(t, ag, insts)

	tests := []struct {
		name, path string
		status     int
		want       []string // request URIs of calls a and b, sorted
	}{
		{"plain", "/d/42?ref=x", 200, []string{"/orders?user=42&ref=x", "/users/42/q/x"}},
		// Upstreams that normalise paths decode %2F: a slash in a path
		// value, even escaped, would reach another path.
		{"slash in a path value is refused", "/d/42?ref=../admin", 400, nil},
		{"query syntax in a path variable stays one value", "/d/1%26admin=true%3Fx?ref=r", 200,
			[]string{"/orders?user=1%26admin%3Dtrue%3Fx&ref=r", "/users/1&admin=true%3Fx/q/r"}},
		// An empty path value would call the collection ("/users/7/q/").
		{"missing value in the path is refused", "/d/7", 400, nil},
		{"dot-dot segment is refused", "/d/7?ref=..", 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			mu.Lock()
			defer mu.Unlock()
			slices.Sort(seen)
			if !slices.Equal(seen, tt.want) {
				t.Fatalf("upstream saw %q, want %q", seen, tt.want)
			}
		})
	}
}

func TestAggregateForwardsSelectedHeadersOnly(t *testing.T) {
	verifyNoLeaks(t)
	got := make(chan http.Header, 2)
	_, in := startUpstream(t, "u", func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		_, _ = io.WriteString(w, `{}`)
	})
	ag := testAggregate("/agg", config.Call{Name: "a", Service: "u", Path: "/"}, config.Call{Name: "b", Service: "u", Path: "/"})
	ag.ForwardHeaders = []string{"X-Tenant"}
	srv := serveAggregate(t, ag, map[string][]registry.Instance{"u": {in}})
	sent := http.Header{
		"Authorization": {"Bearer t"}, "X-Request-Id": {"r-1"}, "Traceparent": {"00-abc-def-01"},
		"Tracestate": {"k=v"}, "X-Tenant": {"acme"}, "Cookie": {"session=secret"},
		"X-Forwarded-For": {"6.6.6.6"}, "X-Other": {"no"},
	}
	if a := getAggregate(t, srv.URL+"/agg", sent); a.status != 200 {
		t.Fatalf("status %d", a.status)
	}
	for range 2 {
		h := <-got
		for _, k := range []string{"Authorization", "X-Request-Id", "Traceparent", "Tracestate", "X-Tenant"} {
			if h.Get(k) != sent.Get(k) {
				t.Errorf("%s = %q, want %q", k, h.Get(k), sent.Get(k))
			}
		}
		for _, k := range []string{"Cookie", "X-Other"} {
			if h.Get(k) != "" {
				t.Errorf("%s was forwarded: %q", k, h.Get(k))
			}
		}
		if h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Forwarded-Host") == "" {
			t.Errorf("X-Forwarded-* = %q %q %q, want the gateway's own", h.Get("X-Forwarded-For"), h.Get("X-Forwarded-Proto"), h.Get("X-Forwarded-Host"))
		}
	}
}

func TestAggregateHonoursConcurrencyCap(t *testing.T) {
	verifyNoLeaks(t)
	const calls, limit = 5, 2
	var inflight, maxSeen, started atomic.Int32
	_, in := startUpstream(t, "u", func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		started.Add(1)
		for cur := maxSeen.Load(); n > cur && !maxSeen.CompareAndSwap(cur, n); cur = maxSeen.Load() {
		}
		// Hold the slot until the cap is reached (or no more calls can
		// come), so the test observes the cap itself, not luck.
		deadline := time.Now().Add(5 * time.Second)
		for inflight.Load() < limit && started.Load() < calls && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		_, _ = io.WriteString(w, `{}`)
	})
	var cs []config.Call
	for i := range calls {
		cs = append(cs, config.Call{Name: fmt.Sprint("c", i), Service: "u", Path: "/"})
	}
	ag := testAggregate("/agg", cs...)
	ag.MaxConcurrency = limit
	srv := serveAggregate(t, ag, map[string][]registry.Instance{"u": {in}})
	a := getAggregate(t, srv.URL+"/agg", nil)
	if a.status != 200 || len(a.body) != calls {
		t.Fatalf("status %d, %d members, want 200 and %d", a.status, len(a.body), calls)
	}
	if m := maxSeen.Load(); m != limit {
		t.Fatalf("max calls in flight %d, want exactly the cap %d", m, limit)
	}
}

// hangingUntilCancelled answers only when its request is cancelled, and
// reports that it was.
func hangingUntilCancelled(started, cancelled chan<- string, name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		started <- name
		select {
		case <-r.Context().Done():
			cancelled <- name
		case <-time.After(30 * time.Second):
		}
	}
}

func TestAggregateRequiredTimeoutAnswersTimeoutStatusAndCancelsOthers(t *testing.T) {
	verifyNoLeaks(t)
	started, cancelled := make(chan string, 2), make(chan string, 2)
	_, slow := startUpstream(t, "slow", hangingUntilCancelled(started, cancelled, "slow"))
	_, other := startUpstream(t, "other", hangingUntilCancelled(started, cancelled, "other"))
	ag := testAggregate("/agg",
		config.Call{Name: "slow", Service: "slow", Path: "/", Required: true, Timeout: 150 * time.Millisecond},
		config.Call{Name: "other", Service: "other", Path: "/"})
	ag.Timeout = 5 * time.Second // the default timeout_status, 408
	srv := serveAggregate(t, ag, map[string][]registry.Instance{"slow": {slow}, "other": {other}})

	start := time.Now()
	a := getAggregate(t, srv.URL+"/agg", nil)
	t.Logf("required call timeout 150ms -> answered after %v", time.Since(start))
	if a.status != http.StatusRequestTimeout {
		t.Fatalf("status %d, want timeout_status 408; body %v", a.status, a.body)
	}
	if e := a.errors["slow"]; e.Kind != aggregate.KindTimeout {
		t.Fatalf("errors %v, want slow as a timeout", a.errors)
	}
	got := map[string]bool{<-cancelled: true, <-cancelled: true}
	if !got["slow"] || !got["other"] {
		t.Fatalf("upstreams that saw cancellation: %v, want slow and other", got)
	}
}

func TestAggregateRequiredFailureCancelsCallsInFlight(t *testing.T) {
	verifyNoLeaks(t)
	started, cancelled := make(chan string, 1), make(chan string, 1)
	_, other := startUpstream(t, "other", hangingUntilCancelled(started, cancelled, "other"))
	_, gone := startUpstream(t, "gone", func(w http.ResponseWriter, r *http.Request) {
		<-started // fail only once the other call is in flight
		http.Error(w, "no such user", http.StatusNotFound)
	})
	ag := testAggregate("/agg",
		config.Call{Name: "user", Service: "gone", Path: "/", Required: true},
		config.Call{Name: "other", Service: "other", Path: "/"})
	srv := serveAggregate(t, ag, map[string][]registry.Instance{"gone": {gone}, "other": {other}})
	if a := getAggregate(t, srv.URL+"/agg", nil); a.status != 200 || a.body["error"] == nil || a.errors["user"].Status != 404 {
		t.Fatalf("status %d body %v, want the required call's 404 as a business error: 200 with error", a.status, a.body)
	}
	if name := <-cancelled; name != "other" {
		t.Fatalf("cancelled %q", name)
	}
}

func TestAggregateOptionalTimeoutIsPartial(t *testing.T) {
	verifyNoLeaks(t)
	started, cancelled := make(chan string, 1), make(chan string, 1)
	_, slow := startUpstream(t, "slow", hangingUntilCancelled(started, cancelled, "slow"))
	_, ok := startUpstream(t, "ok", jsonHandler(`{"ok":true}`))
	ag := testAggregate("/agg",
		config.Call{Name: "ok", Service: "ok", Path: "/", Required: true},
		config.Call{Name: "slow", Service: "slow", Path: "/", Timeout: 100 * time.Millisecond})
	srv := serveAggregate(t, ag, map[string][]registry.Instance{"slow": {slow}, "ok": {ok}})
	a := getAggregate(t, srv.URL+"/agg", nil)
	if a.status != 200 || a.partial != "true" || string(a.body["slow"]) != "null" || a.errors["slow"].Kind != aggregate.KindTimeout {
		t.Fatalf("got %d partial=%q body %v errors %v", a.status, a.partial, a.body, a.errors)
	}
	<-cancelled
}

func TestAggregateAndRoutesShareMuxPrecedence(t *testing.T) {
	verifyNoLeaks(t)
	_, in := startUpstream(t, "u", nil) // answers {"instance":"u",...}
	gw := New(Options{})
	t.Cleanup(func() { closeIdle(gw.deps.transport) })
	ag := testAggregate("/api/dash/{id}", config.Call{Name: "c", Service: "u", Path: "/x/{id}"})
	gw.Publish(newTableBuilder(gw.deps).buildAll(
		[]config.Route{prefixRoute("api", "/api", "u")}, []config.Aggregate{ag},
		fixed(map[string][]registry.Instance{"u": {in}}), nil, nil))
	srv := serve(t, gw)

	// The aggregate's template is more specific than the route's prefix.
	if a := getAggregate(t, srv.URL+"/api/dash/1", nil); a.status != 200 || a.body["c"] == nil {
		t.Fatalf("/api/dash/1: %d %v, want the aggregate", a.status, a.body)
	}
	if code, body := get(t, http.DefaultClient, srv.URL+"/api/other"); code != 200 || body["path"] != "/api/other" {
		t.Fatalf("/api/other: %d %v, want the route", code, body)
	}
}

func TestAggregateQueryValuesMayBeEmptyInTheQuery(t *testing.T) {
	verifyNoLeaks(t)
	var seen atomic.Value
	_, in := startUpstream(t, "u", func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.RequestURI)
		_, _ = io.WriteString(w, `{}`)
	})
	ag := testAggregate("/d/{id}", config.Call{Name: "b", Service: "u", Path: "/orders?user={id}&ref={query.ref}"})
	srv := serveAggregate(t, ag, map[string][]registry.Instance{"u": {in}})
	resp, err := http.Get(srv.URL + "/d/7")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || seen.Load() != "/orders?user=7&ref=" {
		t.Fatalf("%d, upstream saw %v; want 200 and an empty ref", resp.StatusCode, seen.Load())
	}
}

// TestAggregateRejectsNonUTF8Bodies: json.Valid accepts invalid UTF-8
// inside strings; one such body would make the merged answer unreadable.
func TestAggregateRejectsNonUTF8Bodies(t *testing.T) {
	verifyNoLeaks(t)
	_, in := startUpstream(t, "u", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "{\"junk\":\"\xff\xfe\"}")
	})
	ag := testAggregate("/d/{id}", config.Call{Name: "b", Service: "u", Path: "/x/{id}"})
	srv := serveAggregate(t, ag, map[string][]registry.Instance{"u": {in}})
	resp, err := http.Get(srv.URL + "/d/7")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !utf8.Valid(body) || !json.Valid(body) || !strings.Contains(string(body), `"kind":"system"`) {
		t.Fatalf("merged body %q: want valid UTF-8 JSON with the call as a system error", body)
	}
}

// TestAggregateRequiredCallQueuedPastTheDeadlineFailsTheRequest: with a
// concurrency cap, a required call still waiting for a slot when the
// deadline passes never ran; the answer is the timeout status, not a 200.
func TestAggregateRequiredCallQueuedPastTheDeadlineFailsTheRequest(t *testing.T) {
	verifyNoLeaks(t)
	_, slow := startUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	_, fast := startUpstream(t, "fast", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{}`)
	})
	ag := testAggregate("/d/{id}",
		config.Call{Name: "extras", Service: "slow", Path: "/x/{id}"},
		config.Call{Name: "user", Service: "fast", Path: "/u/{id}", Required: true})
	ag.MaxConcurrency = 1
	ag.Timeout = 100 * time.Millisecond
	srv := serveAggregate(t, ag, map[string][]registry.Instance{"slow": {slow}, "fast": {fast}})
	resp, err := http.Get(srv.URL + "/d/7")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408 (the required call never ran before the deadline)", resp.StatusCode)
	}
}

// TestAggregateCallsUseTheAggregatesBalancer: every call of an aggregate
// picks its instance with the aggregate's balancer: strictly in turn under
// round_robin, not so under random.
func TestAggregateCallsUseTheAggregatesBalancer(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	answer := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, name)
			mu.Unlock()
			_, _ = io.WriteString(w, `{}`)
		}
	}
	_, a1 := startUpstream(t, "a-1", answer("a-1"))
	_, a2 := startUpstream(t, "a-2", answer("a-2"))
	for _, tc := range []struct {
		balancer string
		strict   bool
	}{{"round_robin", true}, {"random", false}} {
		t.Run(tc.balancer, func(t *testing.T) {
			ag := testAggregate("/agg", config.Call{Name: "c", Service: "svc", Path: "/x"})
			ag.Balancer = tc.balancer
			srv := serveAggregate(t, ag, map[string][]registry.Instance{"svc": {a1, a2}})
			mu.Lock()
			seen = nil
			mu.Unlock()
			for range 64 {
				if a := getAggregate(t, srv.URL+"/agg", nil); a.status != 200 {
					t.Fatalf("status %d", a.status)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			repeats := 0
			for i := 1; i < len(seen); i++ {
				if seen[i] == seen[i-1] {
					repeats++
				}
			}
			if (repeats == 0) != tc.strict {
				t.Errorf("%s: the same instance twice in a row %d times in %d calls", tc.balancer, repeats, len(seen))
			}
		})
	}
}
