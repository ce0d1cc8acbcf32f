package gateway

import (
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/gatewayco/gateway/gateway/metrics"
)

// sample is the value of the series of family name whose labels are the
// given name, value pairs, as a scrape sees it; zero when there is none,
// as for a series never touched.
func sample(t testing.TB, m *metrics.Metrics, name string, labels ...string) float64 {
	t.Helper()
	for _, s := range series(t, m, name) {
		if hasLabels(s, labels) {
			switch {
			case s.Counter != nil:
				return s.Counter.GetValue()
			case s.Gauge != nil:
				return s.Gauge.GetValue()
			}
		}
	}
	return 0
}

// series lists the series of family name.
func series(t testing.TB, m *metrics.Metrics, name string) []*dto.Metric {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()
		}
	}
	return nil
}

func hasLabels(s *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, l := range s.GetLabel() {
			if l.GetName() == pairs[i] && l.GetValue() == pairs[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
