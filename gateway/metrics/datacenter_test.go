package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestServingDatacenterOneSeriesPerRoute: a switch replaces the route's
// series, and a route that leaves the table leaves none.
func TestServingDatacenterOneSeriesPerRoute(t *testing.T) {
	m := New(Options{})
	g := m.servingDC.gauge
	m.Published(TableView{Routes: []string{"a", "b"}, Datacenters: map[string]string{"a": "dc1", "b": "dc2"}})
	if n := testutil.CollectAndCount(g); n != 2 {
		t.Fatalf("%d series, want 2", n)
	}
	m.Published(TableView{Routes: []string{"a", "b"}, Datacenters: map[string]string{"a": "dc3", "b": "dc2"}})
	if n, got := testutil.CollectAndCount(g), testutil.ToFloat64(g.WithLabelValues("a", "dc3")); n != 2 || got != 1 {
		t.Fatalf("after a's switch: %d series, a@dc3 = %v; want 2 series, 1", n, got)
	}
	m.Published(TableView{})
	if n := testutil.CollectAndCount(g); n != 0 {
		t.Errorf("%d series left after every route went", n)
	}
}
