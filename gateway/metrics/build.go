package metrics

import "github.com/prometheus/client_golang/prometheus"

// BuildInfo is gateway_build_info: always 1, with the binary's version,
// VCS revision and Go version as labels, so a dashboard can tell which
// build each replica runs (and join it to other series with on()).
func BuildInfo(version, revision, goversion string) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gateway_build_info",
		Help: "Always 1; the labels say which build this gateway is: module version, VCS revision (-dirty for a modified tree) and Go version.",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(version, revision, goversion).Set(1)
	return g
}
