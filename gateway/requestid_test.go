package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

func TestRequestIDIsKeptWhenValidAndReplacedOtherwise(t *testing.T) {
	echo := &headerEcho{}
	_, inst := startUpstream(t, "echo-1", echo.ServeHTTP)
	var log testkit.Buffer
	gw := New(Options{
		RequestID: func() string { return "generated-id" },
		AccessLog: accessLogTo(t, &log),
	})
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{prefixRoute("echo", "/", "echo")},
		fixed(map[string][]registry.Instance{"echo": {inst}}), nil))
	srv := serve(t, gw)

	long := strings.Repeat("a", maxRequestIDLen)
	tests := []struct {
		name string
		sent []string // X-Request-Id values the client sends
		want string
	}{
		{"absent: generated", nil, "generated-id"},
		{"valid: propagated", []string{"client-abc-123"}, "client-abc-123"},
		{"128 chars: propagated", []string{long}, long},
		{"129 chars: replaced", []string{long + "a"}, "generated-id"},
		{"control character (tab): replaced", []string{"evil\tid"}, "generated-id"},
		{"non-ASCII: replaced", []string{"idé"}, "generated-id"},
		{"empty: replaced", []string{""}, "generated-id"},
		{"two values: replaced", []string{"a", "b"}, "generated-id"},
		{"uuid: propagated", []string{"3f2b8c1e-9d4a-4c7b-8e21-0a5f6d7c8b9a"}, "3f2b8c1e-9d4a-4c7b-8e21-0a5f6d7c8b9a"},
		{"base64: propagated", []string{"aGVsbG8+d29ybGQ/=="}, "aGVsbG8+d29ybGQ/=="},
		// Printable, but a quote, a backslash or a space would forge
		// fields of the access-log line in text mode.
		{"quote and fields: replaced", []string{`abc\" route=admin status=200 forged=\"1`}, "generated-id"},
		{"space: replaced", []string{"a b"}, "generated-id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
			for _, v := range tc.sent {
				req.Header.Add("X-Request-Id", v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := echo.got().Values("X-Request-Id"); len(got) != 1 || got[0] != tc.want {
				t.Errorf("upstream got X-Request-Id %q, want [%q]", got, tc.want)
			}
			// The upstream's echoed ID must not show up next to ours.
			if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != tc.want {
				t.Errorf("response X-Request-Id %q, want [%q]", got, tc.want)
			}
		})
	}
	testkit.WaitFor(t, "the access-log lines", func() bool { return strings.Count(log.String(), "\n") >= len(tests) })
	if strings.Contains(log.String(), "forged") || strings.Contains(log.String(), "route=admin") {
		t.Errorf("a client's request ID forged access-log fields:\n%s", log.String())
	}
	if !strings.Contains(log.String(), `"request_id":"client-abc-123"`) {
		t.Errorf("access log lacks request_id=client-abc-123:\n%s", log.String())
	}
}

func TestGatewayErrorsCarryTheRequestID(t *testing.T) {
	gw := New(Options{RequestID: func() string { return "err-id" }})
	srv := serve(t, gw)
	resp, err := srv.Client().Get(srv.URL + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("X-Request-Id") != "err-id" {
		t.Fatalf("status %d, X-Request-Id %q; want 404 with err-id", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}
}

func TestDefaultRequestIDIs32HexCharsAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := newRequestID()
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("id %q is not 32 hex characters", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestTraceContextHeadersReachUpstreamUntouched(t *testing.T) {
	echo := &headerEcho{}
	_, inst := startUpstream(t, "echo-1", echo.ServeHTTP)
	gw := New(Options{})
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{prefixRoute("echo", "/", "echo")},
		fixed(map[string][]registry.Instance{"echo": {inst}}), nil))
	srv := serve(t, gw)

	const (
		parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		state  = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
	)
	req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
	req.Header.Set("Traceparent", parent)
	req.Header.Add("Tracestate", state)
	req.Header.Add("Tracestate", "second=entry") // list-valued: every value is kept, in order
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := echo.got()
	if got := h.Values("Traceparent"); len(got) != 1 || got[0] != parent {
		t.Errorf("upstream traceparent %q, want [%q]", got, parent)
	}
	if got := h.Values("Tracestate"); len(got) != 2 || got[0] != state || got[1] != "second=entry" {
		t.Errorf("upstream tracestate %q, want [%q second=entry]", got, state)
	}
}
