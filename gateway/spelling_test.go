package gateway

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/router"
	"github.com/gatewayco/gateway/registry"
)

// rawExchange writes req to conn exactly as given and reads one answer:
// Go's client would canonicalise the Host, the path or header names.
func rawExchange(t *testing.T, conn net.Conn, req string) (int, string) {
	t.Helper()
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func dial(t *testing.T, srv *httptest.Server) net.Conn {
	t.Helper()
	if srv.TLS != nil {
		c, err := tls.Dial("tcp", srv.Listener.Addr().String(), srv.Client().Transport.(*http.Transport).TLSClientConfig)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHostSpellingsReachTheHostBoundRoute: every spelling of a host
// (case, a trailing dot, the scheme's default port, an empty port) is the
// host-bound route's, never the host-less catch-all's, and the upstream
// gets the one canonical spelling as Host and X-Forwarded-Host.
func TestHostSpellingsReachTheHostBoundRoute(t *testing.T) {
	_, api := startUpstream(t, "api", nil)
	_, tpl := startUpstream(t, "tpl", nil)
	_, other := startUpstream(t, "any", nil)
	routes := []config.Route{prefixRoute("api", "/", "api"), prefixRoute("tpl", "/", "tpl"), prefixRoute("any", "/", "any")}
	routes[0].Host = "api.example.com"
	routes[1].Host = "{sub}.tpl.example.com"
	insts := fixed(map[string][]registry.Instance{"api": {api}, "tpl": {tpl}, "any": {other}})
	gw := New(Options{})
	gw.Publish(newTableBuilder(gw.deps).build(routes, insts, nil))
	plain := serve(t, gw)
	secure := httptest.NewTLSServer(gw)
	t.Cleanup(secure.Close)

	for _, tc := range []struct {
		srv                *httptest.Server
		host               string
		wantInst, wantHost string
	}{
		{plain, "api.example.com", "api", "api.example.com"},
		{plain, "API.Example.COM", "api", "api.example.com"},
		{plain, "api.example.com.", "api", "api.example.com"},
		{plain, "api.example.com:80", "api", "api.example.com"},
		{plain, "api.example.com:", "api", "api.example.com"},
		{plain, "API.EXAMPLE.COM.:80", "api", "api.example.com"},
		// Another port is another origin, but host matching ignores
		// ports (as mux does); the Host keeps it.
		{plain, "api.example.com:8080", "api", "api.example.com:8080"},
		{plain, "api.example.com:443", "api", "api.example.com:443"},
		{secure, "api.example.com:443", "api", "api.example.com"},
		{secure, "Api.Example.Com.:443", "api", "api.example.com"},
		{secure, "api.example.com:80", "api", "api.example.com:80"},
		{plain, "x.tpl.example.com.", "tpl", "x.tpl.example.com"},
		{plain, "X.TPL.Example.com:80", "tpl", "x.tpl.example.com"},
		{plain, "other.example.com.", "any", "other.example.com"},
	} {
		scheme := "http"
		if tc.srv.TLS != nil {
			scheme = "https"
		}
		t.Run(scheme+" "+tc.host, func(t *testing.T) {
			status, body := rawExchange(t, dial(t, tc.srv), "GET /x HTTP/1.1\r\nHost: "+tc.host+"\r\nConnection: close\r\n\r\n")
			var got map[string]string
			_ = json.Unmarshal([]byte(body), &got)
			if status != 200 || got["instance"] != tc.wantInst {
				t.Fatalf("status %d, body %s; want route %q", status, body, tc.wantInst)
			}
			if got["host"] != tc.wantHost || got["xfh"] != tc.wantHost {
				t.Errorf("upstream saw Host %q and X-Forwarded-Host %q, want %q for both", got["host"], got["xfh"], tc.wantHost)
			}
		})
	}
}

// TestRequestWithoutHostIsRefused: an HTTP/1.0 request may omit Host; the
// gateway then has no host to route on or to send, and answers 400 rather
// than forward it with the instance's address as Host.
func TestRequestWithoutHostIsRefused(t *testing.T) {
	var calls sync.Map
	_, inst := startUpstream(t, "up", func(w http.ResponseWriter, r *http.Request) {
		calls.Store(r.Host, true)
		fmt.Fprintf(w, `{"host":%q}`, r.Host)
	})
	gw := New(Options{})
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{prefixRoute("up", "/", "up")},
		fixed(map[string][]registry.Instance{"up": {inst}}), nil))
	srv := serve(t, gw)

	for _, req := range []string{"GET /x HTTP/1.0\r\n\r\n", "GET /x HTTP/1.0\r\nHost: \r\n\r\n", "GET /x HTTP/1.0\r\nHost: .\r\n\r\n"} {
		status, body := rawExchange(t, dial(t, srv), req)
		if status != http.StatusBadRequest || !strings.Contains(body, router.MsgMissingHost) {
			t.Errorf("%q: %d %s; want 400 %q", req, status, body, router.MsgMissingHost)
		}
	}
	calls.Range(func(k, _ any) bool { t.Errorf("upstream was called with Host %q", k); return true })

	// HTTP/1.0 with a Host, or with an absolute target, is served.
	for _, req := range []string{"GET /x HTTP/1.0\r\nHost: app.example.com\r\n\r\n", "GET http://app.example.com/x HTTP/1.0\r\n\r\n"} {
		if status, body := rawExchange(t, dial(t, srv), req); status != 200 || !strings.Contains(body, `"host":"app.example.com"`) {
			t.Errorf("%q: %d %s; want 200 with Host app.example.com", req, status, body)
		}
	}
}

// TestPathTricksAreRefused: path parameters (";", which Tomcat, Jetty and
// Spring strip, so /public/..;/admin is /admin to them) and backslashes
// (which IIS reads as "/"), raw or percent-encoded, would let an upstream
// resolve a path to another route than the gateway chose. They get 400.
func TestPathTricksAreRefused(t *testing.T) {
	_, pub := startUpstream(t, "public", nil)
	_, adm := startUpstream(t, "admin", nil)
	gw := New(Options{})
	routes := routesFrom(t, `
route "public" {
  path_prefix = "/public/"
  service     = "public"
}
route "admin" {
  path        = "/admin"
  service     = "admin"
  jwt {
    algorithms = ["HS256"]
    secret_env = "TEST_PATH_TRICKS_SECRET"
  }
}
`)
	t.Setenv("TEST_PATH_TRICKS_SECRET", "s3cret")
	gw.Publish(newTableBuilder(gw.deps).build(routes, fixed(map[string][]registry.Instance{"public": {pub}, "admin": {adm}}), nil))
	srv := serve(t, gw)
	for _, target := range []string{
		"/public/..;/admin",
		"/public/..;x=1/admin",
		"/public/.;/x",
		"/public/%2e%2e;/admin",
		"/public/..%3B/admin",
		"/public/..%3b/admin",
		"/admin;jsessionid=1",
		"/public/x;y",
		`/public/..\admin`,
		"/public/..%5Cadmin",
		"/public/..%5cadmin",
		`/public\..\admin`,
	} {
		status, body := rawExchange(t, dial(t, srv), "GET "+target+" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
		if status != http.StatusBadRequest || !strings.Contains(body, router.MsgBadPathChar) {
			t.Errorf("%s: %d %s; want 400 %q", target, status, body, router.MsgBadPathChar)
		}
	}
	// A semicolon or backslash in the query is the upstream's business.
	for _, target := range []string{"/public/x?a=1;b=2", `/public/x?q=a\b`, "/public/x?q=%5C%3B"} {
		if status, body := rawExchange(t, dial(t, srv), "GET "+target+" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"); status != 200 || !strings.Contains(body, `"instance":"public"`) {
			t.Errorf("%s: %d %s; want the public route", target, status, body)
		}
	}
}
