package policy

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatewayco/gateway/gateway/tracing"
)

// TestJWKSFetchIsASpanOfTheRequestThatAskedForIt: the fetch a token with
// an unknown kid causes shows in that request's trace.
func TestJWKSFetchIsASpanOfTheRequestThatAskedForIt(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracing.Enable(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), propagation.TraceContext{})
	t.Cleanup(tracing.Disable)
	k := testKeys()
	srv := startJWKS(t, jwkOf("k1", &k.rsa.PublicKey))
	ctx, parent := tracing.Start(context.Background(), "request")
	if _, err := NewJWKS(srv.URL, JWKSOptions{}).Key(ctx, "k1", "RS256"); err != nil {
		t.Fatal(err)
	}
	parent.End()
	for _, s := range rec.Ended() {
		if s.Name() == "jwks fetch" {
			if s.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Errorf("jwks fetch span's parent %v, want the request's %v", s.Parent().SpanID(), parent.SpanContext().SpanID())
			}
			return
		}
	}
	t.Fatalf("no jwks fetch span among %d", len(rec.Ended()))
}
