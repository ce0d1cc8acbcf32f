package metrics

import (
	"fmt"
	"testing"
	"time"
)

func TestSeriesBucketsRequestsErrorsAndQuantilesOnTheInjectedClock(t *testing.T) {
	clock := time.Unix(1_000_000, 0) // a bucket boundary
	m := New(Options{Now: func() time.Time { return clock }})
	if _, ok := m.Series("r"); ok {
		t.Fatal("series before the route exists")
	}
	rm := m.Route("r")
	if _, ok := m.Series("r"); ok {
		t.Fatal("series before the route's first request; rings are allocated lazily")
	}
	// Bucket 1: 100 requests, 98 at 3 ms, 2 at 2 s, one of those a 502.
	for i := range 100 {
		d, status := 3*time.Millisecond, 200
		if i >= 98 {
			d = 2 * time.Second
		}
		if i == 99 {
			status = 502
		}
		m.Observe(rm, "GET", status, d)
	}
	clock = clock.Add(SeriesBucketWidth)
	for range 10 {
		m.Observe(rm, "GET", 200, 40*time.Millisecond)
	}
	pts, ok := m.Series("r")
	if !ok || len(pts) != SeriesBuckets {
		t.Fatalf("series = %d points, %v; want %d", len(pts), ok, SeriesBuckets)
	}
	last, prev := pts[SeriesBuckets-1], pts[SeriesBuckets-2]
	if !last.Start.Equal(clock) || !prev.Start.Equal(clock.Add(-SeriesBucketWidth)) {
		t.Errorf("points start at %v and %v, want %v and %v", prev.Start, last.Start, clock.Add(-SeriesBucketWidth), clock)
	}
	if prev.Requests != 100 || prev.Errors != 1 || last.Requests != 10 || last.Errors != 0 {
		t.Errorf("counts = %+v, %+v", prev, last)
	}
	// p50 lies in (2.5 ms, 5 ms], p99 in (1 s, 2.5 s]; 40 ms in (25, 50].
	if prev.P50 <= 2500*time.Microsecond || prev.P50 > 5*time.Millisecond || prev.P99 <= time.Second || prev.P99 > 2500*time.Millisecond {
		t.Errorf("bucket 1 quantiles p50 %v p99 %v", prev.P50, prev.P99)
	}
	if last.P50 <= 25*time.Millisecond || last.P50 > 50*time.Millisecond {
		t.Errorf("bucket 2 p50 %v", last.P50)
	}
	if pts[0].Requests != 0 || pts[0].P99 != 0 {
		t.Errorf("oldest point %+v, want empty", pts[0])
	}

	// 15 minutes later both buckets have left the window, and the ring
	// slot of the old first bucket is reused from zero.
	clock = clock.Add(SeriesBuckets * SeriesBucketWidth)
	m.Observe(rm, "GET", 200, time.Millisecond)
	pts, _ = m.Series("r")
	var total uint64
	for _, p := range pts {
		total += p.Requests
	}
	if total != 1 || pts[SeriesBuckets-1].Requests != 1 {
		t.Errorf("after 15 minutes: %d requests in the window, last point %+v; want only the new one", total, pts[SeriesBuckets-1])
	}
}

func TestSeriesRingsAreBoundedAndFreedWithTheirRoutes(t *testing.T) {
	m := New(Options{})
	var names []string
	for i := range MaxSeriesRoutes + 5 {
		name := fmt.Sprint("r", i)
		names = append(names, name)
		m.Observe(m.Route(name), "GET", 200, time.Millisecond)
	}
	// "none" has not had a request, so every ring is a named route's.
	if n := m.seriesRoutes.Load(); n != MaxSeriesRoutes {
		t.Fatalf("%d rings, want the bound %d", n, MaxSeriesRoutes)
	}
	late := names[len(names)-1]
	if _, ok := m.Series(late); ok {
		t.Fatal("a route past the bound got a ring")
	}
	// Dropping the first route frees a ring for the late one.
	m.Published(TableView{Routes: names[1:]})
	m.Observe(m.Route(late), "GET", 200, time.Millisecond)
	if _, ok := m.Series(late); !ok {
		t.Fatal("a freed ring was not given to a route without one")
	}
	if n := m.seriesRoutes.Load(); n != MaxSeriesRoutes {
		t.Fatalf("%d rings after the swap, want %d", n, MaxSeriesRoutes)
	}
}

// A request still in flight when its route left the table finishes on
// the route's old children: it must not take a ring that nothing frees,
// or route churn would use up MaxSeriesRoutes for good.
func TestSeriesRingNotTakenByARemovedRoute(t *testing.T) {
	m := New(Options{})
	rm := m.Route("gone")
	m.Published(TableView{})
	m.Observe(rm, "GET", 200, time.Millisecond)
	if n := m.seriesRoutes.Load(); n != 0 {
		t.Fatalf("%d rings counted after the removed route's last request, want 0", n)
	}
	// The name may come back: it gets new children and a ring.
	m.Observe(m.Route("gone"), "GET", 200, time.Millisecond)
	if _, ok := m.Series("gone"); !ok || m.seriesRoutes.Load() != 1 {
		t.Fatalf("the route back in the table has no ring (%d counted)", m.seriesRoutes.Load())
	}
}

func TestQuantileOfAnEmptyOrOverflowingHistogram(t *testing.T) {
	var h [len(latencyBounds) + 1]uint64
	if q := quantile(h[:], 0.99); q != 0 {
		t.Errorf("empty histogram p99 = %v", q)
	}
	h[len(latencyBounds)] = 5
	if q := quantile(h[:], 0.5); q != latencyBounds[len(latencyBounds)-1] {
		t.Errorf("all slower than the last bound: p50 = %v, want %v", q, latencyBounds[len(latencyBounds)-1])
	}
}

// BenchmarkObserve is the per-request recording, series included, with
// the end time the gateway has read anyway.
func BenchmarkObserve(b *testing.B) {
	m := New(Options{})
	rm := m.Route("r")
	end := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveAt(rm, "GET", 200, 3*time.Millisecond, end)
		}
	})
}
