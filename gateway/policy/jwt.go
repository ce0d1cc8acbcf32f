package policy

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
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
type StaticKey struct {
	// K is the key; nil fails every token.
	K any
}

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

// MsgMultipleCredentials is the 400 a request with more than one
// Authorization header gets from a route with auth.
const MsgMultipleCredentials = "multiple credentials"

type claimsKey struct{}

// claimsFrom returns the verified claims of the request, or nil.
func claimsFrom(ctx context.Context) jwt.MapClaims {
	c, _ := ctx.Value(claimsKey{}).(jwt.MapClaims)
	return c
}

// oneCredential refuses a request carrying more than one Authorization
// header with 400: auth would verify one of them and the upstream might
// use another, so it must never see a token nobody checked. challenge,
// when set, is sent as WWW-Authenticate.
func oneCredential(w http.ResponseWriter, r *http.Request, route, challenge string) bool {
	if len(r.Header.Values("Authorization")) <= 1 {
		return true
	}
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	exchange.WriteError(w, http.StatusBadRequest, MsgMultipleCredentials, route)
	return false
}

// JWTAuthenticated lets through only requests with exactly one valid
// bearer token, as v judges it. Client-sent copies of the forward_claims
// headers are always removed, so an upstream can trust them; the verified
// values are recorded in the exchange and set on the upstream request by
// the proxy. A claim that cannot be a header value (a control character)
// makes the token invalid: forwarding it is impossible, and dropping it
// would hand the upstream a partial identity.
func JWTAuthenticated(route string, cfg *config.JWT, v *Verifier, next http.Handler) http.Handler {
	own := exchange.NewHeaderSet(slices.Collect(maps.Values(cfg.ForwardClaims))...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		own.Strip(r.Header)
		if !oneCredential(w, r, route, `Bearer error="invalid_request"`) {
			return
		}
		claims, err := v.Verify(r.Context(), r.Header.Get("Authorization"))
		if err == nil {
			err = forwardClaims(exchange.From(r.Context()), cfg.ForwardClaims, claims)
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			exchange.WriteError(w, http.StatusUnauthorized, Reason(err), route)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
	})
}

// forwardClaims records the claims named in forward (claim → header) for
// the upstream request; exchange.ErrHeaderValue when one cannot be a
// header value.
func forwardClaims(ex *exchange.Exchange, forward map[string]string, claims jwt.MapClaims) error {
	for claim, h := range forward {
		if c, ok := claims[claim]; ok {
			if err := ex.SetUpstreamHeader(h, claimString(c)); err != nil {
				return err
			}
		}
	}
	return nil
}

// claimString renders a claim for a header: strings as they are, anything
// else as JSON.
func claimString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
