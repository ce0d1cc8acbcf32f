package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatewayco/gateway/gateway/accesslog"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/tracing"
	"github.com/gatewayco/gateway/registry"
)

// BenchmarkProxyObservability is BenchmarkProxy with the access log and
// tracing in each setting: what they add per request (time and, the
// load-independent figure, allocations). Spans go through the SDK's batch
// processor to an exporter that drops them.
func BenchmarkProxyObservability(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	inst := instanceOf(b, "u", up.Listener.Addr())
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	for _, c := range []struct {
		name   string
		log    bool
		sample float64 // -1: tracing off
	}{{"off", false, -1}, {"access_log", true, -1}, {"tracing_100", false, 1}, {"tracing_1", false, 0.01}} {
		b.Run(c.name, func(b *testing.B) {
			var al *accesslog.Logger
			if c.log {
				al = accesslog.New(io.Discard, accesslog.Options{Queue: 1 << 16}, nil)
				defer al.Close(context.Background())
			}
			if c.sample >= 0 {
				tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()),
					sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.sample))))
				defer tp.Shutdown(context.Background())
				tracing.Enable(tp, prop)
				defer tracing.Disable()
			}
			gw := New(Options{AccessLog: al})
			gw.Publish(newTableBuilder(gw.deps).build([]config.Route{prefixRoute("api", "/api", "svc")},
				fixed(map[string][]registry.Instance{"svc": {inst}}), nil))
			req := httptest.NewRequest("GET", "http://gw/api/users/7", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				gw.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
