package e2e

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/gatewayco/gateway/internal/testkit"
)

// otlpSpan is one exported span as the test reads it.
type otlpSpan struct {
	traceID, spanID, parentID string
	name                      string
	kind                      tracepb.Span_SpanKind
	attrs                     map[string]any
	errored                   bool
	service                   string // the resource's service.name
}

// otlpReceiver is an OTLP/HTTP trace collector: it decodes each
// ExportTraceServiceRequest (protobuf) the gateway posts to /v1/traces.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []otlpSpan
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	rc := &otlpReceiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(io.LimitReader(body, 16<<20))
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if err != nil {
			t.Errorf("OTLP receiver: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.add(&req)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *otlpReceiver) add(req *coltracepb.ExportTraceServiceRequest) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		service, _ := attrMap(rs.GetResource().GetAttributes())["service.name"].(string)
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				rc.spans = append(rc.spans, otlpSpan{traceID: hex.EncodeToString(s.TraceId), spanID: hex.EncodeToString(s.SpanId),
					parentID: hex.EncodeToString(s.ParentSpanId), name: s.Name, kind: s.Kind, attrs: attrMap(s.Attributes),
					errored: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR, service: service})
			}
		}
	}
}

func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = v.IntValue
		case *commonpb.AnyValue_BoolValue:
			m[kv.Key] = v.BoolValue
		case *commonpb.AnyValue_DoubleValue:
			m[kv.Key] = v.DoubleValue
		}
	}
	return m
}

// find returns the spans ok accepts.
func (rc *otlpReceiver) find(ok func(otlpSpan) bool) []otlpSpan {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []otlpSpan
	for _, s := range rc.spans {
		if ok(s) {
			out = append(out, s)
		}
	}
	return out
}

// children are the spans whose parent is s, in export order.
func (rc *otlpReceiver) children(s otlpSpan) []otlpSpan {
	return rc.find(func(c otlpSpan) bool { return c.traceID == s.traceID && c.parentID == s.spanID })
}

// waitServerSpan waits for the one server span of the route named name
// that ok accepts.
func (rc *otlpReceiver) waitServerSpan(t *testing.T, name string, ok func(otlpSpan) bool) otlpSpan {
	t.Helper()
	return testkit.WaitValue(t, "the server span of "+name, func() (otlpSpan, bool) {
		ss := rc.find(func(s otlpSpan) bool { return s.kind == tracepb.Span_SPAN_KIND_SERVER && s.name == name && ok(s) })
		if len(ss) == 0 {
			return otlpSpan{}, false
		}
		return ss[0], true
	})
}

// seenTraceparents records the traceparent headers an upstream got.
type seenTraceparents struct {
	mu   sync.Mutex
	seen []string
}

func (s *seenTraceparents) record(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, r.Header.Get("Traceparent"))
}

// has reports whether an upstream got a traceparent of trace traceID
// whose parent is spanID.
func (s *seenTraceparents) has(traceID, spanID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tp := range s.seen {
		if parts := strings.Split(tp, "-"); len(parts) == 4 && parts[1] == traceID && parts[2] == spanID {
			return true
		}
	}
	return false
}

const tracingRoutes = `
route "plain" {
  path_prefix = "/plain"
  service     = "echo"
}
route "flaky" {
  path_prefix = "/flaky"
  service     = "flaky"
  retries     = 1
}
route "fa" {
  path_prefix = "/fa"
  service     = "echo"
  forward_auth {
    service = "auth"
    path    = "/verify"
  }
}
aggregate "agg" {
  path = "/agg"
  call "one" {
    service = "echo"
    path    = "/one"
  }
  call "two" {
    service = "echo"
    path    = "/two"
  }
}
`

