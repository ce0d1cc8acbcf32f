package gateway

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// TestUncleanPathsCannotReachOtherRoutes sends raw request lines, as an
// attacker would (clients clean paths themselves), and checks which route
// and which upstream path each one reaches.
func TestUncleanPathsCannotReachOtherRoutes(t *testing.T) {
	_, pub := startUpstream(t, "public", nil)
	_, adm := startUpstream(t, "admin", nil)
	gw := New(Options{})
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{
		prefixRoute("public", "/api/public", "public"),
		prefixRoute("admin", "/api/admin", "admin"),
	}, fixed(map[string][]registry.Instance{"public": {pub}, "admin": {adm}}), nil))
	srv := serve(t, gw)

	tests := []struct {
		target       string
		wantInstance string // "" = the gateway answers 404 itself
		wantPath     string
	}{
		{"/api/public/x", "public", "/api/public/x"},
		{"/api/public/../admin/x", "admin", "/api/admin/x"},
		{"/api/public/%2e%2e/admin/x", "admin", "/api/admin/x"},
		{"/api/public/%2E%2E%2Fadmin/x", "admin", "/api/admin/x"},
		{"/api/public%2F..%2Fadmin", "admin", "/api/admin"},
		{"//api//admin/x", "admin", "/api/admin/x"},
		{"/api/admin/../public/x", "public", "/api/public/x"},
		{"/api/./public/x", "public", "/api/public/x"},
		{"/api/admin/..%2f..%2fetc/passwd", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			status, body := rawGet(t, srv.Listener.Addr().String(), tc.target)
			if tc.wantInstance == "" {
				if status != http.StatusNotFound {
					t.Fatalf("status %d, body %s; want 404 from the gateway", status, body)
				}
				return
			}
			if status != 200 || !strings.Contains(body, fmt.Sprintf(`"instance":%q`, tc.wantInstance)) ||
				!strings.Contains(body, fmt.Sprintf(`"path":%q`, tc.wantPath)) || !strings.Contains(body, `"raw_path":""`) {
				t.Fatalf("status %d body %s; want instance %q with path %q", status, body, tc.wantInstance, tc.wantPath)
			}
		})
	}
}

// rawGet writes the request line exactly as given, bypassing Go's client,
// which would clean or re-encode the path.
func rawGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp.StatusCode, b.String()
}

// TestUncleanPathsCannotDodgeARoutesAuth: the admin route demands a JWT;
// no spelling of its path through the public route gets in without one.
func TestUncleanPathsCannotDodgeARoutesAuth(t *testing.T) {
	t.Setenv("TEST_ADMIN_SECRET", "s3cret")
	_, pub := startUpstream(t, "public", nil)
	_, adm := startUpstream(t, "admin", nil)
	gw := New(Options{})
	gw.Publish(newTableBuilder(gw.deps).build(routesFrom(t, `
route "public" {
  path_prefix = "/api/public"
  service     = "public"
}
route "admin" {
  path_prefix = "/api/admin"
  service     = "admin"
  jwt {
    algorithms = ["HS256"]
    secret_env = "TEST_ADMIN_SECRET"
  }
}
`), fixed(map[string][]registry.Instance{"public": {pub}, "admin": {adm}}), nil))
	srv := serve(t, gw)
	for _, target := range []string{
		"/api/admin/users",
		"/api/public/../admin/users",
		"/api/public/%2e%2e/admin/users",
		"/api/public%2F..%2Fadmin/users",
		"//api//admin//users",
		"/api/./admin/users",
	} {
		status, body := rawGet(t, srv.Listener.Addr().String(), target)
		if status != http.StatusUnauthorized {
			t.Errorf("%s: %d %s; want 401 from the admin route's jwt policy", target, status, body)
		}
	}
}
