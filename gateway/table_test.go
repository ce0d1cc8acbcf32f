package gateway

import (
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// TestPanicReasonReachesRoutesAndAggregateCalls: the reason is part of
// the table as built, for every user of the service.
func TestPanicReasonReachesRoutesAndAggregateCalls(t *testing.T) {
	gw := New(Options{})
	ag := config.Aggregate{Name: "agg", Path: "/d/{id}", MaxConcurrency: 1, TimeoutStatus: 504,
		Calls: []config.Call{{Name: "c", Service: "svc", Path: "/x/{id}"}}}
	key := registry.ServiceKey{Name: "svc"}
	tab := newTableBuilder(gw.deps).buildAll([]config.Route{prefixRoute("r", "/r", "svc")}, []config.Aggregate{ag},
		fixed(nil), map[registry.ServiceKey]string{key: "only 0 of 2 known-good instances passing"}, nil)
	if tab.Routes()[0].Panic == "" || tab.Aggregates()[0].Calls[0].Panic == "" {
		t.Fatalf("route panic %q, call panic %q; want both set", tab.Routes()[0].Panic, tab.Aggregates()[0].Calls[0].Panic)
	}
}
