package gateway

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// TestStreamingAnswersReachTheClientAsWritten checks that each event of a
// server-sent event stream, and each line of a chunked stream, reaches
// the client before the upstream writes the next one, through every
// ResponseWriter wrapper, on HTTP/1.1 and on HTTP/2 (TLS with ALPN).
func TestStreamingAnswersReachTheClientAsWritten(t *testing.T) {
	for _, tc := range []struct{ name, contentType, first, second string }{
		{"sse", "text/event-stream", "data: one\n\n", "data: two\n\n"},
		{"chunked", "application/x-ndjson", `{"n":1}` + "\n", `{"n":2}` + "\n"},
	} {
		for _, h2 := range []bool{false, true} {
			name := tc.name + "/http1"
			if h2 {
				name = tc.name + "/http2"
			}
			t.Run(name, func(t *testing.T) {
				next := make(chan struct{})
				_, inst := startUpstream(t, "s-1", func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", tc.contentType)
					_, _ = w.Write([]byte(tc.first))
					_ = http.NewResponseController(w).Flush()
					select {
					case <-next:
					case <-r.Context().Done():
						return
					}
					_, _ = w.Write([]byte(tc.second))
				})
				gw := New(Options{Metrics: metrics.New(metrics.Options{})})
				b := newTableBuilder(gw.deps)
				gw.Publish(b.build(routesFrom(t, `route "s" {
  path_prefix = "/events"
  service     = "s"
  timeout     = "1h"
}`), fixed(map[string][]registry.Instance{"s": {inst}}), nil))
				srv := httptest.NewUnstartedServer(gw)
				if h2 {
					srv.EnableHTTP2 = true
					srv.StartTLS()
				} else {
					srv.Start()
				}
				t.Cleanup(srv.Close)
				client := srv.Client()
				client.Timeout = testkit.Timeout // a part held back fails the test, not hangs it
				resp, err := client.Get(srv.URL + "/events")
				if err != nil {
					close(next)
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
					t.Fatalf("client spoke %s, want HTTP/%d", resp.Proto, want)
				}
				rd := bufio.NewReader(resp.Body)
				// The upstream is holding the second part until next is
				// closed, so reading the first proves it was flushed.
				got := readPart(t, rd, tc.first)
				close(next)
				if got != tc.first {
					t.Fatalf("first part %q, want %q", got, tc.first)
				}
				if got := readPart(t, rd, tc.second); got != tc.second {
					t.Fatalf("second part %q, want %q", got, tc.second)
				}
			})
		}
	}
}

// readPart reads as many lines as want has.
func readPart(t *testing.T, rd *bufio.Reader, want string) string {
	t.Helper()
	var b strings.Builder
	for range strings.Count(want, "\n") {
		line, err := rd.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			t.Fatalf("after %q: %v", b.String(), err)
		}
	}
	return b.String()
}
