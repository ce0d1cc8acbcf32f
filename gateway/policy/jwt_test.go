package policy

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/internal/testkit"
)

// testKeys are one key pair per algorithm family, made once per test run
// (RSA generation is slow under -race).
var testKeys = sync.OnceValue(func() (k struct {
	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
}) {
	k.rsa, _ = rsa.GenerateKey(rand.Reader, 2048)
	k.rsa2, _ = rsa.GenerateKey(rand.Reader, 2048)
	k.ec, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, k.ed, _ = ed25519.GenerateKey(rand.Reader)
	return k
})

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkOf renders a public key as a JWK with kid.
func jwkOf(kid string, pub any) map[string]string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		b, _ := k.Bytes()
		return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(b[1:33]), "y": b64(b[33:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(k)}
	}
	panic("unknown key type")
}

// jwksServer serves a key set that tests can swap, counting fetches; fail
// makes it answer 500.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []map[string]string
	fail    bool
	fetches atomic.Int64
}

func startJWKS(t *testing.T, keys ...map[string]string) *jwksServer {
	t.Helper()
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(fail bool, keys ...map[string]string) {
	s.mu.Lock()
	s.keys, s.fail = keys, fail
	s.mu.Unlock()
}

func pemFile(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVerifierAcceptsEachAlgorithmFamilyAndRejectsForgeries(t *testing.T) {
	k := testKeys()
	clk := testkit.NewClock()
	now := clk.Now()
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "alice", "iss": "https://auth", "aud": "api", "exp": now.Add(time.Hour).Unix()}
	}
	with := func(kv ...any) jwt.MapClaims {
		c := good()
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	jwks := startJWKS(t, jwkOf("rsa-1", &k.rsa.PublicKey), jwkOf("ec-1", &k.ec.PublicKey))
	rsaPEM, _ := os.ReadFile(pemFile(t, &k.rsa.PublicKey))
	secret := []byte("0123456789abcdef0123456789abcdef")

	type verifier struct {
		cfg  config.JWT
		keys KeySource
	}
	asym := verifier{config.JWT{Algorithms: []string{"RS256", "ES256"}, Issuer: "https://auth", Audience: "api"},
		NewJWKS(jwks.URL, JWKSOptions{Now: clk.Now})}
	hs := verifier{config.JWT{Algorithms: []string{"HS256"}, Issuer: "https://auth", Audience: "api"}, StaticKey{secret}}
	edKey, err := LoadPublicKey(pemFile(t, k.ed.Public()))
	if err != nil {
		t.Fatal(err)
	}
	ed := verifier{config.JWT{Algorithms: []string{"EdDSA"}, Audience: "api"}, StaticKey{edKey}}
	noneTok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good()).SignedString(jwt.UnsafeAllowNoneSignatureType)

	tests := []struct {
		name   string
		v      verifier
		token  string
		reason string // empty: must pass
	}{
		{"HS256 with the secret", hs, testkit.SignJWT(t, jwt.SigningMethodHS256, "", secret, good()), ""},
		{"RS256 from JWKS", asym, testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-1", k.rsa, good()), ""},
		{"ES256 from JWKS", asym, testkit.SignJWT(t, jwt.SigningMethodES256, "ec-1", k.ec, good()), ""},
		{"EdDSA from PEM file", ed, testkit.SignJWT(t, jwt.SigningMethodEdDSA, "", k.ed, good()), ""},
		{"nbf within leeway", hs, testkit.SignJWT(t, jwt.SigningMethodHS256, "", secret, with("nbf", now.Add(10*time.Second).Unix())), ""},

		{"alg none", asym, noneTok, "invalid token"},
		{"alg none on HS route", hs, noneTok, "invalid token"},
		{"HS256 signed with the RSA public key", asym, testkit.SignJWT(t, jwt.SigningMethodHS256, "rsa-1", rsaPEM, good()), "invalid token"},
		{"RS256 kid used as ES256", asym, testkit.SignJWT(t, jwt.SigningMethodES256, "rsa-1", k.ec, good()), "invalid token"},
		{"expired", asym, testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-1", k.rsa, with("exp", now.Add(-time.Minute).Unix())), "token expired"},
		{"no exp", asym, testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-1", k.rsa, with("exp", nil)), "invalid token"},
		{"nbf in the future", asym, testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-1", k.rsa, with("nbf", now.Add(time.Hour).Unix())), "invalid token"},
		{"wrong audience", asym, testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-1", k.rsa, with("aud", "other")), "invalid token"},
		{"wrong issuer", asym, testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-1", k.rsa, with("iss", "https://evil")), "invalid token"},
		{"unknown kid", asym, testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-9", k.rsa2, good()), "invalid token"},
		{"other RSA key, known kid", asym, testkit.SignJWT(t, jwt.SigningMethodRS256, "rsa-1", k.rsa2, good()), "invalid token"},
		{"wrong secret", hs, testkit.SignJWT(t, jwt.SigningMethodHS256, "", []byte("not the secret, not the secret!!"), good()), "invalid token"},
		{"garbage", hs, "abc.def.ghi", "invalid token"},
		{"no secret configured", verifier{hs.cfg, StaticKey{}}, testkit.SignJWT(t, jwt.SigningMethodHS256, "", secret, good()), "invalid token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			claims, err := NewVerifier(&tc.v.cfg, tc.v.keys, clk.Now).Verify(context.Background(), "Bearer "+tc.token)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if claims["sub"] != "alice" {
					t.Fatalf("claims = %v", claims)
				}
				return
			}
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("err = %v, want ErrUnauthorized", err)
			}
			if got := Reason(err); got != tc.reason {
				t.Fatalf("Reason = %q, want %q (err %v)", got, tc.reason, err)
			}
		})
	}
	if _, err := NewVerifier(&hs.cfg, hs.keys, clk.Now).Verify(context.Background(), ""); Reason(err) != "missing bearer token" {
		t.Errorf("no header: %v", err)
	}
}

func TestJWKSRotationRefreshesOnUnknownKidAtMostOncePerInterval(t *testing.T) {
	k := testKeys()
	clk := testkit.NewClock()
	srv := startJWKS(t, jwkOf("old", &k.rsa.PublicKey))
	set := NewJWKS(srv.URL, JWKSOptions{Now: clk.Now, MinInterval: time.Minute})
	cfg := &config.JWT{Algorithms: []string{"RS256"}}
	v := NewVerifier(cfg, set, clk.Now)
	claims := func() jwt.MapClaims { return jwt.MapClaims{"sub": "a", "exp": clk.Now().Add(time.Hour).Unix()} }
	verify := func(kid string, key *rsa.PrivateKey) error {
		_, err := v.Verify(context.Background(), "Bearer "+testkit.SignJWT(t, jwt.SigningMethodRS256, kid, key, claims()))
		return err
	}
	if err := verify("old", k.rsa); err != nil {
		t.Fatalf("old key: %v", err)
	}

	// The issuer rotates: the new kid is unknown, and the first refresh
	// happened less than MinInterval ago, so it is refused without a fetch.
	srv.set(false, jwkOf("old", &k.rsa.PublicKey), jwkOf("new", &k.rsa2.PublicKey))
	if err := verify("new", k.rsa2); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("new kid before the interval: %v, want ErrUnknownKey", err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1 (refresh rate-limited)", n)
	}

	// After the interval, many concurrent requests with the new kid share
	// one fetch.
	clk.Advance(time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() { errs <- verify("new", k.rsa2) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("new kid after rotation: %v", err)
		}
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (one single-flight refresh)", n)
	}

	// The JWKS endpoint fails: known keys keep working.
	srv.set(true)
	clk.Advance(time.Minute)
	if err := verify("other", k.rsa); err == nil {
		t.Fatal("unknown kid accepted while JWKS is down")
	}
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3", n)
	}
	if err := verify("new", k.rsa2); err != nil {
		t.Fatalf("known key rejected after a failed refresh: %v", err)
	}
}
