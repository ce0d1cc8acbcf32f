// Package tracing is the gateway's OpenTelemetry side: a server span per
// request, a client span per upstream attempt, and spans for aggregate
// and auth calls, with W3C trace context read from clients and written to
// upstreams. It holds no exporter: the process (main) builds the SDK's
// TracerProvider and calls Enable. Until then every function here is a
// cheap no-op, so a gateway without tracing pays one atomic load per hook.
package tracing

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Name is the instrumentation scope of the gateway's spans.
const Name = "github.com/gatewayco/gateway"

// Attribute keys of the gateway's own (beside the HTTP semantic
// conventions').
const (
	KeyRoute     = attribute.Key("gateway.route")
	KeyService   = attribute.Key("gateway.service")
	KeyInstance  = attribute.Key("gateway.instance")
	KeyRetries   = attribute.Key("gateway.retries")
	KeyRequestID = attribute.Key("gateway.request_id")
	KeyCall      = attribute.Key("gateway.aggregate.call")
)

// HTTP semantic-convention keys (stable since semconv 1.23).
const (
	keyMethod      = attribute.Key("http.request.method")
	keyStatus      = attribute.Key("http.response.status_code")
	keyResend      = attribute.Key("http.request.resend_count")
	keyRoute       = attribute.Key("http.route")
	keyPath        = attribute.Key("url.path")
	keyScheme      = attribute.Key("url.scheme")
	keyServerAddr  = attribute.Key("server.address")
	keyServerPort  = attribute.Key("server.port")
	keyClientAddr  = attribute.Key("client.address")
	keyUserAgent   = attribute.Key("user_agent.original")
	keyProtocol    = attribute.Key("network.protocol.version")
	keyErrorType   = attribute.Key("error.type")
	errTypeUnknown = "_OTHER"
)

type state struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

var current atomic.Pointer[state]

// Enable makes the hooks record spans with tp and read and write trace
// context with prop. Call it before serving; Disable undoes it.
func Enable(tp trace.TracerProvider, prop propagation.TextMapPropagator) {
	current.Store(&state{tracer: tp.Tracer(Name), prop: prop})
}

// Disable turns the hooks back into no-ops.
func Disable() { current.Store(nil) }

// On reports whether tracing is enabled.
func On() bool { return current.Load() != nil }

// none is what the hooks return with tracing off: ending it does nothing,
// and it never ends a span it did not start.
var none trace.Span = noop.Span{}

// StartServer extracts the client's trace context from r and starts the
// request's server span; the returned context carries it. With tracing
// off it returns r's context and a no-op span.
func StartServer(r *http.Request) (context.Context, trace.Span) {
	s := current.Load()
	if s == nil {
		return r.Context(), none
	}
	ctx, span := s.tracer.Start(s.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header)), method(r.Method), serverKind...)
	if !span.IsRecording() {
		// Unsampled: the context still propagates, but nothing more is
		// built for a span nobody will see.
		return ctx, span
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host, port := splitHostPort(r.Host)
	attrs := []attribute.KeyValue{keyMethod.String(method(r.Method)), keyPath.String(r.URL.Path), keyScheme.String(scheme),
		keyServerAddr.String(host), keyClientAddr.String(peer(r.RemoteAddr)), keyUserAgent.String(r.UserAgent()),
		keyProtocol.String(protoVersion(r))}
	if port != "" {
		attrs = append(attrs, keyServerPort.String(port))
	}
	span.SetAttributes(attrs...)
	return ctx, span
}

// Span kinds as start options, made once: each request would otherwise
// box them anew.
var (
	serverKind   = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	clientKind   = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	internalKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}
)

// Outcome is what the server span learns at the end of a request.
type Outcome struct {
	Route, Service, Instance, RequestID string
	Status, Retries                     int
}

