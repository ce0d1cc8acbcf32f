package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/internal/testkit"
)

func policyDoc(burst int, extra string) string {
	return `
route "api" {
  path_prefix = "/api"
  service     = "api"
  rate_limit {
    requests_per_second = 0.001
    burst               = ` + strconv.Itoa(burst) + `
  }
  forward_auth {
    service      = "auth"
    path         = "/verify"
    copy_headers = ["X-User-Id"]
  }
}
route "flaky" {
  path_prefix = "/flaky"
  service     = "flaky"
  circuit_breaker {
    failure_ratio = 0.5
    min_requests  = 3
    open_timeout  = "1h"
    fallback {
      body = "fallback"
    }
  }
}
` + extra
}

func send(t *testing.T, p *gatewayProc, path, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", p.url(path), nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestPoliciesFromKVDocumentRateLimitForwardAuthAndBreaker drives every
// Consul-facing part of route policies through a real agent: the
// forward_auth service is found through its own health watch, limiter
// state survives a table swap that leaves its policy alone and is reset by
// one that changes it, and a breaker trips and shows in /routes.
func TestPoliciesFromKVDocumentRateLimitForwardAuthAndBreaker(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	startBackend(t, client, "api", "api-1")
	startBackendWith(t, client, "auth", "auth-1", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer ok" {
			http.Error(w, "denied by auth", http.StatusForbidden)
			return
		}
		w.Header().Set("X-User-Id", "u-1")
	})
	startBackendWith(t, client, "flaky", "flaky-1", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	putRoute(t, client, "policies.hcl", policyDoc(2, ""))
	a := startGateway(t, addr)
	testkit.WaitFor(t, "routes with instances of api, auth and flaky", func() bool {
		// The first table already has every instance (the controller
		// waits for new watches), so /flaky answers the upstream's 500.
		code, body := send(t, a, "/flaky", "")
		return code == http.StatusInternalServerError || body == "fallback"
	})

	if code, body := send(t, a, "/api/x", "Bearer nope"); code != http.StatusForbidden || !strings.Contains(body, "denied by auth") {
		t.Fatalf("denied request: %d %q, want the auth service's 403", code, body)
	}
	// The denied request spent a token too (rate limiting runs first).
	if code, body := send(t, a, "/api/x", "Bearer ok"); code != 200 || !strings.Contains(body, "api-1") {
		t.Fatalf("allowed request: %d %q", code, body)
	}
	if code, _ := send(t, a, "/api/x", "Bearer ok"); code != http.StatusTooManyRequests {
		t.Fatalf("third request: %d, want 429", code)
	}

	// An unrelated change to the document: the api policy is unchanged, so
	// its buckets carry over and the client is still limited.
	putRoute(t, client, "policies.hcl", policyDoc(2, "route \"more\" {\n  path_prefix = \"/more\"\n  service = \"api\"\n}\n"))
	testkit.WaitFor(t, "new route served", func() bool { code, _ := send(t, a, "/more", ""); return code == 200 })
	if code, _ := send(t, a, "/api/x", "Bearer ok"); code != http.StatusTooManyRequests {
		t.Fatalf("after a swap with the same policy: %d, want 429 (limiter state kept)", code)
	}

	// Changing the policy takes effect on the next swap with fresh buckets.
	putRoute(t, client, "policies.hcl", policyDoc(5, ""))
	testkit.WaitFor(t, "changed rate limit served", func() bool { code, _ := send(t, a, "/api/x", "Bearer ok"); return code == 200 })

	// The breaker: 3 failures trip it; then the fallback answers and
	// /routes shows it open.
	for range 3 {
		send(t, a, "/flaky", "")
	}
	if code, body := send(t, a, "/flaky", ""); code != 200 || body != "fallback" {
		t.Fatalf("open breaker: %d %q, want the fallback", code, body)
	}
	for _, r := range getRoutes(t, a).Routes {
		if r.Name == "flaky" && r.CircuitBreaker != "open" {
			t.Fatalf("/routes shows breaker %q, want open", r.CircuitBreaker)
		}
	}
}
