package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/consul/api"
)

// authEnvSecret names the environment variable the test routes' jwt blocks
// read their HMAC secret from (set for every gateway, see gatewayEnv).
const authEnvSecret = "GATEWAY_E2E_JWT_SECRET"

const authSecret = "an-e2e-secret-of-at-least-32-bytes"

// hsToken signs claims (with an hour of validity) for the test routes.
func hsToken(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	if _, ok := claims["exp"]; !ok {
		claims["exp"] = time.Now().Add(time.Hour).Unix()
	}
	return testkit.SignJWT(t, jwt.SigningMethodHS256, "", []byte(authSecret), claims)
}

// authRig is a real Consul with an "echo" service answering with the
// headers the gateway sets, and an "auth" service that admits "Bearer ok"
// as user u-1 and "Bearer ok2" as u-2.
type authRig struct {
	client    *api.Client
	addr      string
	echoHits  atomic.Int64
	authCalls atomic.Int64
}

func startAuthRig(t *testing.T) *authRig {
	t.Helper()
	rig := &authRig{}
	rig.client, rig.addr = startConsul(t)
	startBackendWith(t, rig.client, "echo", "echo-1", func(w http.ResponseWriter, r *http.Request) {
		rig.echoHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"request_id":    strings.Join(r.Header.Values("X-Request-Id"), " | "),
			"user":          strings.Join(r.Header.Values("X-User-Id"), " | "),
			"auth_user":     strings.Join(r.Header.Values("X-Auth-User"), " | "),
			"authorization": strings.Join(r.Header.Values("Authorization"), " | "),
		})
	})
	startBackendWith(t, rig.client, "auth", "auth-1", func(w http.ResponseWriter, r *http.Request) {
		rig.authCalls.Add(1)
		switch r.Header.Get("Authorization") {
		case "Bearer ok":
			w.Header().Set("X-Auth-User", "u-1")
		case "Bearer ok2":
			w.Header().Set("X-Auth-User", "u-2")
		default:
			http.Error(w, "denied", http.StatusForbidden)
		}
	})
	return rig
}

// jwtBlock is the jwt block of the test routes.
const jwtBlock = `
  jwt {
    algorithms     = ["HS256"]
    secret_env     = "` + authEnvSecret + `"
    forward_claims = { sub = "X-User-Id" }
  }`

const authRoutes = `
route "jwt" {
  path_prefix = "/jwt"
  service     = "echo"` + jwtBlock + `
  circuit_breaker {
    failure_ratio = 0.5
    min_requests  = 3
    open_timeout  = "1h"
  }
}
route "fa" {
  path_prefix = "/fa"
  service     = "echo"
  forward_auth {
    service      = "auth"
    path         = "/verify"
    copy_headers = ["X-Auth-User"]
  }
}
aggregate "agg" {
  path = "/agg"` + jwtBlock + `
  call "echo" {
    service = "echo"
    path    = "/echo"
  }
}
`

