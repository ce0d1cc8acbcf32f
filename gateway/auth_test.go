package gateway

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// countingUpstream counts requests and echoes the headers an auth policy
// sets, so tests see what reached the service.
func countingUpstream(t *testing.T, name string) (*atomic.Int64, registry.Instance) {
	t.Helper()
	var hits atomic.Int64
	_, in := startUpstream(t, name, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"instance": name, "user": r.Header.Get("X-User-Id"), "plan": r.Header.Get("X-Plan")})
	})
	return &hits, in
}

func pemOf(t *testing.T, pub any) (string, []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestJWTRoutesAdmitEachAlgorithmFamilyAndRejectForgeriesBeforeTheUpstream(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaKey2, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecPub, _ := ecKey.PublicKey.Bytes()
	rsaJWK := func(kid string, k *rsa.PublicKey) map[string]string {
		return map[string]string{"kty": "RSA", "kid": kid, "n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes())}
	}
	var jwksMu sync.Mutex
	jwks := []map[string]string{rsaJWK("rsa-1", &rsaKey.PublicKey),
		{"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": b64u(ecPub[1:33]), "y": b64u(ecPub[33:])}}
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jwksMu.Lock()
		defer jwksMu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": jwks})
	}))
	t.Cleanup(jwksSrv.Close)
	edPath, _ := pemOf(t, edKey.Public())
	_, rsaPEM := pemOf(t, &rsaKey.PublicKey)
	secret := []byte("a-test-secret-of-32-bytes-length")
	t.Setenv("TEST_JWT_SECRET", string(secret))

	hits, inst := countingUpstream(t, "api-1")
	clk := testkit.NewClock()
	doc := fmt.Sprintf(`
route "rs" {
  path_prefix = "/rs"
  service     = "api"
  jwt {
    algorithms     = ["RS256", "ES256"]
    jwks_url       = %q
    issuer         = "https://auth.example.com"
    audience       = "api"
    forward_claims = { sub = "X-User-Id", plan = "X-Plan" }
  }
}
route "hs" {
  path_prefix = "/hs"
  service     = "api"
  jwt {
    algorithms     = ["HS256"]
    secret_env     = "TEST_JWT_SECRET"
    forward_claims = { sub = "X-User-Id" }
  }
}
route "ed" {
  path_prefix = "/ed"
  service     = "api"
  jwt {
    algorithms      = ["EdDSA"]
    public_key_file = %q
    forward_claims  = { sub = "X-User-Id" }
  }
}`, jwksSrv.URL, edPath)
	pg := startPolicyGateway(t, Options{Now: clk.Now}, doc, map[string][]registry.Instance{"api": {inst}})

	now := clk.Now()
	claims := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "alice", "plan": 3, "iss": "https://auth.example.com", "aud": "api", "exp": now.Add(time.Hour).Unix()}
		for i := 0; i < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	pass := []struct{ name, path, token string }{
		{"RS256 via JWKS", "/rs", testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims())},
		{"ES256 via JWKS", "/rs", testkit.SignJWT(t, jwt.SigningMethodES256, "ec-1", ecKey, claims())},
		{"HS256 via secret_env", "/hs", testkit.SignJWT(t, jwt.SigningMethodHS256, "", secret, claims())},
		{"EdDSA via PEM", "/ed", testkit.SignJWT(t, jwt.SigningMethodEdDSA, "", edKey, claims())},
	}
	for _, tc := range pass {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "GET", pg.url+tc.path, "Authorization: Bearer "+tc.token, "X-User-Id: mallory")
			if r.status != 200 || !strings.Contains(r.body, `"user":"alice"`) {
				t.Fatalf("%d %s; want 200 with the verified sub forwarded, not the client's header", r.status, r.body)
			}
		})
	}
	if strings.Contains(do(t, "GET", pg.url+"/rs", "Authorization: Bearer "+pass[0].token).body, `"plan":"3"`) == false {
		t.Error("numeric claim not forwarded as 3")
	}

	before := hits.Load()
	fail := []struct{ name, path, token, reason string }{
		{"alg none", "/rs", none, "invalid token"},
		{"alg none on the HS route", "/hs", none, "invalid token"},
		{"HS256 signed with the RSA public key", "/rs", testkit.SignJWT(t, jwt.SigningMethodHS256, "rsa-1", rsaPEM, claims()), "invalid token"},
		{"expired", "/rs", testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims("exp", now.Add(-time.Hour).Unix())), "token expired"},
		{"wrong audience", "/rs", testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims("aud", "billing")), "invalid token"},
		{"unknown kid", "/rs", testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-2", rsaKey2, claims()), "invalid token"},
		{"not valid yet", "/rs", testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims("nbf", now.Add(time.Hour).Unix())), "invalid token"},
		{"wrong issuer", "/rs", testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims("iss", "https://evil.example.com")), "invalid token"},
		{"no exp claim", "/rs", testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, jwt.MapClaims{"sub": "alice", "iss": "https://auth.example.com", "aud": "api"}), "invalid token"},
		{"garbage", "/rs", "not-a-jwt", "invalid token"},
		{"garbage with dots", "/rs", "a.b.c", "invalid token"},
		{"truncated signature", "/rs", testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims())[:100], "invalid token"},
		{"no token", "/rs", "", "missing bearer token"},
	}
	for _, tc := range fail {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "GET", pg.url+tc.path, "Authorization: Bearer "+tc.token)
			want := fmt.Sprintf(`{"error":%q,"route":%q}`, tc.reason, strings.TrimPrefix(tc.path, "/"))
			if r.status != 401 || r.header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` || strings.TrimSpace(r.body) != want {
				t.Fatalf("%d %q %s; want 401 with WWW-Authenticate and %s", r.status, r.header.Get("WWW-Authenticate"), r.body, want)
			}
		})
	}
	if n := hits.Load() - before; n != 0 {
		t.Fatalf("%d rejected requests reached the upstream", n)
	}

	// The issuer rotates to a new key; after the minimum refresh interval
	// the unknown kid triggers a refresh and is accepted.
	jwksMu.Lock()
	jwks = []map[string]string{rsaJWK("rsa-2", &rsaKey2.PublicKey)}
	jwksMu.Unlock()
	clk.Advance(time.Minute)
	rotated := testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-2", rsaKey2, claims("exp", clk.Now().Add(time.Hour).Unix()))
	if r := do(t, "GET", pg.url+"/rs", "Authorization: Bearer "+rotated); r.status != 200 {
		t.Fatalf("token of the rotated key: %d %s", r.status, r.body)
	}
}

func TestForwardAuthAllowsWithCopiedHeadersAndReturnsDenialsAsIs(t *testing.T) {
	var authSaw atomic.Value
	_, authInst := startUpstream(t, "auth-1", func(w http.ResponseWriter, r *http.Request) {
		authSaw.Store(r.Method + " " + r.URL.Path + " " + r.Header.Get("X-Forwarded-Method") + " " + r.Header.Get("X-Forwarded-Uri"))
		if r.Header.Get("Authorization") == "Bearer good" {
			w.Header().Set("X-User-Id", "u-42")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Auth-Reason", "bad-credentials")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("go away"))
	})
	hits, inst := countingUpstream(t, "api-1")
	doc := `
