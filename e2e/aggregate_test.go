package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
)

// dashboardUpstreams are the three services behind the aggregate. Each
// takes 200 ms for a normal answer; the user id in the call selects a
// failure instead. They count calls in flight across all three, so the
// test can see the calls overlap without measuring time.
type dashboardUpstreams struct {
	inflight, maxInflight atomic.Int32
	cancelled             chan string // service names whose request was cancelled
}

func (d *dashboardUpstreams) handler(service string, id func(*http.Request) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n := d.inflight.Add(1)
		defer d.inflight.Add(-1)
		for cur := d.maxInflight.Load(); n > cur && !d.maxInflight.CompareAndSwap(cur, n); cur = d.maxInflight.Load() {
		}
		user := id(r)
		switch {
		case user == "hang":
			<-r.Context().Done()
			d.cancelled <- service
			return
		case user == "missing" && service == "users":
			// Fail only once the other two calls reached their upstreams,
			// so there is something in flight to cancel.
			deadline := time.Now().Add(10 * time.Second)
			for d.inflight.Load() < 3 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			http.Error(w, `{"error":"no such user"}`, http.StatusNotFound)
			return
		case user == "fail" && service == "products":
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		case user == "html" && service == "products":
			_, _ = io.WriteString(w, "<html>maintenance</html>")
			return
		case user == "big" && service == "products":
			_, _ = fmt.Fprintf(w, `{"blob":%q}`, strings.Repeat("x", 8192))
			return
		}
		// Simulated service latency, the subject of the concurrency check.
		select {
		case <-time.After(200 * time.Millisecond):
		case <-r.Context().Done():
			d.cancelled <- service
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"service": service, "user": user, "uri": r.RequestURI,
			"auth": r.Header.Get("Authorization"), "request_id": r.Header.Get("X-Request-Id"),
		})
	}
}

const dashboardDoc = `
aggregate "dashboard" {
  path               = "/api/dashboard/{id}"
  methods            = ["GET"]
  timeout            = "2s"
  timeout_status     = 408
  max_response_bytes = 4096
  call "user" {
    service  = "users"
    path     = "/users/{id}"
    required = true
    timeout  = "300ms"
  }
  call "orders" {
    service = "orders"
    path    = "/orders?user={id}"
    timeout = "800ms"
  }
  call "recommendations" {
    service = "products"
    path    = "/products/recommended?user={id}&ref={query.ref}"
  }
}

aggregate "capped" {
  path            = "/api/capped/{id}"
  max_concurrency = 1
  call "user" {
    service = "users"
    path    = "/users/{id}"
  }
  call "orders" {
    service = "orders"
    path    = "/orders?user={id}"
  }
  call "recommendations" {
    service = "products"
    path    = "/products/recommended?user={id}"
  }
}
`

type dashAnswer struct {
	status  int
	partial string
	body    map[string]json.RawMessage
	errors  map[string]struct {
		Kind    string `json:"kind"`
		Status  int    `json:"status"`
		Message string `json:"message"`
	}
	elapsed time.Duration
}

// dashboardClient is the aggregate test's own client transport, so the
// test can close its connections before counting the gateway's goroutines.
var dashboardClient = &http.Transport{}

func getDashboard(t *testing.T, p *gatewayProc, path string) dashAnswer {
	t.Helper()
	req, _ := http.NewRequest("GET", p.url(path), nil)
	req.Header.Set("Authorization", "Bearer e2e")
	req.Header.Set("X-Request-Id", "req-7")
	start := time.Now()
	resp, err := dashboardClient.RoundTrip(req) // no redirect following
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	d := dashAnswer{status: resp.StatusCode, partial: resp.Header.Get("X-Gateway-Partial"), elapsed: time.Since(start)}
	_ = json.Unmarshal(raw, &d.body)
	if e, ok := d.body["errors"]; ok {
		if err := json.Unmarshal(e, &d.errors); err != nil {
			t.Fatalf("errors member %s: %v", e, err)
		}
	}
	t.Logf("GET %s -> %d in %v: %s", path, d.status, d.elapsed, raw)
	return d
}

