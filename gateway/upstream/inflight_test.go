package upstream

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/registry"
)

type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestInFlightCountsUntilBodyClosed: an instance's request is in flight
// from the send until its response body is closed (a streamed answer
// counts until it ends), or until the send fails; two upstreams of the
// same instance (two routes, one table after another) share the count.
func TestInFlightCountsUntilBodyClosed(t *testing.T) {
	fail := false
	tr := transportFunc(func(*http.Request) (*http.Response, error) {
		if fail {
			return nil, errors.New("refused")
		}
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("ok"))}, nil
	})
	loads := balancer.NewLoadTracker()
	bal, _ := balancer.New(balancer.LeastRequest)
	insts := []registry.Instance{{ID: "a", Address: "127.0.0.1", Port: 1, Passing: true, Weights: registry.Weights{Passing: 3, Warning: 1}}}
	cfg := Config{Instances: insts, Balancer: bal, Transport: tr, Loads: loads}
	u1, u2 := New(cfg), New(cfg)
	loads.Swap()
	v := u2.newView()
	defer releaseView(v)
	if w := v.Weight(0); w != 3 {
		t.Errorf("Weight = %d, want the Consul passing weight 3", w)
	}

	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	resp, err := u1.to(req, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := v.InFlight(0); n != 1 {
		t.Fatalf("in flight with the body open = %d, want 1 (seen through the other upstream)", n)
	}
	resp.Body.Close()
	resp.Body.Close() // a second Close must not count twice
	if n := v.InFlight(0); n != 0 {
		t.Fatalf("in flight after Close = %d, want 0", n)
	}
	fail = true
	if _, err := u1.to(req, 0); err == nil {
		t.Fatal("want the transport's error")
	}
	if n := v.InFlight(0); n != 0 {
		t.Fatalf("in flight after a failed send = %d, want 0", n)
	}
	// The next table's upstream of the same instance shares the count.
	u3 := New(cfg)
	if u3.loads[0] != u1.loads[0] {
		t.Error("a new table's upstream got a new count for the same instance")
	}
}
