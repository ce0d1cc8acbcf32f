package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMirrorSeriesCountAndLeaveWithTheirRoute: a mirror's counters record
// sent, failed and dropped copies, and go when their route leaves the
// table.
func TestMirrorSeriesCountAndLeaveWithTheirRoute(t *testing.T) {
	m := New(Options{})
	m.Route("r")
	c := m.Mirror("r", "users:v2")
	c.Sent(false)
	c.Sent(false)
	c.Sent(true)
	c.Dropped(MirrorDropConcurrency)
	if got := testutil.ToFloat64(m.mirrorRequests.WithLabelValues("r", "users:v2", "ok")); got != 2 {
		t.Errorf("ok = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.mirrorRequests.WithLabelValues("r", "users:v2", "failed")); got != 1 {
		t.Errorf("failed = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.mirrorDropped.WithLabelValues("r", "users:v2", MirrorDropConcurrency)); got != 1 {
		t.Errorf("dropped = %v, want 1", got)
	}
	m.Published(TableView{})
	if n := testutil.CollectAndCount(m.mirrorRequests) + testutil.CollectAndCount(m.mirrorDropped); n != 0 {
		t.Errorf("%d mirror series left after their route went", n)
	}
	var none *Metrics
	none.Mirror("r", "x").Sent(true) // records nothing, never panics
}