// TestTracesReachAnOTLPCollectorWithTheirStructure runs the gateway with
// OTEL_EXPORTER_OTLP_ENDPOINT at a collector in the test and checks the
// exported spans: the client's trace continued, a server span per request
// named after its route, a client span per upstream attempt (a retry is
// a second one, with its retry count), a span per aggregate call and per
// forward_auth call, and every upstream given a traceparent of the same
// trace whose parent is its attempt's span.
func TestTracesReachAnOTLPCollectorWithTheirStructure(t *testing.T) {
	t.Parallel()
	rc := startOTLPReceiver(t)
	client, addr := startConsul(t)
	var upstreams seenTraceparents
	echo := startBackendWith(t, client, "echo", "echo-1", func(w http.ResponseWriter, r *http.Request) {
		upstreams.record(r)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	startBackendWith(t, client, "flaky", "flaky-bad", func(w http.ResponseWriter, r *http.Request) {
		upstreams.record(r)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	good := startBackendWith(t, client, "flaky", "flaky-good", func(w http.ResponseWriter, r *http.Request) {
		upstreams.record(r)
		_, _ = io.WriteString(w, "ok")
	})
	startBackendWith(t, client, "auth", "auth-1", func(w http.ResponseWriter, r *http.Request) {
		upstreams.record(r)
		if r.Header.Get("Authorization") != "Bearer ok" {
			http.Error(w, "denied", http.StatusForbidden)
		}
	})
	putRoute(t, client, "tracing.hcl", tracingRoutes)
	a := startGatewayEnv(t, gatewayBin, addr, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rc.srv.URL,
		"OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_SERVICE_NAME=gateway-e2e"})
	testkit.WaitFor(t, "routes served", func() bool {
		c1, _ := call(t, a, "/plain/ready")
		c2, _ := call(t, a, "/fa/ready", "Authorization: Bearer ok")
		return c1 == 200 && c2 == 200
	})

	t.Run("client trace continued", func(t *testing.T) {
		const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		if c, _ := call(t, a, "/plain/x", "Traceparent: 00-"+clientTrace+"-"+clientSpan+"-01"); c != 200 {
			t.Fatalf("GET /plain/x: %d", c)
		}
		srv := rc.waitServerSpan(t, "plain", func(s otlpSpan) bool { return s.traceID == clientTrace })
		if srv.parentID != clientSpan || srv.service != "gateway-e2e" {
			t.Errorf("server span parent %s, service %q; want the client's span %s, gateway-e2e", srv.parentID, srv.service, clientSpan)
		}
		for k, want := range map[string]any{"gateway.route": "plain", "http.route": "plain", "gateway.service": "echo",
			"gateway.instance": echo.addr(), "http.response.status_code": int64(200), "http.request.method": "GET",
			"url.path": "/plain/x", "gateway.retries": int64(0)} {
			if srv.attrs[k] != want {
				t.Errorf("server span %s = %v, want %v", k, srv.attrs[k], want)
			}
		}
		kids := testkit.WaitValue(t, "the attempt span", func() ([]otlpSpan, bool) { k := rc.children(srv); return k, len(k) == 1 })
		at := kids[0]
		if at.kind != tracepb.Span_SPAN_KIND_CLIENT || at.attrs["gateway.service"] != "echo" || at.attrs["http.request.resend_count"] != int64(0) ||
			at.attrs["http.response.status_code"] != int64(200) {
			t.Errorf("attempt span %+v", at)
		}
		if !upstreams.has(clientTrace, at.spanID) {
			t.Errorf("no upstream got a traceparent of trace %s with parent %s: %q", clientTrace, at.spanID, upstreams.seen)
		}
	})

	t.Run("retry is a second attempt span", func(t *testing.T) {
		// Round robin over two instances: within a few requests one
		// starts on the failing instance and is retried on the other.
		for range 4 {
			if c, _ := call(t, a, "/flaky/x"); c != 200 {
				t.Fatalf("GET /flaky/x: %d", c)
			}
		}
		srv := rc.waitServerSpan(t, "flaky", func(s otlpSpan) bool { return s.attrs["gateway.retries"] == int64(1) })
		kids := testkit.WaitValue(t, "two attempt spans", func() ([]otlpSpan, bool) { k := rc.children(srv); return k, len(k) == 2 })
		byRetry := map[int64]otlpSpan{}
		for _, k := range kids {
			byRetry[k.attrs["http.request.resend_count"].(int64)] = k
		}
		first, second := byRetry[0], byRetry[1]
		if first.attrs["http.response.status_code"] != int64(503) || !first.errored || first.kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("first attempt %+v; want a failed 503 client span", first)
		}
		if second.attrs["http.response.status_code"] != int64(200) || second.attrs["gateway.instance"] != good.addr() || second.errored {
			t.Errorf("retry %+v; want 200 from %s", second, good.addr())
		}
		if srv.attrs["http.response.status_code"] != int64(200) || srv.attrs["gateway.instance"] != good.addr() {
			t.Errorf("server span %v", srv.attrs)
		}
		if !upstreams.has(srv.traceID, first.spanID) || !upstreams.has(srv.traceID, second.spanID) {
			t.Errorf("the two instances did not each get their attempt's traceparent: %q", upstreams.seen)
		}
	})

	t.Run("aggregate calls", func(t *testing.T) {
		if c, _ := call(t, a, "/agg"); c != 200 {
			t.Fatalf("GET /agg: %d", c)
		}
		srv := rc.waitServerSpan(t, "agg", func(otlpSpan) bool { return true })
		calls := testkit.WaitValue(t, "two call spans", func() ([]otlpSpan, bool) { k := rc.children(srv); return k, len(k) == 2 })
		names := map[string]bool{}
		for _, c := range calls {
			names[c.name] = true
			if c.kind != tracepb.Span_SPAN_KIND_INTERNAL || c.attrs["gateway.service"] != "echo" || c.attrs["gateway.route"] != "agg" {
				t.Errorf("call span %+v", c)
			}
			at := testkit.WaitValue(t, "the call's attempt", func() ([]otlpSpan, bool) { k := rc.children(c); return k, len(k) == 1 })
			if at[0].kind != tracepb.Span_SPAN_KIND_CLIENT || !upstreams.has(srv.traceID, at[0].spanID) {
				t.Errorf("call %s: attempt %+v, upstream traceparents %q", c.name, at[0], upstreams.seen)
			}
		}
		if !names["agg/one"] || !names["agg/two"] {
			t.Errorf("call spans %v; want agg/one and agg/two", names)
		}
	})

	t.Run("forward_auth call", func(t *testing.T) {
		if c, _ := call(t, a, "/fa/x", "Authorization: Bearer ok"); c != 200 {
			t.Fatalf("GET /fa/x: %d", c)
		}
		srv := rc.waitServerSpan(t, "fa", func(s otlpSpan) bool { return s.attrs["url.path"] == "/fa/x" })
		kids := testkit.WaitValue(t, "the auth and upstream spans", func() ([]otlpSpan, bool) { k := rc.children(srv); return k, len(k) == 2 })
		var auth, up otlpSpan
		for _, k := range kids {
			if k.name == "forward_auth" {
				auth = k
			} else {
				up = k
			}
		}
		if auth.kind != tracepb.Span_SPAN_KIND_INTERNAL || auth.attrs["gateway.service"] != "auth" || up.attrs["gateway.service"] != "echo" {
			t.Fatalf("children %+v; want a forward_auth span and the echo attempt", kids)
		}
		at := testkit.WaitValue(t, "the auth attempt", func() ([]otlpSpan, bool) { k := rc.children(auth); return k, len(k) == 1 })
		if at[0].attrs["gateway.service"] != "auth" || !upstreams.has(srv.traceID, at[0].spanID) || !upstreams.has(srv.traceID, up.spanID) {
			t.Errorf("auth attempt %+v; traceparents %q", at[0], upstreams.seen)
		}
	})
}

// TestTracingNeverHoldsRequestsUpAndFlushesAtExit: with the collector
// unreachable, requests are answered as usual; with a collector and an
// export delay longer than the test, the spans still arrive, sent by the
// shutdown's flush.
func TestTracingNeverHoldsRequestsUpAndFlushesAtExit(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	startBackend(t, client, "echo", "echo-1")
	putRoute(t, client, "plain.hcl", routeDoc("plain", "/plain", "echo"))

	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // nothing listens there any more
	a := startGatewayEnv(t, gatewayBin, addr, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + deadURL, "OTEL_BSP_SCHEDULE_DELAY=10",
		"OTEL_BSP_MAX_QUEUE_SIZE=16", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=4"})
	testkit.WaitFor(t, "route served", func() bool { c, _ := getInstance(t, a, "/plain/ready"); return c == 200 })
	for i := range 200 {
		if c, _ := getInstance(t, a, fmt.Sprintf("/plain/%d", i)); c != 200 {
			t.Fatalf("request %d with the collector down: %d", i, c)
		}
	}

	rc := startOTLPReceiver(t)
	b := startGatewayEnv(t, gatewayBin, addr, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rc.srv.URL, "OTEL_BSP_SCHEDULE_DELAY=3600000"})
	testkit.WaitFor(t, "route served", func() bool { c, _ := getInstance(t, b, "/plain/flushed"); return c == 200 })
	if n := len(rc.find(func(otlpSpan) bool { return true })); n != 0 {
		t.Fatalf("%d spans exported before the shutdown; the schedule delay should hold them", n)
	}
	b.signal(t, syscall.SIGTERM)
	if err := b.wait(t, 30*time.Second); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	if len(rc.find(func(s otlpSpan) bool { return s.name == "plain" && s.attrs["url.path"] == "/plain/flushed" })) == 0 {
		t.Error("the server span was not flushed at exit")
	}
}