// call sends one request with headers given as "Name: value" lines and
// decodes a JSON object answer (nil when the body is not one).
func call(t *testing.T, p *gatewayProc, path string, headers ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("GET", p.url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// waitServed waits until path answers want with the given headers, or
// fails with the gateway's configuration errors when the document was
// rejected instead.
func waitServed(t *testing.T, p *gatewayProc, path string, want int, headers ...string) {
	t.Helper()
	testkit.WaitFor(t, fmt.Sprintf("%s answers %d", path, want), func() bool {
		if code, _ := call(t, p, path, headers...); code == want {
			return true
		}
		if errs := getRoutes(t, p).Errors; len(errs) > 0 {
			t.Fatalf("route document rejected: %+v", errs)
		}
		return false
	})
}

// TestGatewaySetHeadersSurviveAClientsConnectionHeader: a client naming
// the gateway's own headers in Connection (making them hop-by-hop) cannot
// remove the verified claim, the auth service's answer or the request ID
// from what the upstream receives, on routes and aggregate calls alike.
func TestGatewaySetHeadersSurviveAClientsConnectionHeader(t *testing.T) {
	t.Parallel()
	rig := startAuthRig(t)
	putRoute(t, rig.client, "auth.hcl", authRoutes)
	a := startGateway(t, rig.addr)
	tok := "Authorization: Bearer " + hsToken(t, jwt.MapClaims{"sub": "alice"})
	waitServed(t, a, "/jwt/x", 200, tok)
	waitServed(t, a, "/fa/x", 200, "Authorization: Bearer ok")

	conn := "Connection: X-Request-Id, X-User-Id, X-Auth-User"
	rid := "X-Request-Id: client-chosen-id"
	check := func(name string, got map[string]any, key, want string) {
		t.Helper()
		if got[key] != want {
			t.Errorf("%s: upstream saw %s = %q, want %q (all: %v)", name, key, got[key], want, got)
		}
	}
	code, got := call(t, a, "/jwt/x", tok, conn, rid, "X-User-Id: mallory")
	if code != 200 {
		t.Fatalf("jwt route: %d %v", code, got)
	}
	check("jwt route", got, "user", "alice")
	check("jwt route", got, "request_id", "client-chosen-id")

	code, got = call(t, a, "/fa/x", "Authorization: Bearer ok", conn, rid, "X-Auth-User: mallory")
	if code != 200 {
		t.Fatalf("forward_auth route: %d %v", code, got)
	}
	check("forward_auth route", got, "auth_user", "u-1")
	check("forward_auth route", got, "request_id", "client-chosen-id")

	// Without a valid ID of its own the client gets a generated one; the
	// upstream must see exactly the ID the client is answered with.
	req, _ := http.NewRequest("GET", a.url("/jwt/x"), nil)
	req.Header.Set("Authorization", strings.TrimPrefix(tok, "Authorization: "))
	req.Header.Set("Connection", "X-Request-Id")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var echoed map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&echoed)
	resp.Body.Close()
	if id := resp.Header.Get("X-Request-Id"); id == "" || echoed["request_id"] != id {
		t.Errorf("generated request ID: client got %q, upstream saw %q", id, echoed["request_id"])
	}

	code, got = call(t, a, "/agg", tok, conn, rid, "X-User-Id: mallory")
	if code != 200 {
		t.Fatalf("aggregate: %d %v", code, got)
	}
	echo, _ := got["echo"].(map[string]any)
	check("aggregate call", echo, "user", "alice")
	check("aggregate call", echo, "request_id", "client-chosen-id")
}

// TestDuplicateCredentialsAreRefusedBeforeAnyUpstream: a request carrying
// two Authorization headers would be verified on the first and forward
// both; on a route with jwt or forward_auth it is refused with 400, and
// neither the auth service nor the upstream sees it.
func TestDuplicateCredentialsAreRefusedBeforeAnyUpstream(t *testing.T) {
	t.Parallel()
	rig := startAuthRig(t)
	putRoute(t, rig.client, "auth.hcl", authRoutes)
	a := startGateway(t, rig.addr)
	good := "Authorization: Bearer " + hsToken(t, jwt.MapClaims{"sub": "alice"})
	forged := "Authorization: Bearer " + hsToken(t, jwt.MapClaims{"sub": "admin", "exp": 0}) + "-unverified"
	waitServed(t, a, "/jwt/x", 200, good)
	waitServed(t, a, "/fa/x", 200, "Authorization: Bearer ok")

	echoBefore, authBefore := rig.echoHits.Load(), rig.authCalls.Load()
	for _, tc := range []struct {
		name, path string
		headers    []string
	}{
		{"jwt route", "/jwt/x", []string{good, forged}},
		{"jwt route, same token twice", "/jwt/x", []string{good, good}},
		{"aggregate", "/agg", []string{good, forged}},
		{"forward_auth route", "/fa/x", []string{"Authorization: Bearer ok", forged}},
	} {
		code, body := call(t, a, tc.path, tc.headers...)
		if code != http.StatusBadRequest || body["error"] != "multiple credentials" {
			t.Errorf("%s: %d %v, want 400 multiple credentials", tc.name, code, body)
		}
	}
	// Two tokens in one header value are not one token: verification fails.
	if code, body := call(t, a, "/jwt/x", good+", "+strings.TrimPrefix(forged, "Authorization: ")); code != http.StatusUnauthorized {
		t.Errorf("two tokens in one header: %d %v, want 401", code, body)
	}
	if n := rig.echoHits.Load() - echoBefore; n != 0 {
		t.Errorf("%d requests with two credentials reached the upstream", n)
	}
	if n := rig.authCalls.Load() - authBefore; n != 0 {
		t.Errorf("%d requests with two credentials reached the auth service", n)
	}
	// One credential still passes, and the upstream sees exactly it.
	code, got := call(t, a, "/jwt/x", good)
	if want := strings.TrimPrefix(good, "Authorization: "); code != 200 || got["authorization"] != want {
		t.Fatalf("single credential: %d, upstream saw %q", code, got["authorization"])
	}
}

// TestUnsendableClaimIsRefusedAndNeverCountsAgainstTheUpstream: a signed
// claim that is not a valid header value (CR, LF, NUL) cannot be forwarded.
// The gateway refuses the token with 401 instead of failing at the
// transport with 502, which would open the route's breaker for everyone.
func TestUnsendableClaimIsRefusedAndNeverCountsAgainstTheUpstream(t *testing.T) {
	t.Parallel()
	rig := startAuthRig(t)
	putRoute(t, rig.client, "auth.hcl", authRoutes)
	a := startGateway(t, rig.addr)
	good := "Authorization: Bearer " + hsToken(t, jwt.MapClaims{"sub": "alice"})
	waitServed(t, a, "/jwt/x", 200, good)

	for _, sub := range []string{"alice\r\nX-Admin: true", "bob\nx", "nul\x00", "esc\x1b[31m", "del\x7f"} {
		bad := "Authorization: Bearer " + hsToken(t, jwt.MapClaims{"sub": sub})
		for range 2 {
			code, body := call(t, a, "/jwt/x", bad)
			if code != http.StatusUnauthorized || body["error"] != "invalid token" {
				t.Errorf("claim %q: %d %v, want 401 invalid token", sub, code, body)
			}
		}
	}
	if code, body := call(t, a, "/jwt/x", good); code != 200 {
		t.Fatalf("valid token after the bad claims: %d %v, want 200 (breaker must stay closed)", code, body)
	}
	_, routes := adminGet(t, a, "/routes")
	for _, r := range routes["routes"].([]any) {
		rv := r.(map[string]any)
		if rv["name"] != "jwt" {
			continue
		}
		if rv["circuit_breaker"] != "closed" {
			t.Errorf("breaker %v, want closed", rv["circuit_breaker"])
		}
		for _, in := range rv["instances"].([]any) {
			if in.(map[string]any)["ejected"] == true {
				t.Errorf("instance ejected: %v", in)
			}
		}
	}
}

// TestRateLimitKeyedOnAVerifiedValueHoldsAgainstRotatingAPIKeys: a limit
// keyed on a client header is defeated by changing the header; keyed on
// what auth verified (a jwt claim, a header the auth service returned), a
// client rotating X-API-Key values is still one client.
func TestRateLimitKeyedOnAVerifiedValueHoldsAgainstRotatingAPIKeys(t *testing.T) {
	t.Parallel()
	rig := startAuthRig(t)
	putRoute(t, rig.client, "rl.hcl", `
route "rl-claim" {
  path_prefix = "/rl-claim"
  service     = "echo"
  rate_limit {
    requests_per_second = 0.001
    burst               = 2
    key                 = "jwt:sub"
  }`+jwtBlock+`
}
route "rl-auth" {
  path_prefix = "/rl-auth"
  service     = "echo"
  rate_limit {
    requests_per_second = 0.001
    burst               = 2
    key                 = "auth_header:X-Auth-User"
  }
  forward_auth {
    service      = "auth"
    path         = "/verify"
    copy_headers = ["X-Auth-User"]
  }
}
`)
	a := startGateway(t, rig.addr)
	waitServed(t, a, "/rl-auth/warm", http.StatusForbidden, "Authorization: Bearer nobody")

	alice := "Authorization: Bearer " + hsToken(t, jwt.MapClaims{"sub": "alice"})
	bob := "Authorization: Bearer " + hsToken(t, jwt.MapClaims{"sub": "bob"})
	for _, tc := range []struct{ path, user, other string }{
		{"/rl-claim/x", alice, bob},
		{"/rl-auth/x", "Authorization: Bearer ok", "Authorization: Bearer ok2"},
	} {
		var codes []int
		for i := range 4 {
			code, _ := call(t, a, tc.path, tc.user, fmt.Sprintf("X-API-Key: key-%d", i))
			codes = append(codes, code)
		}
		if fmt.Sprint(codes) != "[200 200 429 429]" {
			t.Errorf("%s, one user rotating X-API-Key: statuses %v, want [200 200 429 429]", tc.path, codes)
		}
		if code, _ := call(t, a, tc.path, tc.other, "X-API-Key: key-0"); code != 200 {
			t.Errorf("%s: another user is limited too (%d)", tc.path, code)
		}
	}
}

// TestAccessLogIsOneLinePerRequestWhateverThePathHolds sends paths whose
// decoded form holds LF, CR, NUL, ESC, quotes and a raw invalid UTF-8 byte,
// and user agents and referers with quotes, tabs and bytes that are not
// UTF-8, in each access-log format: each request must be exactly one
// line of the access-log file, holding no control character, and none of
// them may reach the gateway's own log.
func TestAccessLogIsOneLinePerRequestWhateverThePathHolds(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	startBackend(t, client, "echo", "echo-1")
	putRoute(t, client, "log.hcl", routeDoc("log", "/log", "echo"))
	targets := []string{
		"/log/a%0A2026-01-01T00:00:00.000Z%20[INFO]%20%20access:%20request:%20forged=1",
		"/log/a%0D%0Aforged",
		"/log/%00%1b[31mred",
		"/log/q%22%20status=200%20x=%22",
		"/log/caf\xff\xfe",
		"/log/back%5Cslash%5Cn",
		"/log/u%E2%80%A8%C2%85",
	}
	clf := regexp.MustCompile(`^\S+ - - \[[^\]]+\] "[^"]*" \d{3} (\d+|-)( "[^"]*" "[^"]*")?$`)
	for _, format := range []string{"json", "combined", "common"} {
		t.Run(format, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "access.log")
			a := startGateway(t, addr, "-log-level", "info", "-access-log", file, "-access-log-format", format)
			ready := 0
			testkit.WaitFor(t, "route served", func() bool { ready++; c, _ := getInstance(t, a, "/log/ready"); return c == 200 })
			lines := func() []string {
				b, _ := os.ReadFile(file)
				return strings.SplitAfter(string(b), "\n")
			}
			count := func() int { return strings.Count(strings.Join(lines(), ""), "\n") }
			testkit.WaitFor(t, "the readiness requests logged", func() bool { return count() >= ready })
			before := count()
			for _, p := range targets {
				// A backslash is refused before routing (400), and that
				// answer is logged like any other.
				want := http.StatusOK
				if strings.Contains(p, "%5C") {
					want = http.StatusBadRequest
				}
				req := "GET " + p + " HTTP/1.1\r\nHost: gw\r\nX-Request-Id: id\r\n folded\r\n" +
					"User-Agent: ua\" x=\"1\\\t\xff\xfe\xc2\x85\r\nReferer: \"\xe2\x80\xa8\r\nConnection: close\r\n\r\n"
				if status, _, _ := rawRequest(t, a, req); status != want {
					t.Errorf("GET %q: %d, want %d", p, status, want)
				}
			}
			want := before + len(targets)
			testkit.WaitFor(t, fmt.Sprintf("%d access entries", want), func() bool { return count() >= want })
			if n := count(); n != want {
				t.Fatalf("%d access-log lines, want %d:\n%s", n, want, strings.Join(lines(), ""))
			}
			for _, l := range lines() {
				if l == "" {
					continue
				}
				body := strings.TrimSuffix(l, "\n")
				for _, r := range body {
					if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == 0x2028 || r == 0x2029 {
						t.Errorf("control character %U in %q", r, l)
					}
				}
				if format == "json" {
					var m map[string]any
					if err := json.Unmarshal([]byte(body), &m); err != nil || m["request_id"] == nil || m["status"] == nil {
						t.Errorf("not a JSON entry (%v): %q", err, l)
					}
				} else if !clf.MatchString(body) || (format == "combined") != strings.HasSuffix(body, `"`) {
					t.Errorf("not a %s entry: %q", format, l)
				}
			}
			if strings.Contains(a.logText(), "/log/") {
				t.Errorf("request paths reached the gateway's own log:\n%s", a.logText())
			}
		})
	}
}

