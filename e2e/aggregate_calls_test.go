package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

const checkoutDoc = `
aggregate "checkout" {
  path    = "/api/checkout/{id}"
  methods = ["POST"]
  call "user" {
    service  = "users"
    path     = "/users/{id}"
    required = true
    cache    = true
  }
  call "account" {
    service = "accounts"
    path    = "/accounts/{user.account_id}"
    after   = "user"
  }
  call "order" {
    service = "orders"
    path    = "/orders?account={user.account_id}"
    after   = ["user"]
    method  = "POST"
    body    = "client"
  }
}
`

// TestAggregateSequenceAndWriteThroughConsul: through instances found in
// Consul, a call takes a value from another's answer into its path, a
// write gets the client's body, and the cached call is asked once for two
// requests (the cache metric says so).
func TestAggregateSequenceAndWriteThroughConsul(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	var userCalls atomic.Int32
	startBackendWith(t, client, "users", "users-1", func(w http.ResponseWriter, r *http.Request) {
		userCalls.Add(1)
		id := strings.TrimPrefix(r.URL.Path, "/users/")
		w.Header().Set("Cache-Control", "max-age=300")
		_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "account_id": "acc " + id})
	})
	startBackendWith(t, client, "accounts", "accounts-1", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"path": r.URL.EscapedPath()})
	})
	startBackendWith(t, client, "orders", "orders-1", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]string{"method": r.Method, "query": r.URL.RawQuery,
			"type": r.Header.Get("Content-Type"), "body": string(body)})
	})
	putRoute(t, client, "checkout.hcl", checkoutDoc)
	g := startGateway(t, addr)
	waitAggregates(t, g, 1)
	want := `{"user":{"account_id":"acc 7","id":"7"},"account":{"path":"/accounts/acc%207"},` +
		`"order":{"body":"{\"item\":3}","method":"POST","query":"account=acc+7","type":"application/json"}}`
	for i := range 2 {
		resp, err := http.Post(g.url("/api/checkout/7"), "application/json", strings.NewReader(`{"item":3}`))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(raw) != want {
			t.Fatalf("request %d: %d %s\nwant 200 %s", i, resp.StatusCode, raw, want)
		}
	}
	if n := userCalls.Load(); n != 1 {
		t.Errorf("the cached user call reached its service %d times, want 1", n)
	}
	fams := scrape(t, g)
	for result, want := range map[string]float64{"hit": 1, "miss": 1} {
		if got := sample(fams, "gateway_aggregate_cache_total", "aggregate=checkout", "call=user", "result="+result); got != want {
			t.Errorf("gateway_aggregate_cache_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}
