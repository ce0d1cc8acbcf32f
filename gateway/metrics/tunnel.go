package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Directions of gateway_tunnel_bytes_total.
const (
	// TunnelUp is bytes from the client towards the upstream.
	TunnelUp = "up"
	// TunnelDown is bytes from the upstream towards the client.
	TunnelDown = "down"
)

// Tunnels are the WebSocket tunnel collectors. Their labels are route
// names and the fixed reason and direction sets, so their series are
// bounded by configuration. A nil *Tunnels records nothing.
type Tunnels struct {
	open   *prometheus.GaugeVec   // route
	opened *prometheus.CounterVec // route
	closed *prometheus.CounterVec // route, reason
	bytes  *prometheus.CounterVec // route, direction
}

// Tunnels returns the tunnel collectors, registering them on first use;
// nil when m is nil.
func (m *Metrics) Tunnels() *Tunnels {
	if m == nil {
		return nil
	}
	return &Tunnels{
		open: register(m.reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_tunnels_open",
			Help: "WebSocket tunnels open now, by route.",
		}, []string{"route"})).(*prometheus.GaugeVec),
		opened: register(m.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_tunnels_opened_total",
			Help: "WebSocket tunnels opened (the upstream switched protocols), by route.",
		}, []string{"route"})).(*prometheus.CounterVec),
		closed: register(m.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_tunnels_closed_total",
			Help: "WebSocket tunnels closed, by route and reason: idle (idle_timeout), shutdown (open at the end of the drain), client or upstream (the side that ended first).",
		}, []string{"route", "reason"})).(*prometheus.CounterVec),
		bytes: register(m.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_tunnel_bytes_total",
			Help: "Bytes carried by WebSocket tunnels, by route and direction (up: client to upstream, down: upstream to client).",
		}, []string{"route", "direction"})).(*prometheus.CounterVec),
	}
}

// TunnelRoute is one route's tunnel children, resolved when an upgrade
// request takes its slot, so a tunnel's reads and writes look no label up.
// A nil *TunnelRoute records nothing.
type TunnelRoute struct {
	route    string
	t        *Tunnels
	open     prometheus.Gauge
	up, down prometheus.Counter
	opened   prometheus.Counter
}

// Route returns route's children; nil when t is nil.
func (t *Tunnels) Route(route string) *TunnelRoute {
	if t == nil {
		return nil
	}
	return &TunnelRoute{route: route, t: t, open: t.open.WithLabelValues(route),
		up: t.bytes.WithLabelValues(route, TunnelUp), down: t.bytes.WithLabelValues(route, TunnelDown),
		opened: t.opened.WithLabelValues(route)}
}

// Opened records a tunnel of the route opening.
func (r *TunnelRoute) Opened() {
	if r != nil {
		r.opened.Inc()
		r.open.Inc()
	}
}

// Closed records a tunnel of the route closing for reason.
func (r *TunnelRoute) Closed(reason string) {
	if r != nil {
		r.open.Dec()
		r.t.closed.WithLabelValues(r.route, reason).Inc()
	}
}

// Bytes records n bytes carried in direction (TunnelUp or TunnelDown).
func (r *TunnelRoute) Bytes(direction string, n int) {
	if r == nil {
		return
	}
	if direction == TunnelUp {
		r.up.Add(float64(n))
	} else {
		r.down.Add(float64(n))
	}
}
