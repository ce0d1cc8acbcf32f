package gateway

import (
	"encoding/json"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/tracing"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// TestAccessLogCarriesTheTraceOfTheRequest: with tracing on, the access
// line names the request's trace and server span, so a log line leads to
// its trace.
func TestAccessLogCarriesTheTraceOfTheRequest(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracing.Enable(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), propagation.TraceContext{})
	t.Cleanup(tracing.Disable)
	_, inst := startUpstream(t, "up", nil)
	var buf testkit.Buffer
	gw := New(Options{AccessLog: accessLogTo(t, &buf)})
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{prefixRoute("r", "/", "up")},
		fixed(map[string][]registry.Instance{"up": {inst}}), nil))
	srv := serve(t, gw)
	resp, err := srv.Client().Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	line := testkit.WaitValue(t, "the access-log line", func() (string, bool) { s := buf.String(); return s, strings.HasSuffix(s, "\n") })
	var e map[string]any
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatal(err)
	}
	for _, s := range rec.Ended() {
		if s.Name() == "r" {
			if e["trace_id"] != s.SpanContext().TraceID().String() || e["span_id"] != s.SpanContext().SpanID().String() {
				t.Errorf("access log trace %v span %v; server span %v", e["trace_id"], e["span_id"], s.SpanContext())
			}
			return
		}
	}
	t.Fatalf("no server span named r among %d spans", len(rec.Ended()))
}
