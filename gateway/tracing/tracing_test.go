package tracing

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func record(t *testing.T, sampler sdktrace.Sampler) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sampler))
	Enable(tp, propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t.Cleanup(Disable)
	return rec
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestOffTouchesNothing: without Enable no header is written and no span
// recorded, whatever the client sent.
func TestOffTouchesNothing(t *testing.T) {
	Disable()
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	ctx, span := StartServer(r)
	if ctx != r.Context() || span.IsRecording() {
		t.Fatal("StartServer did something with tracing off")
	}
	out := httptest.NewRequest("GET", "/x", nil)
	out.Header = r.Header.Clone()
	a := StartAttempt(out, "r", "svc", "127.0.0.1:1", 0)
	EndAttempt(a, nil, errors.New("x"))
	EndServer(span, Outcome{Status: 200})
	if got := out.Header.Get("Traceparent"); got != r.Header.Get("Traceparent") {
		t.Errorf("traceparent rewritten to %q with tracing off", got)
	}
	if n := testing.AllocsPerRun(100, func() {
		_, s := StartServer(r)
		EndAttempt(StartAttempt(out, "", "", "", 0), nil, nil)
		EndServer(s, Outcome{})
	}); n != 0 {
		t.Errorf("hooks allocate %.0f times with tracing off", n)
	}
}

// TestServerAndAttemptSpans: the client's context is continued, the
// server span is named after the route, and the attempt's context is what
// the upstream receives.
func TestServerAndAttemptSpans(t *testing.T) {
	rec := record(t, sdktrace.ParentBased(sdktrace.NeverSample()))
	r := httptest.NewRequest("BREW", "/x", nil)
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	r.Header.Set("Baggage", "tenant=a")
	ctx, srv := StartServer(r)
	out := httptest.NewRequestWithContext(ctx, "BREW", "http://127.0.0.1:9/x", nil)
	at := StartAttempt(out, "r", "svc", "127.0.0.1:9", 1)
	EndAttempt(at, &http.Response{StatusCode: 503}, nil)
	EndServer(srv, Outcome{Route: "r", Service: "svc", Instance: "127.0.0.1:9", Status: 502, Retries: 1})

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2 (the client's sampled flag is followed)", len(spans))
	}
	attempt, server := spans[0], spans[1]
	if server.Name() != "r" || server.SpanKind() != trace.SpanKindServer || server.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("server span %q kind %v parent %v", server.Name(), server.SpanKind(), server.Parent().SpanID())
	}
	if a := attrs(server); a["http.request.method"].AsString() != "_OTHER" || a["gateway.retries"].AsInt64() != 1 || a["http.response.status_code"].AsInt64() != 502 {
		t.Errorf("server attributes %v", a)
	}
	if attempt.Parent().SpanID() != server.SpanContext().SpanID() || attempt.SpanKind() != trace.SpanKindClient {
		t.Errorf("attempt span not the server span's client child")
	}
	if a := attrs(attempt); a["http.request.resend_count"].AsInt64() != 1 || a["gateway.service"].AsString() != "svc" || a["gateway.route"].AsString() != "r" {
		t.Errorf("attempt attributes %v", a)
	}
	tp := out.Header.Get("Traceparent")
	if !strings.Contains(tp, "4bf92f3577b34da6a3ce929d0e0e4736-"+attempt.SpanContext().SpanID().String()) || out.Header.Get("Baggage") != "tenant=a" {
		t.Errorf("upstream headers traceparent %q baggage %q", tp, out.Header.Get("Baggage"))
	}
}

// TestUnsampledStillPropagates: at a 0 ratio nothing is recorded, yet the
// upstream gets a traceparent of the client's trace (unsampled), so the
// services behind can still correlate.
func TestUnsampledStillPropagates(t *testing.T) {
	rec := record(t, sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)))
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	ctx, srv := StartServer(r)
	out := httptest.NewRequestWithContext(ctx, "GET", "http://127.0.0.1:9/x", nil)
	EndAttempt(StartAttempt(out, "", "svc", "127.0.0.1:9", 0), &http.Response{StatusCode: 200}, nil)
	EndServer(srv, Outcome{Status: 200})
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded for an unsampled trace", n)
	}
	if tp := out.Header.Get("Traceparent"); !strings.HasPrefix(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(tp, "-00") {
		t.Errorf("upstream traceparent %q", tp)
	}
}