route "api" {
  path_prefix = "/api"
  service     = "api"
  forward_auth {
    service      = "auth"
    path         = "/verify"
    copy_headers = ["X-User-Id"]
  }
}
route "noauth" {
  path_prefix = "/noauth"
  service     = "api"
  forward_auth {
    service = "nobody"
    path    = "/verify"
  }
}`
	pg := startPolicyGateway(t, Options{}, doc, map[string][]registry.Instance{"api": {inst}, "auth": {authInst}})

	r := do(t, "POST", pg.url+"/api/orders?x=1", "Authorization: Bearer good", "X-User-Id: spoofed")
	if r.status != 200 || !strings.Contains(r.body, `"user":"u-42"`) {
		t.Fatalf("allowed request: %d %s; want 200 with the auth service's X-User-Id", r.status, r.body)
	}
	if got := authSaw.Load(); got != "GET /verify POST /api/orders?x=1" {
		t.Fatalf("auth service saw %q", got)
	}

	before := hits.Load()
	r = do(t, "GET", pg.url+"/api/orders", "Authorization: Bearer bad")
	if r.status != http.StatusForbidden || r.body != "go away" || r.header.Get("X-Auth-Reason") != "bad-credentials" {
		t.Fatalf("denied request: %d %q %v; want the auth service's 403 as is", r.status, r.body, r.header)
	}
	r = do(t, "GET", pg.url+"/noauth")
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, policy.MsgAuthUnavailable) {
		t.Fatalf("auth service without instances: %d %s; want 503 (fail closed)", r.status, r.body)
	}
	if n := hits.Load() - before; n != 0 {
		t.Fatalf("%d denied requests reached the upstream", n)
	}
}

// TestForwardAuthUsesTheRoutesBalancer: the auth service of a route is
// balanced by that route's balancer policy: strictly in turn under
// round_robin, not so under random.
func TestForwardAuthUsesTheRoutesBalancer(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	auth := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, name)
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}
	}
	_, a1 := startUpstream(t, "auth-1", auth("auth-1"))
	_, a2 := startUpstream(t, "auth-2", auth("auth-2"))
	_, api := startUpstream(t, "api-1", nil)
	pg := startPolicyGateway(t, Options{}, `
route "rr" {
  path_prefix = "/rr"
  service     = "api"
  balancer    = "round_robin"
  forward_auth {
    service = "auth"
    path    = "/verify"
  }
}
route "random" {
  path_prefix = "/random"
  service     = "api"
  balancer    = "random"
  forward_auth {
    service = "auth"
    path    = "/verify"
  }
}`, map[string][]registry.Instance{"api": {api}, "auth": {a1, a2}})
	repeats := func(path string) int {
		mu.Lock()
		seen = nil
		mu.Unlock()
		for range 64 {
			if r := do(t, "GET", pg.url+path); r.status != 200 {
				t.Fatalf("GET %s: %d %s", path, r.status, r.body)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for i := 1; i < len(seen); i++ {
			if seen[i] == seen[i-1] {
				n++
			}
		}
		return n
	}
	if n := repeats("/rr"); n != 0 {
		t.Errorf("round_robin route: the same auth instance twice in a row %d times, want strict turns", n)
	}
	if n := repeats("/random"); n == 0 {
		t.Error("random route: 64 auth calls in strict turns; the auth service is not balanced at random")
	}
}
