package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
)

// clusterLimit is the fleet-wide rate of the cluster test's route. Its
// burst leaves each replica a bucket of several tokens (30 ÷ 3): with a
// one-token bucket, what refills between a full bucket and the next
// request is lost, and the fleet accepts less than its limit (see the
// docs/policies.md on burst ÷ N). The load keeps every bucket near empty, so a
// window starts and ends with about no tokens in hand.
const (
	clusterLimit = 30.0
	clusterDoc   = `route "shared" {
  path_prefix = "/shared"
  service     = "shared"
  rate_limit {
    requests_per_second = 30
    burst               = 30
    scope               = "cluster"
  }
}
`
)

// pacedClient sends a GET to one gateway every interval until stopped,
// counting 200s and 429s: offered load well above the replica's share,
// so its accepted count is what its limiter lets through.
type pacedClient struct {
	ok, limited, other atomic.Int64
	cancel             context.CancelFunc
	done               chan struct{}
}

func startPaced(t *testing.T, url string, interval time.Duration) *pacedClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &pacedClient{cancel: cancel, done: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	go func() {
		defer close(c.done)
		defer client.CloseIdleConnections()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := client.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					c.other.Add(1)
				}
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				c.ok.Add(1)
			case http.StatusTooManyRequests:
				c.limited.Add(1)
			default:
				c.other.Add(1)
			}
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *pacedClient) stop() { c.cancel(); <-c.done }

// counts are one client's totals at one moment.
type counts struct{ ok, limited, other int64 }

func (c *pacedClient) counts() counts {
	return counts{c.ok.Load(), c.limited.Load(), c.other.Load()}
}

// acceptedRate measures the fleet's accepted rate: it waits until the
// clients got n more answers (a condition, not a sleep), then divides
// the 200s by the time that took. Any answer but 200 and 429 fails.
func acceptedRate(t *testing.T, clients []*pacedClient, n int64) (rate float64, ok, limited int64) {
	t.Helper()
	sum := func() counts {
		var s counts
		for _, c := range clients {
			x := c.counts()
			s.ok, s.limited, s.other = s.ok+x.ok, s.limited+x.limited, s.other+x.other
		}
		return s
	}
	start, t0 := sum(), time.Now()
	testkit.WaitFor(t, fmt.Sprintf("%d answers", n), func() bool {
		s := sum()
		return s.ok+s.limited+s.other-start.ok-start.limited-start.other >= n
	})
	end, elapsed := sum(), time.Since(t0)
	if end.other != start.other {
		t.Fatalf("%d answers neither 200 nor 429", end.other-start.other)
	}
	ok, limited = end.ok-start.ok, end.limited-start.limited
	return float64(ok) / elapsed.Seconds(), ok, limited
}

// waitReplicas waits until every gateway divides by want replicas.
func waitReplicas(t *testing.T, gws []*gatewayProc, want int) {
	t.Helper()
	for i, gw := range gws {
		testkit.WaitFor(t, fmt.Sprintf("gateway %d counts %d replicas", i, want), func() bool {
			return sample(scrape(t, gw), "gateway_cluster_replicas") == float64(want)
		})
	}
}

// TestClusterRateLimitHoldsForTheFleet runs three registered gateways on
// one Consul with a route limited to 30 requests/s for the fleet, offers
// each about five times its share, and checks the accepted rate of all
// three together is within 15 % of the limit; then kills one (SIGKILL,
// no deregistration: its check has to fail) and checks the other two
// converge on halves and again accept the fleet's limit together.
func TestClusterRateLimitHoldsForTheFleet(t *testing.T) {
	client, addr := startConsul(t)
	startBackend(t, client, "shared", "shared-1")
	putRoute(t, client, "shared.hcl", clusterDoc)
	var gws []*gatewayProc
	for range 3 {
		gws = append(gws, startGateway(t, addr, "-register", "-service-name", "gw-cluster"))
	}
	for i, gw := range gws {
		testkit.WaitFor(t, fmt.Sprintf("gateway %d serves the route", i), func() bool {
			code, _ := getInstance(t, gw, "/shared/x")
			return code == http.StatusOK || code == http.StatusTooManyRequests
		})
	}
	waitReplicas(t, gws, 3)

	// Each replica's share is 10/s; 50/s is offered to each.
	const interval = 20 * time.Millisecond
	var clients []*pacedClient
	for _, gw := range gws {
		clients = append(clients, startPaced(t, gw.url("/shared/x"), interval))
	}
	// The window starts once every bucket has been emptied.
	for i, c := range clients {
		testkit.WaitFor(t, fmt.Sprintf("gateway %d refuses", i), func() bool { return c.limited.Load() > 0 })
	}
	check := func(phase string, rate float64, ok, limited int64) {
		t.Helper()
		t.Logf("%s: %d accepted, %d refused, %.1f accepted/s for a limit of %.0f/s", phase, ok, limited, rate, clusterLimit)
		if rate < clusterLimit*0.85 || rate > clusterLimit*1.15 {
			t.Errorf("%s: fleet accepted %.1f requests/s, want %.0f ±15%%", phase, rate, clusterLimit)
		}
	}
	rate, ok, limited := acceptedRate(t, clients, 450)
	check("three replicas", rate, ok, limited)

	// Kill one without a chance to deregister: Consul learns of it from
	// its failing check.
	clients[2].stop()
	killed := time.Now()
	if err := gws[2].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = gws[2].wait(t, stopTimeout)
	waitReplicas(t, gws[:2], 2)
	t.Logf("the two left count 2 replicas %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	// Both buckets are empty again before the second window.
	for i, c := range clients[:2] {
		base := c.limited.Load()
		testkit.WaitFor(t, fmt.Sprintf("gateway %d refuses again", i), func() bool { return c.limited.Load() > base })
	}
	rate, ok, limited = acceptedRate(t, clients[:2], 300)
	check("two replicas", rate, ok, limited)
}
