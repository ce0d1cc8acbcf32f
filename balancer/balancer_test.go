package balancer

import (
	"errors"
	"sync"
	"testing"
)

func TestRoundRobinIsExactlyEvenUnderConcurrency(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7} {
		b, err := New(RoundRobin)
		if err != nil {
			t.Fatal(err)
		}
		const perWorker, workers = 3000, 8
		counts := make([][]int, workers)
		var wg sync.WaitGroup
		for w := range workers {
			counts[w] = make([]int, n)
			wg.Go(func() {
				for range perWorker {
					counts[w][b.Pick(Uniform(n))]++
				}
			})
		}
		wg.Wait()
		total := make([]int, n)
		for _, c := range counts {
			for i, v := range c {
				total[i] += v
			}
		}
		// 24000 picks over n endpoints: every endpoint gets exactly its share
		// whenever n divides the total, and never more than one extra.
		want := perWorker * workers / n
		for i, got := range total {
			if got < want || got > want+1 {
				t.Errorf("n=%d: endpoint %d got %d picks, want %d", n, i, got, want)
			}
		}
	}
}

func TestRoundRobinCyclesInOrder(t *testing.T) {
	b, _ := New("")
	var got []int
	for range 7 {
		got = append(got, b.Pick(Uniform(3)))
	}
	want := []int{0, 1, 2, 0, 1, 2, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("picks = %v, want %v", got, want)
		}
	}
}

func TestRoundRobinStateSurvivesSnapshotChange(t *testing.T) {
	// The cycle belongs to the service, not to a snapshot: a new pool of
	// the same instances (every table swap) continues it; one of another
	// length (indexes moved) starts a new one.
	b, _ := New(RoundRobin)
	b.Pick(Uniform(3))
	if got := b.Pick(Uniform(3)); got != 1 { // a new Pool value, same instances
		t.Fatalf("second pick = %d, want 1", got)
	}
	if got := b.Pick(Uniform(2)); got != 0 {
		t.Fatalf("pick after shrink = %d, want 0 (new cycle)", got)
	}
	if got := b.Pick(Uniform(2)); got != 1 {
		t.Fatalf("pick after shrink = %d, want 1", got)
	}
}

func TestRandomUsesInjectedSource(t *testing.T) {
	seq := []int{2, 0, 1}
	i := 0
	b := &random{intN: func(n int) int { v := seq[i%len(seq)] % n; i++; return v }}
	for _, want := range seq {
		if got := b.Pick(Uniform(3)); got != want {
			t.Fatalf("Pick = %d, want %d", got, want)
		}
	}
}

func TestRandomCoversEveryEndpoint(t *testing.T) {
	b, _ := New(Random)
	seen := make([]int, 4)
	for range 4000 {
		seen[b.Pick(Uniform(4))]++
	}
	for i, c := range seen {
		// Expected 1000 each; 700 is more than 10 standard deviations away.
		if c < 700 {
			t.Errorf("endpoint %d picked %d times of 4000", i, c)
		}
	}
}

func TestPickWithNoEndpoints(t *testing.T) {
	for _, name := range Names {
		b, _ := New(name)
		if got := b.Pick(Uniform(0)); got != -1 {
			t.Errorf("%s: Pick(empty) = %d, want -1", name, got)
		}
		if got := b.Pick(masked{n: 3, off: map[int]bool{0: true, 1: true, 2: true}}); got != -1 {
			t.Errorf("%s: Pick(none available) = %d, want -1", name, got)
		}
	}
}

func TestNewRejectsUnknownPolicy(t *testing.T) {
	if _, err := New("least_loaded_magic"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("err = %v, want ErrUnknown", err)
	}
}

func BenchmarkPick(b *testing.B) {
	for _, name := range Names {
		bal, _ := New(name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bal.Pick(Uniform(3))
				}
			})
		})
	}
}

// masked is a pool of n equal instances with some unavailable.
type masked struct {
	n   int
	off map[int]bool
	w   []int
}

func (m masked) Len() int             { return m.n }
func (m masked) Available(i int) bool { return !m.off[i] }
func (m masked) InFlight(int) int64   { return 0 }
func (m masked) Weight(i int) int {
	if m.w == nil {
		return 1
	}
	return m.w[i]
}

// TestUnavailableInstanceSharesEvenly is the case that motivated the pool
// view: five instances, one out (ejected, or tried by this request's
// earlier attempt); each of the four others must get a quarter, not the
// neighbour of the missing one a double share.
func TestUnavailableInstanceSharesEvenly(t *testing.T) {
	for _, name := range Names {
		for _, why := range []string{"ejected", "already tried"} {
			t.Run(name+"/"+why, func(t *testing.T) {
				b, _ := New(name)
				pool := masked{n: 5, off: map[int]bool{1: true}}
				const picks = 4000
				counts := make([]int, 5)
				for range picks {
					i := b.Pick(pool)
					if i < 0 {
						t.Fatal("no pick with four instances available")
					}
					counts[i]++
				}
				if counts[1] != 0 {
					t.Fatalf("unavailable instance picked %d times", counts[1])
				}
				for i, c := range counts {
					if i == 1 {
						continue
					}
					if share := float64(c) / picks; share < 0.22 || share > 0.28 {
						t.Errorf("instance %d got %.1f%% (%d of %d), want 25 ± 3%%; all: %v", i, share*100, c, picks, counts)
					}
				}
			})
		}
	}
}

func TestRandomHonoursWeights(t *testing.T) {
	b, _ := New(Random)
	pool := masked{n: 3, off: map[int]bool{}, w: []int{1, 3, 0}}
	counts := make([]int, 3)
	const picks = 5000
	for range picks {
		counts[b.Pick(pool)]++
	}
	// Shares 1:3:1 (a weight below 1 counts as 1): 20%, 60%, 20%.
	for i, want := range []float64{0.2, 0.6, 0.2} {
		if got := float64(counts[i]) / picks; got < want-0.03 || got > want+0.03 {
			t.Errorf("instance %d got %.1f%%, want %.0f ± 3%%", i, got*100, want*100)
		}
	}
}
