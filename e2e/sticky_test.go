package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/testkit"
)

// stickyGet sends one request with the cookie (nil: none) and returns the
// instance that answered and the sticky cookie set on the answer (nil:
// none).
func stickyGet(t *testing.T, url string, cookie *http.Cookie, header ...string) (string, *http.Cookie) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	inst, _ := body["instance"].(string)
	var set *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "gw_sticky" {
			set = c
		}
	}
	return inst, set
}

// TestStickyCookieKeepsInstanceUntilItFails: against real Consul, a
// client's cookie keeps it on one instance across many requests (and on
// a second gateway replica, which computes the same values); when that
// instance's Consul check goes critical the client moves, gets a new
// cookie, and the new cookie sticks. A garbage cookie is ignored. The
// cookie is HttpOnly, SameSite=Lax, Path=/ and Secure only over HTTPS (here
// a trusted proxy's X-Forwarded-Proto), and names no address.
func TestStickyCookieKeepsInstanceUntilItFails(t *testing.T) {
	client, addr := startConsul(t)
	var backends []*backend
	for i := range 3 {
		backends = append(backends, startBackend(t, client, "users", fmt.Sprintf("users-%d", i+1)))
	}
	putRoute(t, client, "users.hcl", `route "users" {
  path_prefix = "/api/users"
  service     = "users"
  sticky { cookie = "gw_sticky" }
}
`)
	gw := startGateway(t, addr, "-trusted-proxies", "127.0.0.0/8")
	gw2 := startGateway(t, addr)
	for _, p := range []*gatewayProc{gw, gw2} {
		testkit.WaitFor(t, "3 instances", func() bool {
			rs := getRoutes(t, p).Routes
			return len(rs) == 1 && len(rs[0].Instances) == 3
		})
	}
	if rs := getRoutes(t, gw).Routes; rs[0].StickyCookie != "gw_sticky" {
		t.Errorf("/routes sticky_cookie = %q", rs[0].StickyCookie)
	}
	url := gw.url("/api/users")

	first, ck := stickyGet(t, url, nil)
	if ck == nil {
		t.Fatal("first answer sets no sticky cookie")
	}
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure || ck.MaxAge != 0 {
		t.Errorf("cookie attributes: %s; want HttpOnly, SameSite=Lax, Path=/, not Secure over plain HTTP, a session cookie", ck)
	}
	for _, b := range backends {
		host, port, _ := strings.Cut(b.addr(), ":")
		if strings.Contains(ck.Value, port) || strings.Contains(ck.Value, host) || strings.Contains(ck.Value, b.id) {
			t.Errorf("cookie value %q reveals instance %s at %s", ck.Value, b.id, b.addr())
		}
	}
	const n = 60
	for _, p := range []*gatewayProc{gw, gw2} {
		for range n {
			inst, set := stickyGet(t, p.url("/api/users"), ck)
			if inst != first || set != nil {
				t.Fatalf("with cookie for %s: served by %s, cookie set %v", first, inst, set)
			}
		}
	}
	t.Logf("%d requests on each of two replicas stayed on %s", n, first)

	_, secure := stickyGet(t, url, nil, "X-Forwarded-Proto", "https")
	if secure == nil || !secure.Secure {
		t.Errorf("through a trusted proxy over HTTPS: cookie %v, want Secure", secure)
	}
	for _, garbage := range []string{"garbage", strings.Repeat("f", 32), ck.Value + "x", `"unterminated`, "=;;,=", strings.Repeat("é", 2000)} {
		inst, set := stickyGet(t, url, nil, "Cookie", "gw_sticky="+garbage)
		if inst == "" || set == nil || set.Value == garbage {
			t.Errorf("garbage cookie %q: served by %q, cookie set %v; want an instance and a fresh cookie", garbage, inst, set)
		}
	}

	var failed *backend
	for _, b := range backends {
		if b.id == first {
			failed = b
		}
	}
	failed.setHealth(t, client, api.HealthCritical)
	testkit.WaitFor(t, "2 instances", func() bool {
		rs := getRoutes(t, gw).Routes
		return len(rs) == 1 && len(rs[0].Instances) == 2
	})
	moved, ck2 := stickyGet(t, url, ck)
	if moved == first || moved == "" || ck2 == nil || ck2.Value == ck.Value {
		t.Fatalf("after %s went critical: served by %q with cookie %v; want another instance and a new cookie", first, moved, ck2)
	}
	for range n {
		if inst, set := stickyGet(t, url, ck2); inst != moved || set != nil {
			t.Fatalf("with the new cookie for %s: served by %s, cookie set %v", moved, inst, set)
		}
	}
	t.Logf("after %s went critical the client moved to %s and stayed for %d requests", first, moved, n)
}
