package balancer

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// pool is a Pool with weights, loads and availability set per test.
type pool struct {
	w    []int
	load []int64
	off  map[int]bool
}

func (p pool) Len() int             { return len(p.w) }
func (p pool) Available(i int) bool { return !p.off[i] }
func (p pool) Weight(i int) int     { return p.w[i] }
func (p pool) InFlight(i int) int64 {
	if p.load == nil {
		return 0
	}
	return p.load[i]
}

// TestSmoothRoundRobinIsNginxSequence checks the interleaving that makes
// it smooth: weights 5:1:1 give a a b a c a a every cycle (nginx's own
// example), never the five a's in a row a plain weighted round robin
// sends.
func TestSmoothRoundRobinIsNginxSequence(t *testing.T) {
	b, _ := New(RoundRobin)
	p := pool{w: []int{5, 1, 1}}
	want := []int{0, 0, 1, 0, 2, 0, 0}
	for cycle := range 3 {
		var got []int
		for range 7 {
			got = append(got, b.Pick(p))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("cycle %d = %v, want %v", cycle, got, want)
		}
	}
}

// TestSmoothRoundRobinSharesAreExact: over every cycle of W picks (W the
// sum of the weights) each instance gets exactly its weight, also while
// one instance is out, whose share is spread over the others in
// proportion to their weights, not handed to a neighbour.
func TestSmoothRoundRobinSharesAreExact(t *testing.T) {
	for _, c := range []struct {
		desc string
		p    pool
		want []int // picks per cycle of the available weights' sum
	}{
		{"3:1", pool{w: []int{3, 1}}, []int{3, 1}},
		{"95:5", pool{w: []int{95, 5}}, []int{95, 5}},
		{"2:3:5", pool{w: []int{2, 3, 5}}, []int{2, 3, 5}},
		{"one out of 3:1:2", pool{w: []int{3, 1, 2}, off: map[int]bool{1: true}}, []int{3, 0, 2}},
		{"weight below 1 counts as 1", pool{w: []int{0, 2}}, []int{1, 2}},
	} {
		b, _ := New(RoundRobin)
		cycle := 0
		for _, v := range c.want {
			cycle += v
		}
		for n := range 40 {
			got := make([]int, c.p.Len())
			for range cycle {
				got[b.Pick(c.p)]++
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("%s: cycle %d got %v, want %v", c.desc, n, got, c.want)
			}
		}
	}
}

// TestSmoothRoundRobinTriedInstanceSkipped: a retry's pool leaves out the
// instance it tried; the pick is another instance.
func TestSmoothRoundRobinTriedInstanceSkipped(t *testing.T) {
	b, _ := New(RoundRobin)
	p := pool{w: []int{3, 1}}
	for range 100 {
		first := b.Pick(p)
		retry := b.Pick(pool{w: p.w, off: map[int]bool{first: true}})
		if retry == first || retry < 0 {
			t.Fatalf("retry picked %d after %d", retry, first)
		}
	}
}

// TestRandomWeightedWithFixedSeed: weighted random over a fixed seed
// lands within a statistical tolerance of the weights' shares.
func TestRandomWeightedWithFixedSeed(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 1))
	b, _ := NewWithSource(Random, r.IntN)
	p := pool{w: []int{3, 1}}
	const picks = 4000
	counts := make([]int, 2)
	for range picks {
		counts[b.Pick(p)]++
	}
	// 75% expected; the standard deviation over 4000 picks is 0.7%.
	if share := float64(counts[0]) / picks; share < 0.72 || share > 0.78 {
		t.Errorf("weight 3 of 4 got %.1f%% (%v), want 75 ± 3%%", share*100, counts)
	}
}

// TestLeastRequestPrefersTheLessLoaded: of the two drawn, the one with
// fewer requests in flight per weight wins, whichever is drawn first.
func TestLeastRequestPrefersTheLessLoaded(t *testing.T) {
	for _, c := range []struct {
		desc string
		p    pool
		want int
	}{
		{"fewer in flight", pool{w: []int{1, 1}, load: []int64{5, 2}}, 1},
		{"weight halves the load", pool{w: []int{1, 3}, load: []int64{2, 5}}, 1}, // 2/1 > 5/3
		{"weight not enough", pool{w: []int{1, 2}, load: []int64{2, 5}}, 0},      // 2/1 < 5/2
		{"unavailable never", pool{w: []int{1, 1}, load: []int64{9, 0}, off: map[int]bool{1: true}}, 0},
	} {
		for _, draw := range []int{0, 1} {
			// The injected source makes the first draw land on instance
			// draw (its weight range starts at 0 for 0, at w[0] for 1).
			calls := 0
			intN := func(n int) int {
				calls++
				if calls == 1 && draw == 1 && !c.p.off[1] {
					return c.p.w[0]
				}
				return 0
			}
			b, _ := NewWithSource(LeastRequest, intN)
			if got := b.Pick(c.p); got != c.want {
				t.Errorf("%s, first draw %d: Pick = %d, want %d", c.desc, draw, got, c.want)
			}
		}
	}
}

// TestLeastRequestIdleFollowsWeights: with nothing in flight the draws
// alone decide, so an idle or sequential workload still gets the weights'
// shares.
func TestLeastRequestIdleFollowsWeights(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 2))
	b, _ := NewWithSource(LeastRequest, r.IntN)
	p := pool{w: []int{3, 1}}
	const picks = 4000
	counts := make([]int, 2)
	for range picks {
		counts[b.Pick(p)]++
	}
	if share := float64(counts[0]) / picks; share < 0.72 || share > 0.78 {
		t.Errorf("idle: weight 3 of 4 got %.1f%% (%v), want 75 ± 3%%", share*100, counts)
	}
}

// TestLeastRequestDrawsTwoDistinct: with a pool of two, both are always
// compared, so the loaded one never wins against an idle one.
func TestLeastRequestDrawsTwoDistinct(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 3))
	b, _ := NewWithSource(LeastRequest, r.IntN)
	p := pool{w: []int{1, 1}, load: []int64{3, 0}}
	for range 1000 {
		if got := b.Pick(p); got != 1 {
			t.Fatalf("Pick = %d, want the idle instance 1", got)
		}
	}
}
