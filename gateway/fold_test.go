package gateway

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/gatewayco/gateway/registry"
)

// TestCaseInsensitiveRouteHoldsItsAuthForEverySpelling: a route marked
// case_insensitive takes every spelling of its path, so a case-insensitive
// upstream's /admin cannot be reached as /ADMIN through the catch-all
// without the route's jwt; routes not marked stay case-sensitive.
func TestCaseInsensitiveRouteHoldsItsAuthForEverySpelling(t *testing.T) {
	t.Setenv("TEST_FOLD_SECRET", "s3cret")
	_, adm := startUpstream(t, "admin", nil)
	_, rep := startUpstream(t, "reports", nil)
	_, key := startUpstream(t, "keys", nil)
	_, api := startUpstream(t, "api", nil)
	_, all := startUpstream(t, "all", nil)
	routes := routesFrom(t, `
route "admin" {
  path_prefix      = "/Admin/"
  strip_prefix     = "/admin"
  case_insensitive = true
  service          = "admin"
  jwt {
    algorithms = ["HS256"]
    secret_env = "TEST_FOLD_SECRET"
  }
}
route "reports" {
  path             = "/reports/{id:[0-9]+}"
  case_insensitive = true
  service          = "reports"
}
route "keys" {
  path_prefix      = "/keys/"
  strip_prefix     = "/keys"
  case_insensitive = true
  service          = "keys"
}
route "api" {
  path_prefix = "/api/Users"
  service     = "api"
}
route "all" {
  path_prefix = "/"
  service     = "all"
}
`)
	gw := New(Options{})
	gw.Publish(newTableBuilder(gw.deps).build(routes, fixed(map[string][]registry.Instance{
		"admin": {adm}, "reports": {rep}, "keys": {key}, "api": {api}, "all": {all}}), nil))
	srv := serve(t, gw)

	for _, target := range []string{"/admin/x", "/ADMIN/x", "/aDmIn/", "/Admin/x/../y", "/%41dmin/x"} {
		if status, body := rawExchange(t, dial(t, srv), "GET "+target+" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"); status != http.StatusUnauthorized {
			t.Errorf("%s: %d %s; want 401 from the admin route's jwt", target, status, body)
		}
	}
	for _, tc := range []struct{ target, inst, path string }{
		{"/reports/7", "reports", "/reports/7"},
		{"/REPORTS/7", "reports", "/REPORTS/7"},
		{"/Reports/x", "all", "/Reports/x"},
		// strip_prefix is removed in whatever case the client wrote it.
		{"/KEYS/a/B", "keys", "/a/B"},
		// U+212A KELVIN SIGN folds to k, as case-insensitive upstreams
		// that fold Unicode (and Go's EqualFold) have it.
		{"/%E2%84%AAeys/a", "keys", "/a"},
		{"/api/Users/1", "api", "/api/Users/1"},
		{"/api/users/1", "all", "/api/users/1"},
		{"/API/USERS/1", "all", "/API/USERS/1"},
	} {
		status, body := rawExchange(t, dial(t, srv), "GET "+tc.target+" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
		var got map[string]string
		_ = json.Unmarshal([]byte(body), &got)
		if status != 200 || got["instance"] != tc.inst || got["path"] != tc.path {
			t.Errorf("%s: %d %s; want %s with path %s", tc.target, status, body, tc.inst, tc.path)
		}
	}
}
