package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayco/gateway/registry"
)

// TestBrokenBodyOnRetriedRouteReachesNoInstance: a route that buffers
// bodies for replay finds the body broken before any instance is called,
// answers 400, and neither calls nor blames any instance.
func TestBrokenBodyOnRetriedRouteReachesNoInstance(t *testing.T) {
	var calls atomic.Int64
	_, in := startUpstream(t, "put-1", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
	})
	pg := startPolicyGateway(t, Options{}, `
route "put" {
  path_prefix = "/put"
  service     = "api"
  retries     = 1
  retry_non_idempotent = true
}
`, map[string][]registry.Instance{"api": {in}})
	addr := strings.TrimPrefix(pg.url, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second)) // a guard against hanging
	fmt.Fprintf(conn, "PUT /put/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n0123456789")
	_ = conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("short body on a retried route: %s, want 400", resp.Status)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("upstream called %d times for broken bodies, want 0", n)
	}
	// A good request still goes through.
	req, _ := http.NewRequest("PUT", pg.url+"/put/x", strings.NewReader("ok"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
}
