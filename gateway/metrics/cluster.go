package metrics

import "github.com/prometheus/client_golang/prometheus"

// ClusterReplicas is gateway_cluster_replicas: how many replicas this
// gateway divides a rate_limit with scope = "cluster" by, read from count
// at each scrape. Comparing it across replicas shows whether they agree
// (they converge within a Consul check interval plus a watch round trip).
func ClusterReplicas(count func() int) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gateway_cluster_replicas",
		Help: "Replicas sharing cluster-scoped rate limits: passing instances of this gateway's Consul service, itself included.",
	}, func() float64 { return float64(count()) })
}
