package certs

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports, at each scrape, the seconds until each certificate
// expires (negative once it has) and how many bundles were rejected. Its
// labels are bounded: kind is one of three, source one per -tls-cert
// pair, KV key (at most MaxKVCerts) or ACME host.
type Collector struct {
	store    *Store
	now      func() time.Time
	expiry   *prometheus.Desc
	rejected *prometheus.CounterVec
}

// NewCollector returns the collector for s and makes s count its
// rejections (Store.OnRejected). now is the clock (nil: time.Now).
func NewCollector(s *Store, now func() time.Time) *Collector {
	if now == nil {
		now = time.Now
	}
	c := &Collector{store: s, now: now,
		expiry: prometheus.NewDesc("gateway_tls_certificate_expiry_seconds",
			"Seconds until the certificate expires, per certificate the TLS listener can serve.",
			[]string{"kind", "source"}, nil),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_tls_certificates_rejected_total",
			Help: "Certificate versions a source rejected (unparseable, key not matching, expired, not yet valid, weak key, over a bound).",
		}, []string{"kind"}),
	}
	for _, k := range []string{SourceFile, SourceKV, SourceACME} {
		c.rejected.WithLabelValues(k)
	}
	s.OnRejected = func(kind string) { c.rejected.WithLabelValues(kind).Inc() }
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.expiry
	c.rejected.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	all, _ := c.store.Certs()
	now := c.now()
	for _, cert := range all {
		ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, cert.NotAfter.Sub(now).Seconds(), cert.Kind, cert.Source)
	}
	c.rejected.Collect(ch)
}
