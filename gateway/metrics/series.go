package metrics

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Series: the dashboard's trend charts need each route's traffic over the
// last quarter hour, and the gateway keeps it itself rather than asking an
// external store. Each route gets a ring of SeriesBuckets buckets of
// SeriesBucketWidth; a bucket counts requests, 5xx answers and latencies
// in a small fixed histogram, so quantiles cost no per-request memory. A
// ring is allocated on a route's first request, and at most
// MaxSeriesRoutes routes have one (about 6.5 KiB each), so a table of
// 10,000 routes costs a bounded few MiB.
const (
	// SeriesBucketWidth is the time one point of a chart covers.
	SeriesBucketWidth = 10 * time.Second
	// SeriesBuckets is how many points a route's ring keeps: 15 minutes.
	SeriesBuckets = 90
	// MaxSeriesRoutes bounds how many routes record series; routes past
	// it (in order of first request) are shown without a chart.
	MaxSeriesRoutes = 1000
)

// latencyBounds are the upper bounds of the series' latency histogram; a
// last, open bucket takes anything slower.
var latencyBounds = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// seriesBucket is one point of a ring. epoch is the bucket number (time
// since the Unix epoch divided by the width) the counts belong to; a
// bucket whose epoch is not the one asked for is empty.
type seriesBucket struct {
	epoch    atomic.Int64
	requests atomic.Uint32
	errors   atomic.Uint32
	latency  [len(latencyBounds) + 1]atomic.Uint32
}

// series is one route's ring. Recording is lock-free except for the
// first request of a bucket, which resets the counts left from 15 minutes
// earlier under mu, so two such requests cannot both reset it.
type series struct {
	mu      sync.Mutex
	buckets [SeriesBuckets]seriesBucket
}

func bucketNumber(t time.Time) int64 {
	return t.UnixNano() / int64(SeriesBucketWidth)
}

func (s *series) add(now time.Time, status int, d time.Duration) {
	n := bucketNumber(now)
	b := &s.buckets[uint64(n)%SeriesBuckets]
	if b.epoch.Load() != n {
		s.mu.Lock()
		if b.epoch.Load() != n {
			b.requests.Store(0)
			b.errors.Store(0)
			for i := range b.latency {
				b.latency[i].Store(0)
			}
			b.epoch.Store(n)
		}
		s.mu.Unlock()
	}
	b.requests.Add(1)
	if status >= 500 {
		b.errors.Add(1)
	}
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	b.latency[i].Add(1)
}

// SeriesPoint is one bucket of a route's series.
type SeriesPoint struct {
	// Start is when the bucket began; it covers SeriesBucketWidth, or
	// up to now for the last point.
	Start time.Time
	// Requests and Errors (5xx answers) counted in the bucket.
	Requests, Errors uint64
	// P50 and P99 are latency quantiles estimated from the bucket's
	// histogram (linear within a histogram bucket); zero without
	// requests. A quantile beyond the last bound reads as that bound.
	P50, P99 time.Duration
}

// Series returns route name's last SeriesBuckets points, oldest first,
// the last one being the bucket now falls in; ok is false when the route
// records no series (unknown, no request yet, or past MaxSeriesRoutes).
func (m *Metrics) Series(name string) (points []SeriesPoint, ok bool) {
	if m == nil {
		return nil, false
	}
	m.mu.Lock()
	rm := m.routes[name]
	m.mu.Unlock()
	return m.seriesOf(rm)
}

// UnmatchedSeries is Series for the requests no route matched.
func (m *Metrics) UnmatchedSeries() (points []SeriesPoint, ok bool) {
	if m == nil {
		return nil, false
	}
	return m.seriesOf(m.none)
}

func (m *Metrics) seriesOf(rm *Route) (points []SeriesPoint, ok bool) {
	if rm == nil {
		return nil, false
	}
	s := rm.series.Load()
	if s == nil {
		return nil, false
	}
	last := bucketNumber(m.now())
	points = make([]SeriesPoint, SeriesBuckets)
	for i := range points {
		n := last - SeriesBuckets + 1 + int64(i)
		p := &points[i]
		p.Start = time.Unix(0, n*int64(SeriesBucketWidth)).UTC()
		b := &s.buckets[uint64(n)%SeriesBuckets]
		if b.epoch.Load() != n {
			continue
		}
		var hist [len(latencyBounds) + 1]uint64
		for j := range hist {
			hist[j] = uint64(b.latency[j].Load())
		}
		p.Requests, p.Errors = uint64(b.requests.Load()), uint64(b.errors.Load())
		p.P50, p.P99 = quantile(hist[:], 0.5), quantile(hist[:], 0.99)
	}
	return points, true
}

// quantile estimates the q-quantile of a latencyBounds histogram.
func quantile(hist []uint64, q float64) time.Duration {
	var total uint64
	for _, c := range hist {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen float64
	for i, c := range hist {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			if i == len(latencyBounds) {
				return latencyBounds[len(latencyBounds)-1]
			}
			lo := time.Duration(0)
			if i > 0 {
				lo = latencyBounds[i-1]
			}
			frac := math.Max(0, (rank-seen)/float64(c))
			return lo + time.Duration(frac*float64(latencyBounds[i]-lo))
		}
		seen += float64(c)
	}
	return latencyBounds[len(latencyBounds)-1]
}

// recordSeries adds one request to rm's ring, allocating it on the
// route's first request while fewer than MaxSeriesRoutes have one. The
// allocation, once per route, is made under m.mu, which Published holds
// while it drops routes: a request finishing on a route just dropped
// would otherwise count a ring that nothing ever gives back.
func (m *Metrics) recordSeries(rm *Route, status int, d time.Duration, end time.Time) {
	s := rm.series.Load()
	if s == nil {
		if rm.noSeries.Load() {
			return
		}
		if s = m.newSeries(rm); s == nil {
			return
		}
	}
	s.add(end, status, d)
}

// newSeries gives rm its ring, nil when the bound is reached or rm has
// left the table.
func (m *Metrics) newSeries(rm *Route) *series {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := rm.series.Load(); s != nil {
		return s
	}
	if rm.gone {
		return nil
	}
	if m.seriesRoutes.Load() >= MaxSeriesRoutes {
		rm.noSeries.Store(true)
		return nil
	}
	m.seriesRoutes.Add(1)
	s := &series{}
	rm.series.Store(s)
	return s
}
