package e2e

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

	"github.com/gatewayco/gateway/internal/testkit"
)

// TestClientLimits covers what a misbehaving client can send: oversized
// headers and bodies are refused with the right status before any upstream
// sees them, and a client trickling its headers is cut off.
func TestClientLimits(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	var upstreamCalls atomic.Int64
	startBackendWith(t, client, "upload", "upload-1", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		upstreamCalls.Add(1)
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	putRoute(t, client, "upload.hcl", routeDoc("upload", "/upload", "upload"))
	a := startGateway(t, addr, "-max-body-bytes", "1024", "-max-header-bytes", "4096", "-read-header-timeout", "300ms")
	testkit.WaitFor(t, "route", func() bool { code, _ := getInstance(t, a, "/upload"); return code == 200 })
	url := a.url("/upload")

	t.Run("body within the limit passes", func(t *testing.T) {
		resp, err := http.Post(url, "text/plain", strings.NewReader(strings.Repeat("x", 1000)))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		resp.Body.Close()
	})
	t.Run("declared length over the limit gets 413 at once", func(t *testing.T) {
		before := upstreamCalls.Load()
		resp, err := http.Post(url, "text/plain", strings.NewReader(strings.Repeat("x", 2000)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || upstreamCalls.Load() != before {
			t.Fatalf("status %d, upstream calls %d -> %d", resp.StatusCode, before, upstreamCalls.Load())
		}
	})
	t.Run("chunked body crossing the limit gets 413", func(t *testing.T) {
		// io.MultiReader hides the length, so the client sends it chunked.
		body := io.MultiReader(strings.NewReader(strings.Repeat("x", 3000)))
		resp, err := http.Post(url, "text/plain", body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413", resp.StatusCode)
		}
	})
	t.Run("oversized headers get 431", func(t *testing.T) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("X-Big", strings.Repeat("y", 16<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", resp.StatusCode)
		}
	})
	t.Run("slowloris client is cut off by ReadHeaderTimeout", func(t *testing.T) {
		conn, err := net.Dial("tcp", a.public)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /upload HTTP/1.1\r\nHost: x\r\n")
		// Keep trickling a header byte at a time, never finishing; the
		// server must close the connection regardless.
		closed := make(chan error, 1)
		go func() {
			_, err := bufio.NewReader(conn).ReadByte()
			closed <- err
		}()
		start := time.Now()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-closed:
				t.Logf("slow client cut off after %v", time.Since(start))
				return
			case <-tick.C:
				if _, err := conn.Write([]byte("X")); err != nil {
					t.Logf("slow client cut off after %v (write: %v)", time.Since(start), err)
					return
				}
				if time.Since(start) > 20*time.Second {
					t.Fatal("a client trickling headers kept its connection for 20 s")
				}
			}
		}
	})
}
