package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/gatewayco/gateway/gateway/tracing"
)

// tracingFlags are -tracing and -trace-sample-ratio; where spans go is
// the OTLP exporter's business, read by it from the standard
// OTEL_EXPORTER_OTLP_* variables.
type tracingFlags struct {
	on    bool
	ratio float64
}

// tracingFromEnv is -tracing's default: on when an OTLP endpoint is set
// (and the SDK is not disabled), as the OpenTelemetry SDKs behave.
func tracingFromEnv() bool {
	if os.Getenv("OTEL_SDK_DISABLED") == "true" {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

func addTracingFlags(fs *flag.FlagSet, f *tracingFlags) {
	fs.BoolVar(&f.on, "tracing", tracingFromEnv(), "export OpenTelemetry traces over OTLP to the OTEL_EXPORTER_OTLP_* endpoint (default: on when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set)")
	fs.Float64Var(&f.ratio, "trace-sample-ratio", 1, "share of new traces sampled, 0 to 1; a client's sampled flag is followed (parent-based)")
}

func (f tracingFlags) check() error {
	if f.ratio < 0 || f.ratio > 1 {
		return fmt.Errorf("%w: -trace-sample-ratio must be between 0 and 1", errUsage)
	}
	if _, err := otlpProtocol(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return nil
}

// Bounds of the trace pipeline the SDK's defaults leave open.
const (
	// maxAttributeLength cuts attribute values (a path, a user agent) so
	// a hostile request cannot make a huge span; OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT
	// overrides it.
	maxAttributeLength = 1024
	// tracingShutdownTimeout bounds the last export at exit.
	tracingShutdownTimeout = 5 * time.Second
	// tracingErrorEvery spaces out log lines about failing exports (an
	// unreachable collector fails every batch).
	tracingErrorEvery = time.Minute
)

// otlpProtocol is the OTLP transport the standard variables ask for:
// http/protobuf (the default) or grpc.
func otlpProtocol() (string, error) {
	p := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if p == "" {
		p = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch p {
	case "", "http/protobuf":
		return "http/protobuf", nil
	case "grpc":
		return p, nil
	}
	return "", fmt.Errorf("OTLP protocol %q is not supported (http/protobuf or grpc)", p)
}

// startTracing builds the OTLP exporter and the SDK's provider behind
// a batch span processor: spans are queued (OTEL_BSP_MAX_QUEUE_SIZE,
// 2048 by default) and dropped when the queue is full, so a slow or
// unreachable collector never holds a request up. The returned stop
// flushes what is queued, within tracingShutdownTimeout.
func startTracing(f tracingFlags, logger hclog.Logger) (stop func(), err error) {
	if !f.on {
		return func() {}, nil
	}
	ctx := context.Background()
	proto, err := otlpProtocol()
	if err != nil {
		return nil, err
	}
	var exp sdktrace.SpanExporter
	if proto == "grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", "gateway")),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	limits := sdktrace.NewSpanLimits()
	if limits.AttributeValueLengthLimit < 0 && os.Getenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT") == "" && os.Getenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT") == "" {
		limits.AttributeValueLengthLimit = maxAttributeLength
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithRawSpanLimits(limits),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(f.ratio))),
	)
	var mu sync.Mutex
	var last time.Time
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); now.Sub(last) >= tracingErrorEvery {
			last = now
			logger.Warn("trace export failed (spans are dropped while it fails)", "error", err)
		}
	}))
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(prop)
	tracing.Enable(tp, prop)
	logger.Info("tracing", "protocol", proto, "sample_ratio", f.ratio)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			logger.Warn("traces not fully exported at exit", "error", err)
		}
	}, nil
}
