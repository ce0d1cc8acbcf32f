package upstream

import (
	"fmt"
	"testing"
	"time"

	"github.com/gatewayco/gateway/balancer"
)

// TestSpreadIsEvenWithAnUnavailableInstance: with one of five instances
// out of rotation (ejected, or tried already by this request's earlier
// attempt), each of the other four gets a quarter of the picks under both
// balancers. Walking forward from a blind pick gave the next instance a
// double share (20/40/20/20).
func TestSpreadIsEvenWithAnUnavailableInstance(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, policy := range balancer.Names {
		for _, why := range []string{"ejected", "tried"} {
			t.Run(policy+"/"+why, func(t *testing.T) {
				bal, err := balancer.New(policy)
				if err != nil {
					t.Fatal(err)
				}
				u := &Upstream{balancer: bal, now: func() time.Time { return now }}
				for i := range 5 {
					u.hosts = append(u.hosts, fmt.Sprintf("127.0.0.1:%d", 9000+i))
					u.health = append(u.health, &balancer.InstanceHealth{})
				}
				var tried []int
				switch why {
				case "ejected":
					u.health[1].EjectUntil(now.Add(time.Minute))
				case "tried":
					tried = []int{1}
				}
				const picks = 4000
				counts := make([]int, 5)
				for range picks {
					counts[u.pick(&poolView{u: u, tried: tried})]++
				}
				if counts[1] != 0 {
					t.Fatalf("unavailable instance got %d picks: %v", counts[1], counts)
				}
				for i, c := range counts {
					if i == 1 {
						continue
					}
					if share := float64(c) / picks; share < 0.22 || share > 0.28 {
						t.Errorf("instance %d got %.1f%% of picks, want 25 ± 3%%; all: %v", i, share*100, counts)
					}
				}
			})
		}
	}
}

// TestEjectedInstanceIsTheLastResort: when every instance not yet tried is
// ejected, one of them is still tried rather than refusing the request.
func TestEjectedInstanceIsTheLastResort(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bal, _ := balancer.New(balancer.RoundRobin)
	u := &Upstream{balancer: bal, now: func() time.Time { return now },
		hosts: []string{"a:1", "b:1"}, health: []*balancer.InstanceHealth{{}, {}}}
	u.health[0].EjectUntil(now.Add(time.Minute))
	u.health[1].EjectUntil(now.Add(time.Minute))
	if got := u.pick(&poolView{u: u}); got < 0 {
		t.Fatalf("pick = %d with only ejected instances, want one of them", got)
	}
	if got := u.pick(&poolView{u: u, tried: []int{0}}); got != 1 {
		t.Fatalf("pick = %d with 0 tried and 1 ejected, want 1", got)
	}
}
