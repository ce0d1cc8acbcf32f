package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/internal/testkit"
)

// TestRoutingSpellingsThroughConsul routes from a KV document through a
// real agent: a host-bound route with jwt, a case-insensitive route with
// jwt, and a host-less catch-all. No spelling of the host (case, trailing
// dot, default port) or of the case-insensitive path reaches the
// catch-all; a request without Host, or with a path an upstream framework
// would resolve elsewhere (";", "\"), is refused with 400 and reaches no
// upstream.
// routerSecretEnv names the environment variable the router test's jwt
// blocks read their secret from (set for every gateway, see gatewayEnv).
const routerSecretEnv = "E2E_ROUTER_SECRET"

func TestRoutingSpellingsThroughConsul(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	startBackend(t, client, "api", "api-1")
	startBackend(t, client, "admin", "admin-1")
	startBackend(t, client, "catchall", "catchall-1")
	putRoute(t, client, "router.hcl", `
route "api" {
  host        = "api.example.com"
  path_prefix = "/"
  service     = "api"
  jwt {
    algorithms = ["HS256"]
    secret_env = "E2E_ROUTER_SECRET"
  }
}
route "admin" {
  path_prefix      = "/admin/"
  case_insensitive = true
  service          = "admin"
  jwt {
    algorithms = ["HS256"]
    secret_env = "E2E_ROUTER_SECRET"
  }
}
route "any" {
  path_prefix = "/"
  service     = "catchall"
}
`)
	a := startGateway(t, addr)
	testkit.WaitFor(t, "the document's routes served", func() bool {
		code, inst := getInstance(t, a, "/x")
		return code == 200 && inst == "catchall-1"
	})
	get := func(target, host string) string {
		hdr := ""
		if host != "" {
			hdr = "Host: " + host + "\r\n"
		}
		return "GET " + target + " HTTP/1.1\r\n" + hdr + "Connection: close\r\n\r\n"
	}

	t.Run("host spellings", func(t *testing.T) {
		for _, host := range []string{"api.example.com", "API.EXAMPLE.COM", "Api.Example.Com", "api.example.com.",
			"api.example.com:80", "API.example.com.:80", "api.example.com:", "api.example.com:8080"} {
			if status, inst, msg := rawRequest(t, a, get("/x", host)); status != http.StatusUnauthorized {
				t.Errorf("Host %q: %d %q %q; want 401 from the api route's jwt, not the catch-all", host, status, inst, msg)
			}
		}
		if status, inst, _ := rawRequest(t, a, get("/x", "other.example.com.")); status != 200 || inst != "catchall-1" {
			t.Errorf("another host: %d %q, want the catch-all", status, inst)
		}
	})

	t.Run("case-insensitive route", func(t *testing.T) {
		for _, target := range []string{"/admin/x", "/ADMIN/x", "/Admin/x", "/aDmIn/", "/%41DMIN/x"} {
			if status, inst, msg := rawRequest(t, a, get(target, "gw.example.com")); status != http.StatusUnauthorized {
				t.Errorf("%s: %d %q %q; want 401 from the admin route's jwt, not the catch-all", target, status, inst, msg)
			}
		}
	})

	t.Run("no Host", func(t *testing.T) {
		for _, req := range []string{"GET /x HTTP/1.0\r\n\r\n", "GET /admin/x HTTP/1.0\r\nConnection: close\r\n\r\n"} {
			if status, inst, msg := rawRequest(t, a, req); status != http.StatusBadRequest || inst != "" || !strings.Contains(msg, "Host") {
				t.Errorf("%q: %d %q %q; want 400 about the missing Host", req, status, inst, msg)
			}
		}
		if status, inst, _ := rawRequest(t, a, "GET /x HTTP/1.0\r\nHost: gw.example.com\r\n\r\n"); status != 200 || inst != "catchall-1" {
			t.Errorf("HTTP/1.0 with Host: %d %q, want the catch-all", status, inst)
		}
	})

	t.Run("path tricks", func(t *testing.T) {
		for _, target := range []string{"/x/..;/admin/y", "/x/..%3B/admin/y", "/admin;a=b/y", `/x/..\admin\y`, "/x/..%5Cadmin%5cy"} {
			if status, inst, msg := rawRequest(t, a, get(target, "gw.example.com")); status != http.StatusBadRequest || inst != "" {
				t.Errorf("%s: %d %q %q; want 400", target, status, inst, msg)
			}
		}
	})
}