// EndServer names the span after the matched route, records o and ends
// it. A 5xx is an error of the server span; a 4xx is not (it is the
// client's).
func EndServer(span trace.Span, o Outcome) {
	if !span.IsRecording() {
		span.End()
		return
	}
	if o.Route != "" {
		span.SetName(o.Route)
		span.SetAttributes(KeyRoute.String(o.Route), keyRoute.String(o.Route))
	}
	span.SetAttributes(keyStatus.Int(o.Status), KeyRetries.Int(o.Retries), KeyRequestID.String(o.RequestID))
	if o.Service != "" {
		span.SetAttributes(KeyService.String(o.Service), KeyInstance.String(o.Instance))
	}
	if o.Status >= 500 {
		span.SetStatus(codes.Error, "")
		span.SetAttributes(keyErrorType.Int(o.Status))
	}
	span.End()
}

// StartAttempt starts the client span of one attempt to send r (for
// route, when known) to instance (host:port) of service, retry being how many attempts came
// before it, and writes its trace context into r's headers, replacing
// what the client sent. With tracing off it leaves r alone and returns a
// no-op span.
func StartAttempt(r *http.Request, route, service, instance string, retry int) trace.Span {
	s := current.Load()
	if s == nil {
		return none
	}
	ctx, span := s.tracer.Start(r.Context(), method(r.Method), clientKind...)
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	s.prop.Inject(ctx, propagation.HeaderCarrier(r.Header))
	if !span.IsRecording() {
		return span
	}
	span.SetName(method(r.Method) + " " + service)
	host, port := splitHostPort(instance)
	attrs := []attribute.KeyValue{keyMethod.String(method(r.Method)), keyServerAddr.String(host), keyPath.String(r.URL.Path),
		KeyService.String(service), KeyInstance.String(instance), keyResend.Int(retry), KeyRetries.Int(retry)}
	if port != "" {
		attrs = append(attrs, keyServerPort.String(port))
	}
	if route != "" {
		attrs = append(attrs, KeyRoute.String(route))
	}
	span.SetAttributes(attrs...)
	return span
}

// EndAttempt records the attempt's answer (or err) and ends it. The span
// covers the attempt up to the instance's response headers.
func EndAttempt(span trace.Span, resp *http.Response, err error) {
	if span.IsRecording() {
		switch {
		case err != nil:
			span.SetStatus(codes.Error, err.Error())
			span.SetAttributes(keyErrorType.String(errorType(err)))
		default:
			span.SetAttributes(keyStatus.Int(resp.StatusCode))
			if resp.StatusCode >= 400 {
				span.SetStatus(codes.Error, "")
				span.SetAttributes(keyErrorType.Int(resp.StatusCode))
			}
		}
	}
	span.End()
}

// Start starts an internal span (an aggregate call, a forward_auth call,
// a JWKS fetch) under ctx's span. With tracing off it returns ctx and a
// no-op span.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	s := current.Load()
	if s == nil {
		return ctx, none
	}
	ctx, span := s.tracer.Start(ctx, name, internalKind...)
	if span.IsRecording() {
		span.SetAttributes(attrs...)
	}
	return ctx, span
}

// End ends span, marking it failed with err when err is not nil.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// IDs returns the trace and span IDs of span in hex, or "" when
// there is none (tracing off).
func IDs(span trace.Span) (traceID, spanID string) {
	sc := span.SpanContext()
	if !sc.IsValid() {
		return "", ""
	}
	return sc.TraceID().String(), sc.SpanID().String()
}

// method bounds the method attribute to the known methods, as the
// semantic conventions ask: a client's invented one is _OTHER.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return errTypeUnknown
}

func protoVersion(r *http.Request) string {
	switch r.ProtoMajor {
	case 2:
		return "2"
	case 3:
		return "3"
	}
	if r.ProtoMinor == 0 {
		return "1.0"
	}
	return "1.1"
}

func splitHostPort(hp string) (string, string) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return hp, ""
	}
	return h, p
}

func peer(remote string) string {
	h, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return h
}

// errorType names a transport failure by class, not by its message
// (which holds addresses), so the attribute stays low-cardinality.
func errorType(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op
	}
	return errTypeUnknown
}
