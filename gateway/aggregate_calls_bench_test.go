package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// BenchmarkAggregateThreeCalls is one aggregate request of three calls
// through the whole gateway to a local upstream: read against three
// BenchmarkProxy requests (the bench's aggregate mode measures the same
// on the built binary).
func BenchmarkAggregateThreeCalls(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	gw := New(Options{})
	ag := testAggregate("/agg",
		config.Call{Name: "a", Service: "svc", Path: "/a"},
		config.Call{Name: "b", Service: "svc", Path: "/b"},
		config.Call{Name: "c", Service: "svc", Path: "/c"},
	)
	gw.Publish(newTableBuilder(gw.deps).buildAll(nil, []config.Aggregate{ag},
		fixed(map[string][]registry.Instance{"svc": {instanceOf(b, "u", up.Listener.Addr())}}), nil, nil))
	req := httptest.NewRequest("GET", "http://gw/agg", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body)
		}
	}
}
