package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a mirrored copy is dropped, the reason label of
// gateway_mirror_dropped_total.
const (
	// MirrorDropConcurrency: the mirror's max_concurrency copies were in
	// flight already.
	MirrorDropConcurrency = "concurrency"
	// MirrorDropBodyTooLarge: the request body is above the mirror body
	// bound.
	MirrorDropBodyTooLarge = "body_too_large"
	// MirrorDropGatewayLimit: the copies in flight of every mirror
	// together were at the gateway-wide bound (upstream.MaxMirrorsInFlight).
	MirrorDropGatewayLimit = "gateway_limit"
	// MirrorDropBodyIncomplete: the primary did not read the whole body
	// (it failed first, or the client's body broke), so no whole copy
	// exists.
	MirrorDropBodyIncomplete = "body_incomplete"
)

// Mirror is one mirror of one route's counters, resolved when the table is
// built. Its labels are the route and the mirror's destination, so its
// series are bounded by configuration. A nil *Mirror records nothing.
type Mirror struct {
	sent, failed prometheus.Counter
	dropped      *prometheus.CounterVec
	route, dest  string
}

// Mirror returns the counters of route's mirror to dest; nil when m is nil.
func (m *Metrics) Mirror(route, dest string) *Mirror {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	if m.mirrorRequests == nil {
		m.mirrorRequests = register(m.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_mirror_requests_total",
			Help: "Mirrored copies sent, by route, mirror destination and result (ok: any answer below 500; failed: no answer, or 5xx).",
		}, []string{"route", "mirror", "result"})).(*prometheus.CounterVec)
		m.mirrorDropped = register(m.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_mirror_dropped_total",
			Help: "Sampled copies not sent, by route, mirror destination and reason (concurrency, body_too_large, body_incomplete).",
		}, []string{"route", "mirror", "reason"})).(*prometheus.CounterVec)
	}
	requests, dropped := m.mirrorRequests, m.mirrorDropped
	m.mu.Unlock()
	return &Mirror{sent: requests.WithLabelValues(route, dest, "ok"), failed: requests.WithLabelValues(route, dest, "failed"),
		dropped: dropped, route: route, dest: dest}
}

// Sent records a copy that got an answer below 500 (failed false) or
// none, or a 5xx (failed true).
func (c *Mirror) Sent(failed bool) {
	switch {
	case c == nil:
	case failed:
		c.failed.Inc()
	default:
		c.sent.Inc()
	}
}

// Dropped records a sampled copy not sent, for reason.
func (c *Mirror) Dropped(reason string) {
	if c != nil {
		c.dropped.WithLabelValues(c.route, c.dest, reason).Inc()
	}
}

// forgetMirrors drops the mirror series of a route gone from the table;
// m.mu is held.
func (m *Metrics) forgetMirrors(route string) {
	if m.mirrorRequests != nil {
		m.mirrorRequests.DeletePartialMatch(prometheus.Labels{"route": route})
		m.mirrorDropped.DeletePartialMatch(prometheus.Labels{"route": route})
	}
}
