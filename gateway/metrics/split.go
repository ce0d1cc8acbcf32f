package metrics

import "github.com/prometheus/client_golang/prometheus"

// SplitDest is one split destination's counters, resolved when the table
// is built so a request looks no label up. A nil *SplitDest records
// nothing.
type SplitDest struct {
	requests    prometheus.Counter
	unavailable prometheus.Counter
}

// SplitDest returns the counters of route's destination dest (as
// "service:tag"), registering the collectors on first use; nil when m is
// nil. A route has at most config.MaxSplits destinations, so the series
// are bounded by the routes'.
func (m *Metrics) SplitDest(route, dest string) *SplitDest {
	if m == nil {
		return nil
	}
	req, un := m.splitVecs()
	return &SplitDest{requests: req.WithLabelValues(route, dest), unavailable: un.WithLabelValues(route, dest)}
}

// splitVecs returns the split collectors, registering them on first use.
func (m *Metrics) splitVecs() (requests, unavailable *prometheus.CounterVec) {
	req := register(m.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_split_requests_total",
		Help: "Requests a split route sent to each destination, by route and destination (service:tag), forced ones included.",
	}, []string{"route", "destination"})).(*prometheus.CounterVec)
	un := register(m.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_split_unavailable_total",
		Help: "Requests of a split route that found a destination with a weight but no healthy instance, so its share went to the others, by route and destination.",
	}, []string{"route", "destination"})).(*prometheus.CounterVec)
	return req, un
}

// pruneSplits deletes the series of destinations no route has any more,
// so months of canaries (a new tag each release) do not pile up series.
// Called with m.mu held.
func (m *Metrics) pruneSplits(splits map[string][]string) {
	now := map[[2]string]bool{}
	for route, dests := range splits {
		for _, d := range dests {
			now[[2]string{route, d}] = true
		}
	}
	if len(m.splits) > 0 {
		req, un := m.splitVecs()
		for k := range m.splits {
			if !now[k] {
				req.DeleteLabelValues(k[0], k[1])
				un.DeleteLabelValues(k[0], k[1])
			}
		}
	}
	m.splits = now
}

// Sent records a request sent to the destination.
func (d *SplitDest) Sent() {
	if d != nil {
		d.requests.Inc()
	}
}

// Unavailable records a request whose share of the destination went to
// the others.
func (d *SplitDest) Unavailable() {
	if d != nil {
		d.unavailable.Inc()
	}
}
