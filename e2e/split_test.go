package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/testkit"
)

// canaryDoc splits users between tags v1 and v2 with the given weights,
// v2 also reached with X-Canary: 1.
func canaryDoc(w1, w2 int) string {
	return fmt.Sprintf(`route "users" {
  path_prefix = "/api/users"
  split {
    service = "users"
    tag     = "v1"
    weight  = %d
  }
  split {
    service     = "users"
    tag         = "v2"
    weight      = %d
    when_header = { "X-Canary" = "1" }
  }
}
`, w1, w2)
}

// countInstances sends n GETs to url from clients goroutines and counts
// the instances that answered; any failure fails the test.
func countInstances(t *testing.T, url string, n, clients int, header ...string) map[string]int {
	t.Helper()
	var mu sync.Mutex
	got := map[string]int{}
	var failed []string
	var wg sync.WaitGroup
	per := n / clients
	for c := range clients {
		k := per
		if c == 0 {
			k += n - per*clients
		}
		wg.Go(func() {
			hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
			defer hc.CloseIdleConnections()
			for range k {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				if len(header) == 2 {
					req.Header.Set(header[0], header[1])
				}
				resp, err := hc.Do(req)
				if err != nil {
					mu.Lock()
					failed = append(failed, err.Error())
					mu.Unlock()
					continue
				}
				var body map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&body)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				inst, _ := body["instance"].(string)
				mu.Lock()
				if resp.StatusCode != http.StatusOK {
					failed = append(failed, resp.Status)
				} else {
					got[inst]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d requests failed; first: %s", len(failed), n, failed[0])
	}
	return got
}

// usersSplits is the users route's destinations in /routes.
func usersSplits(t *testing.T, gw *gatewayProc) []splitView {
	t.Helper()
	for _, r := range getRoutes(t, gw).Routes {
		if r.Name == "users" {
			return r.Splits
		}
	}
	return nil
}

// TestSplitCanaryThroughConsul: a 95/5 split of one service's tags,
// registered in a real Consul, measured over 10,000 requests through the
// built gateway; the header reaches v2 every time; new weights written to
// KV under load move the traffic with no failed request; a v2 gone
// critical loses its share to v1, with a /routes note and a metric.
func TestSplitCanaryThroughConsul(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	v1 := startTaggedBackend(t, client, "users", "users-v1", "v1")
	v2 := startTaggedBackend(t, client, "users", "users-v2", "v2")
	putRoute(t, client, "users.hcl", canaryDoc(95, 5))
	gw := startGateway(t, addr)
	testkit.WaitFor(t, "both destinations with their instance", func() bool {
		sp := usersSplits(t, gw)
		return len(sp) == 2 && len(sp[0].Instances) == 1 && len(sp[1].Instances) == 1
	})

	const n = 10_000
	got := countInstances(t, gw.url("/api/users"), n, 8)
	share := float64(got[v2.id]) / n
	t.Logf("95/5 split over %d requests: v1 %d (%.2f %%), v2 %d (%.2f %%)", n, got[v1.id], 100*float64(got[v1.id])/n, got[v2.id], 100*share)
	// 10,000 draws at p = 0.05 have a standard deviation of 0.22 %; 1 %
	// is over four of them, and holds for weighted random and smooth
	// weighted round robin alike.
	if math.Abs(share-0.05) > 0.01 || got[v1.id]+got[v2.id] != n {
		t.Fatalf("shares %v: v2 got %.2f %%, want 5 %% ± 1", got, 100*share)
	}
	sp := usersSplits(t, gw)
	if sp[0].Served != uint64(got[v1.id]) || sp[1].Served != uint64(got[v2.id]) {
		t.Errorf("/routes served %d/%d, the clients saw %v", sp[0].Served, sp[1].Served, got)
	}

	if forced := countInstances(t, gw.url("/api/users"), 100, 2, "X-Canary", "1"); forced[v2.id] != 100 {
		t.Fatalf("X-Canary: 1 reached %v, want v2 every time", forced)
	}

	// Shift to 5/95 under load: no request fails, and the new weights
	// serve once the gateway's table has them.
	l := startLoad(t, gw.url("/api/users"), 8)
	l.waitProgress(t, 500)
	putRoute(t, client, "users.hcl", canaryDoc(5, 95))
	took := testkit.WaitFor(t, "the new weights served", func() bool {
		sp := usersSplits(t, gw)
		return len(sp) == 2 && sp[1].Weight == 95
	})
	t.Logf("new weights served %v after the KV write", took)
	l.waitProgress(t, 2000)
	served := l.finish(t)
	sp = usersSplits(t, gw)
	if total := sp[0].Served + sp[1].Served; total < 2000 || math.Abs(float64(sp[1].Served)/float64(total)-0.95) > 0.02 {
		t.Fatalf("after the shift v1 %d, v2 %d: want about 95 %% to v2", sp[0].Served, sp[1].Served)
	}
	t.Logf("shift under load: %d requests, none failed; since the change v1 %d, v2 %d", served, sp[0].Served, sp[1].Served)

	// v2 critical: its share goes to v1, with no failed request.
	l = startLoad(t, gw.url("/api/users"), 4)
	l.waitProgress(t, 200)
	v2.setHealth(t, client, api.HealthCritical)
	testkit.WaitFor(t, "v2 shown unavailable", func() bool {
		sp := usersSplits(t, gw)
		return len(sp) == 2 && !sp[1].Available && sp[1].Note != ""
	})
	after := countInstances(t, gw.url("/api/users"), 500, 4)
	l.finish(t)
	if after[v1.id] != 500 {
		t.Fatalf("with v2 critical: %v, want every request on v1", after)
	}
	if u := sample(scrape(t, gw), "gateway_split_unavailable_total", "route=users", "destination=users:v2"); u < 500 {
		t.Errorf("gateway_split_unavailable_total{users:v2} = %v, want at least 500", u)
	}
	if code, _ := call(t, gw, "/api/users", "X-Canary: 1"); code != http.StatusServiceUnavailable {
		t.Errorf("forced to a v2 without instance: %d, want 503", code)
	}
}
