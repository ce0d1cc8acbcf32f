package metrics

import "github.com/prometheus/client_golang/prometheus"

// servingDatacenter is gateway_route_serving_datacenter: 1 for the one
// datacenter each route serves from. Its state lives beside the other
// collectors of Metrics, guarded by Metrics.mu.
type servingDatacenter struct {
	gauge *prometheus.GaugeVec // route, datacenter
	set   map[string]string    // route -> datacenter with a series
}

func newServingDatacenter(reg *prometheus.Registry) *servingDatacenter {
	s := &servingDatacenter{
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_route_serving_datacenter",
			Help: "1 for the Consul datacenter each route serves from now (its own, or a failover datacenter while its own has no passing instance).",
		}, []string{"route", "datacenter"}),
		set: map[string]string{},
	}
	reg.MustRegister(s.gauge)
	return s
}

// publish makes the series equal to serving (route -> datacenter): one
// series per route, so a switch deletes the old datacenter's series
// instead of leaving it at 1 beside the new one. The caller holds
// Metrics.mu.
func (s *servingDatacenter) publish(serving map[string]string) {
	for route, dc := range s.set {
		if serving[route] != dc {
			s.gauge.DeleteLabelValues(route, dc)
			delete(s.set, route)
		}
	}
	for route, dc := range serving {
		s.gauge.WithLabelValues(route, dc).Set(1)
		s.set[route] = dc
	}
}