// TestAggregateFansOutThroughConsulAndMergesJSON does not run in parallel
// with other tests: its user call has 100 ms between the upstream's 200 ms
// and the call's 300 ms timeout, a margin a machine busy with another
// test's load can eat.
func TestAggregateFansOutThroughConsulAndMergesJSON(t *testing.T) {
	client, addr := startConsul(t)
	up := &dashboardUpstreams{cancelled: make(chan string, 16)}
	pathID := func(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, "/users/") }
	queryID := func(r *http.Request) string { return r.URL.Query().Get("user") }
	upstreams := []*backend{
		startBackendWith(t, client, "users", "users-1", up.handler("users", pathID)),
		startBackendWith(t, client, "orders", "orders-1", up.handler("orders", queryID)),
		startBackendWith(t, client, "products", "products-1", up.handler("products", queryID)),
	}
	// closeConns closes the test's connections to the gateway and, from
	// the upstreams' side, the gateway's pooled ones to them, so the
	// gateway's goroutine count holds no connection at all.
	closeConns := func() {
		dashboardClient.CloseIdleConnections()
		for _, b := range upstreams {
			b.srv.CloseClientConnections()
		}
	}
	putRoute(t, client, "dashboard.hcl", dashboardDoc)
	a := startGateway(t, addr)
	waitAggregates(t, a, 2)
	// Warm up, then count the gateway's goroutines from here: requests must
	// not leave any behind.
	testkit.WaitFor(t, "a warm-up answer with every call", func() bool {
		return getDashboard(t, a, "/api/dashboard/0").status == http.StatusOK
	})
	closeConns()
	testkit.WaitFor(t, "the warm-up's client connection closed", func() bool {
		return sample(scrape(t, a), "gateway_connections_open") == 0
	})
	leaks := goroutineBaseline(t, a)

	t.Run("calls run concurrently and every member is merged", func(t *testing.T) {
		up.maxInflight.Store(0)
		d := getDashboard(t, a, "/api/dashboard/42?ref=home")
		if d.status != 200 || d.partial != "" || len(d.body) != 3 {
			t.Fatalf("got %d partial=%q body %v", d.status, d.partial, d.body)
		}
		if m := up.maxInflight.Load(); m != 3 {
			t.Fatalf("at most %d upstream calls were in flight at once, want all 3 together", m)
		}
		t.Logf("three 200 ms upstreams answered together in %v (the issue's target: < 350 ms)", d.elapsed)
		var user, recs map[string]string
		_ = json.Unmarshal(d.body["user"], &user)
		_ = json.Unmarshal(d.body["recommendations"], &recs)
		if user["uri"] != "/users/42" || recs["uri"] != "/products/recommended?user=42&ref=home" {
			t.Fatalf("upstream request URIs %q and %q", user["uri"], recs["uri"])
		}
		if user["auth"] != "Bearer e2e" || user["request_id"] != "req-7" {
			t.Fatalf("headers forwarded: %v", user)
		}
	})

	t.Run("concurrency cap is honoured", func(t *testing.T) {
		up.maxInflight.Store(0)
		d := getDashboard(t, a, "/api/capped/5")
		if d.status != 200 || len(d.body) != 3 {
			t.Fatalf("got %d body %v", d.status, d.body)
		}
		if m := up.maxInflight.Load(); m != 1 {
			t.Fatalf("%d calls in flight at once, want max_concurrency 1", m)
		}
		t.Logf("capped at 1: %v", d.elapsed)
	})

	tests := []struct {
		name, path string
		status     int
		partial    string
		call, kind string
	}{
		{"optional upstream 500 is a partial answer", "/api/dashboard/fail", 200, "true", "recommendations", "system"},
		{"optional non-JSON body is a system error", "/api/dashboard/html", 200, "true", "recommendations", "system"},
		{"optional oversized body is a system error", "/api/dashboard/big", 200, "true", "recommendations", "system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := getDashboard(t, a, tt.path)
			if d.status != tt.status || d.partial != tt.partial {
				t.Fatalf("got %d partial=%q, want %d %q", d.status, d.partial, tt.status, tt.partial)
			}
			if e := d.errors[tt.call]; e.Kind != tt.kind {
				t.Fatalf("errors %+v, want %s failing as %s", d.errors, tt.call, tt.kind)
			}
			if tt.status == 200 && string(d.body[tt.call]) != "null" {
				t.Fatalf("failed member %s = %s, want null", tt.call, d.body[tt.call])
			}
		})
	}

	// None of the requests so far cancelled anything: every upstream
	// answered on its own. The next two must cancel their siblings.
	cancelledSet := func(t *testing.T, n int) map[string]bool {
		t.Helper()
		got := map[string]bool{}
		for range n {
			select {
			case name := <-up.cancelled:
				got[name] = true
			case <-time.After(15 * time.Second):
				t.Fatalf("only %v saw a cancellation, want %d upstreams", got, n)
			}
		}
		return got
	}

	t.Run("required upstream 404 is a business error, 200 with error, and cancels the other calls", func(t *testing.T) {
		d := getDashboard(t, a, "/api/dashboard/missing")
		if d.status != 200 || d.body["error"] == nil || d.errors["user"].Kind != "business" || d.errors["user"].Status != 404 {
			t.Fatalf("got %d body %v, want 200 with error and user as a business 404", d.status, d.body)
		}
		// orders and products were mid-sleep: without cancellation they
		// would answer normally and never report.
		if got := cancelledSet(t, 2); !got["orders"] || !got["products"] {
			t.Fatalf("cancelled: %v, want orders and products", got)
		}
	})

	t.Run("required hanging upstream answers timeout_status and cancels the other calls", func(t *testing.T) {
		d := getDashboard(t, a, "/api/dashboard/hang")
		if d.status != 408 || d.errors["user"].Kind != "timeout" {
			t.Fatalf("got %d errors %+v, want timeout_status 408 with user as timeout", d.status, d.errors)
		}
		t.Logf("user call timeout 300ms, orders 800ms, aggregate 2s: answered after %v", d.elapsed)
		if got := cancelledSet(t, 3); !got["users"] || !got["orders"] || !got["products"] {
			t.Fatalf("cancelled: %v, want all three", got)
		}
	})

	t.Run("path variables cannot inject path segments", func(t *testing.T) {
		// Go decodes %2F before matching; the cleaned path no longer
		// matches the aggregate, so nothing reaches /admin upstream.
		d := getDashboard(t, a, "/api/dashboard/..%2F..%2Fadmin")
		if d.status == 200 {
			t.Fatalf("got 200 for an injected path: %v", d.body)
		}
		d = getDashboard(t, a, "/api/dashboard/7?ref=..%2F..%2Fadmin%26x%3D1")
		var recs map[string]string
		_ = json.Unmarshal(d.body["recommendations"], &recs)
		if d.status != 200 || recs["uri"] != "/products/recommended?user=7&ref=..%2F..%2Fadmin%26x%3D1" {
			t.Fatalf("got %d, upstream URI %q", d.status, recs["uri"])
		}
	})

	t.Run("aggregates are listed in /routes with their calls' instances", func(t *testing.T) {
		_, body := adminGet(t, a, "/routes")
		aggs, _ := body["aggregates"].([]any)
		if len(aggs) != 2 {
			t.Fatalf("aggregates: %v", body["aggregates"])
		}
		dash := aggs[1].(map[string]any) // sorted by name: capped, dashboard
		calls, _ := dash["calls"].([]any)
		if dash["name"] != "dashboard" || len(calls) != 3 {
			t.Fatalf("dashboard: %v", dash)
		}
		for _, c := range calls {
			if insts, _ := c.(map[string]any)["instances"].([]any); len(insts) != 1 {
				t.Fatalf("call without its instance: %v", c)
			}
		}
	})

	closeConns()
	checkGoroutinesBack(t, a, leaks)
}
