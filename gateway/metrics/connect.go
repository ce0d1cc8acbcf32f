package metrics

import "github.com/prometheus/client_golang/prometheus"

// Reasons of gateway_connect_handshake_failures_total: a fixed set, so the
// series stay bounded.
const (
	// ConnectNoIdentity: the gateway had no leaf certificate or roots yet.
	ConnectNoIdentity = "no_identity"
	// ConnectUntrusted: the upstream's chain does not lead to a Connect root.
	ConnectUntrusted = "untrusted"
	// ConnectIdentityMismatch: the upstream's SPIFFE ID is not the route's
	// service.
	ConnectIdentityMismatch = "identity_mismatch"
	// ConnectRefused: the upstream sent a TLS alert (it refused the
	// gateway's certificate, or an intention denied it).
	ConnectRefused = "refused"
	// ConnectTimeout: the handshake did not finish within the dial timeout.
	ConnectTimeout = "timeout"
	// ConnectOther: any other handshake failure (a reset, a non-TLS peer).
	ConnectOther = "other"
)

// Connect are the service-mesh collectors; a nil *Connect records nothing.
type Connect struct {
	handshakes *prometheus.CounterVec // service, reason
	denied     *prometheus.CounterVec // route
}

// Connect returns the mesh collectors, registering them on first use; nil
// when m is nil.
func (m *Metrics) Connect() *Connect {
	if m == nil {
		return nil
	}
	return &Connect{
		handshakes: register(m.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_connect_handshake_failures_total",
			Help: "mTLS handshakes with Connect upstreams that failed, by service and reason (no_identity, untrusted, identity_mismatch, refused, timeout, other).",
		}, []string{"service", "reason"})).(*prometheus.CounterVec),
		denied: register(m.reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_connect_denied_requests_total",
			Help: "Requests answered 403 because an intention denies the gateway reaching the route's service, by route.",
		}, []string{"route"})).(*prometheus.CounterVec),
	}
}

// HandshakeFailed counts one failed handshake with service for reason.
func (c *Connect) HandshakeFailed(service, reason string) {
	if c != nil {
		c.handshakes.WithLabelValues(service, reason).Inc()
	}
}

// Denied counts one request of route refused by an intention.
func (c *Connect) Denied(route string) {
	if c != nil {
		c.denied.WithLabelValues(route).Inc()
	}
}
