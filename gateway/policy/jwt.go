package policy

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatewayco/gateway/gateway/config"
)

// Verification errors. Every failure wraps ErrUnauthorized; the gateway
// answers all of them with 401 and a Reason, never with the detail.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrNoToken      = fmt.Errorf("%w: missing bearer token", ErrUnauthorized)
	ErrUnknownKey   = fmt.Errorf("%w: unknown signing key", ErrUnauthorized)
	ErrKeyType      = fmt.Errorf("%w: key type does not match the algorithm", ErrUnauthorized)
	ErrNoKey        = fmt.Errorf("%w: no verification key configured", ErrUnauthorized)
)

// Leeway is the clock skew tolerated on exp and nbf.
const Leeway = 30 * time.Second

// KeySource finds the key verifying a token signed with alg under kid
// (empty when the token names none).
type KeySource interface {
	Key(ctx context.Context, kid, alg string) (any, error)
}

// StaticKey is a KeySource with one key: an HMAC secret ([]byte) or a
// public key from a PEM file. A nil key fails every token (fail closed).
type StaticKey struct{ K any }

// Key returns the key whatever the kid.
func (s StaticKey) Key(context.Context, string, string) (any, error) {
	if s.K == nil {
		return nil, ErrNoKey
	}
	return s.K, nil
}

// Verifier checks bearer tokens against one jwt block.
type Verifier struct {
	keys   KeySource
	parser *jwt.Parser
}

// NewVerifier returns a verifier for cfg taking keys from keys. now is the
// clock for exp/nbf; nil means time.Now.
func NewVerifier(cfg *config.JWT, keys KeySource, now func() time.Time) *Verifier {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(cfg.Algorithms),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
	}
	if now != nil {
		opts = append(opts, jwt.WithTimeFunc(now))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	return &Verifier{keys: keys, parser: jwt.NewParser(opts...)}
}

// Verify checks the token in an Authorization header value and returns its
// claims. Every error wraps ErrUnauthorized.
func (v *Verifier) Verify(ctx context.Context, authorization string) (jwt.MapClaims, error) {
	scheme, tok, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return nil, ErrNoToken
	}
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(strings.TrimSpace(tok), claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		key, err := v.keys.Key(ctx, kid, t.Method.Alg())
		if err != nil {
			return nil, err
		}
		if !keyFits(t.Method.Alg(), key) {
			return nil, ErrKeyType
		}
		return key, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	return claims, nil
}

// Reason is the short, non-revealing explanation sent to the client.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrNoToken):
		return "missing bearer token"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	}
	return "invalid token"
}

// keyFits checks the key's type against the algorithm family, on top of
// jwt's own checks, so a key from a JWKS can never be used with an
// algorithm it was not made for (an RSA key as an HMAC secret, a P-256 key
// for ES512).
func keyFits(alg string, key any) bool {
	switch {
	case strings.HasPrefix(alg, "HS"):
		_, ok := key.([]byte)
		return ok
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		_, ok := key.(*rsa.PublicKey)
		return ok
	case alg == "EdDSA":
		_, ok := key.(ed25519.PublicKey)
		return ok
	case strings.HasPrefix(alg, "ES"):
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == curveFor(alg)
	}
	return false
}

func curveFor(alg string) elliptic.Curve {
	switch alg {
	case "ES256":
		return elliptic.P256()
	case "ES384":
		return elliptic.P384()
	case "ES512":
		return elliptic.P521()
	}
	return nil
}

// LoadPublicKey reads an RSA, ECDSA or Ed25519 public key (PKIX "PUBLIC
// KEY", PKCS#1 "RSA PUBLIC KEY" or an X.509 certificate) from a PEM file.
func LoadPublicKey(path string) (any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("public key %s: no PEM block found", path)
	}
	switch block.Type {
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key %s: %w", path, err)
		}
		return cert.PublicKey, nil
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return key, nil
}