// TestCredentialsInURLsNeverShown: a jwks_url with userinfo is fetched with
// it, but the password never appears in logs, /routes, the dashboard's
// state or /metrics, whether the document is valid or not.
func TestCredentialsInURLsNeverShown(t *testing.T) {
	t.Parallel()
	const pw = "s3cr3t-pw"
	var sawAuth atomic.Value
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		sawAuth.Store(u + ":" + p)
		http.Error(w, "no keys today", http.StatusInternalServerError)
	}))
	t.Cleanup(jwks.Close)
	client, addr := startConsul(t)
	startBackend(t, client, "echo", "echo-1")
	putRoute(t, client, "good.hcl", `
route "keys" {
  path_prefix = "/keys"
  service     = "echo"
  jwt {
    algorithms = ["RS256"]
    jwks_url   = "http://gwuser:`+pw+`@`+jwks.Listener.Addr().String()+`/jwks"
  }
}`)
	putRoute(t, client, "bad.hcl", `
route "bad" {
  path_prefix = "/bad"
  service     = "echo"
  jwt {
    algorithms = ["RS256"]
    jwks_url   = "ftp://gwuser:`+pw+`@keys.example.com/jwks"
  }
}`)
	a := startGateway(t, addr, "-log-level", "debug", "-access-log=true")
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "x"})
	tok.Header["kid"] = "k1"
	unsigned, _ := tok.SigningString()
	testkit.WaitFor(t, "the JWKS fetch was tried", func() bool {
		code, _ := call(t, a, "/keys/x", "Authorization: Bearer "+unsigned+".c2ln")
		return code == http.StatusUnauthorized && sawAuth.Load() != nil
	})
	if got := sawAuth.Load(); got != "gwuser:"+pw {
		t.Errorf("JWKS server saw credentials %q; the URL's userinfo must still be used", got)
	}
	testkit.WaitFor(t, "the bad document reported", func() bool { return len(getRoutes(t, a).Errors) > 0 })
	shown := map[string]string{"log": a.logText()}
	for _, p := range []string{"/routes", "/api/state", "/metrics"} {
		shown[p] = adminText(t, a, p)
	}
	if !strings.Contains(shown["/routes"], "gwuser:xxxxx@keys.example.com") {
		t.Errorf("/routes does not show the redacted URL of the bad document:\n%s", shown["/routes"])
	}
	for where, s := range shown {
		if strings.Contains(s, pw) {
			t.Errorf("the password in jwks_url appears in %s:\n%s", where, s)
		}
	}
}
