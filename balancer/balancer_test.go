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
					counts[w][b.Pick(n)]++
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
		got = append(got, b.Pick(3))
	}
	want := []int{0, 1, 2, 0, 1, 2, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("picks = %v, want %v", got, want)
		}
	}
}

func TestRoundRobinStateSurvivesSnapshotChange(t *testing.T) {
	// The counter belongs to the service, not to a snapshot: after a
	// snapshot shrinks and grows again the sequence continues instead of
	// restarting at the first endpoint.
	b, _ := New(RoundRobin)
	b.Pick(3)
	b.Pick(3)
	if got := b.Pick(2); got != 0 { // counter 2 % 2
		t.Fatalf("pick after shrink = %d, want 0", got)
	}
	if got := b.Pick(3); got != 0 { // counter 3 % 3
		t.Fatalf("pick after grow = %d, want 0", got)
	}
}

func TestRandomUsesInjectedSource(t *testing.T) {
	seq := []int{2, 0, 1}
	i := 0
	b := &random{intN: func(n int) int { v := seq[i%len(seq)] % n; i++; return v }}
	for _, want := range seq {
		if got := b.Pick(3); got != want {
			t.Fatalf("Pick = %d, want %d", got, want)
		}
	}
}

func TestRandomCoversEveryEndpoint(t *testing.T) {
	b, _ := New(Random)
	seen := make([]int, 4)
	for range 4000 {
		seen[b.Pick(4)]++
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
		if got := b.Pick(0); got != -1 {
			t.Errorf("%s: Pick(0) = %d, want -1", name, got)
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
					bal.Pick(3)
				}
			})
		})
	}
}
