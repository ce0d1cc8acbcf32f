package gateway

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// TestInformationalAnswersAreNotTheFinalStatus: with Expect: 100-continue
// (curl sends it for bodies over 1 KiB) the upstream first answers 100;
// the access log, metrics and request ID must follow the final answer.
func TestInformationalAnswersAreNotTheFinalStatus(t *testing.T) {
	_, inst := startUpstream(t, "up", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusInternalServerError)
	})
	var buf testkit.Buffer
	m := metrics.New(metrics.Options{})
	gw := New(Options{AccessLog: accessLogTo(t, &buf), Metrics: m})
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{prefixRoute("r", "/", "up")},
		fixed(map[string][]registry.Instance{"up": {inst}}), nil))
	srv := serve(t, gw)

	req, _ := http.NewRequest("POST", srv.URL+"/upload", bytes.NewReader(bytes.Repeat([]byte("x"), 4096)))
	req.Header.Set("Expect", "100-continue")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("final answer %d with X-Request-Id %q; want 500 with an id", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}
	line := testkit.WaitValue(t, "the access-log line", func() (string, bool) { s := buf.String(); return s, strings.Contains(s, `"status"`) })
	if !strings.Contains(line, `"status":500`) {
		t.Fatalf("access log %q; want status=500", line)
	}
	if _, errs := m.Counts("r"); errs != 1 {
		t.Fatalf("5xx counted for the route: %d, want 1", errs)
	}
}
