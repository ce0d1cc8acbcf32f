package policy

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sync/singleflight"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/tracing"
)

// JWKS is a cached JSON Web Key Set. Keys are fetched on first use and
// again when a token names an unknown kid, at most once per MinInterval
// (so a flood of tokens with made-up kids cannot turn into a flood of
// fetches), with concurrent misses sharing one fetch. A token with a known
// kid never waits for a fetch. A failed fetch keeps the keys already known.
type JWKS struct {
	url         string
	shown       string // url with its password redacted, for logs and errors
	client      *http.Client
	minInterval time.Duration
	now         func() time.Time
	logger      hclog.Logger
	flight      singleflight.Group

	mu        sync.RWMutex
	keys      map[string]jwk
	lastFetch time.Time // last attempt, successful or not; zero before the first
}

type jwk struct {
	key any
	alg string // the JWK's "alg"; empty when it named none
}

// JWKSOptions tune a JWKS; the zero value is usable.
type JWKSOptions struct {
	// Client fetches the set; nil means a client with a 5s timeout.
	Client *http.Client
	// MinInterval spaces refreshes; zero means DefaultJWKSMinInterval.
	MinInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger reports fetch failures; nil discards.
	Logger hclog.Logger
}

// DefaultJWKSMinInterval spaces JWKS refreshes: a key the issuer has just
// published is accepted within 10 s, and a flood of tokens with unknown
// kids costs at most 6 fetches a minute.
const DefaultJWKSMinInterval = 10 * time.Second

// maxJWKSBytes bounds a fetched key set; real ones are a few KiB.
const maxJWKSBytes = 1 << 20

// NewJWKS returns a cache for the key set at url. Nothing is fetched until
// the first Key.
func NewJWKS(url string, opts JWKSOptions) *JWKS {
	j := &JWKS{url: url, shown: config.RedactURL(url), client: opts.Client, minInterval: opts.MinInterval, now: opts.Now, logger: opts.Logger}
	if j.client == nil {
		j.client = &http.Client{Timeout: 5 * time.Second}
	}
	if j.minInterval <= 0 {
		j.minInterval = DefaultJWKSMinInterval
	}
	if j.now == nil {
		j.now = time.Now
	}
	if j.logger == nil {
		j.logger = hclog.NewNullLogger()
	}
	return j
}

// Key returns the key named kid, refreshing the set once if it is unknown.
// A token without kid is accepted only when the set holds a single key.
func (j *JWKS) Key(ctx context.Context, kid, alg string) (any, error) {
	if k, ok := j.lookup(kid); ok {
		return k.fit(alg)
	}
	// Every miss goes through the flight, even when no refresh is due: a
	// miss that raced with a running fetch then waits for its keys.
	ch := j.flight.DoChan("fetch", func() (any, error) {
		if !j.refreshDue() {
			return nil, nil
		}
		j.mu.Lock()
		j.lastFetch = j.now()
		j.mu.Unlock()
		// Detached from the request: waiters with other deadlines share
		// this fetch, and the client's timeout bounds it.
		return nil, j.fetch(context.WithoutCancel(ctx))
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrUnauthorized, ctx.Err())
	case <-ch:
	}
	if k, ok := j.lookup(kid); ok {
		return k.fit(alg)
	}
	return nil, ErrUnknownKey
}

func (k jwk) fit(alg string) (any, error) {
	if k.alg != "" && k.alg != alg {
		return nil, ErrKeyType
	}
	return k.key, nil
}

func (j *JWKS) lookup(kid string) (jwk, bool) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if kid == "" && len(j.keys) == 1 {
		for _, k := range j.keys {
			return k, true
		}
	}
	k, ok := j.keys[kid]
	return k, ok && kid != ""
}

func (j *JWKS) refreshDue() bool {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return j.lastFetch.IsZero() || j.now().Sub(j.lastFetch) >= j.minInterval
}

// fetch replaces the key set; on any failure the old keys stay.
func (j *JWKS) fetch(ctx context.Context) error {
	keys, err := j.get(ctx)
	if err != nil {
		j.logger.Warn("JWKS refresh failed; keeping the keys already known", "url", j.shown, "error", err)
		return err
	}
	j.mu.Lock()
	j.keys = keys
	j.mu.Unlock()
	j.logger.Debug("JWKS refreshed", "url", j.shown, "keys", len(keys))
	return nil
}

// errJWKS marks a key set that could not be fetched or read.
var errJWKS = errors.New("jwks")

func (j *JWKS) get(ctx context.Context) (_ map[string]jwk, err error) {
	ctx, span := tracing.Start(ctx, "jwks fetch", attribute.String("url.full", j.shown))
	defer func() { tracing.End(span, err) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errJWKS, err)
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errJWKS, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s answered %s", errJWKS, j.shown, resp.Status)
	}
	var set struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSBytes)).Decode(&set); err != nil {
		return nil, fmt.Errorf("%w: decode: %w", errJWKS, err)
	}
	keys := make(map[string]jwk, len(set.Keys))
	for _, rk := range set.Keys {
		if rk.Use != "" && rk.Use != "sig" {
			continue
		}
		k, err := rk.publicKey()
		if err != nil {
			j.logger.Warn("skipping unusable JWKS key", "url", j.shown, "kid", rk.Kid, "error", err)
			continue
		}
		keys[rk.Kid] = jwk{key: k, alg: rk.Alg}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: %s holds no usable signing key", errJWKS, j.shown)
	}
	return keys, nil
}

// rawJWK is one key of a set as RFC 7517/7518/8037 write it.
type rawJWK struct {
	Kty, Kid, Use, Alg, Crv string
	N, E, X, Y              string
}

func (k rawJWK) publicKey() (any, error) {
	switch k.Kty {
	case "RSA":
		n, err1 := b64int(k.N)
		e, err2 := b64int(k.E)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		if !e.IsInt64() || e.Int64() < 3 || n.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key too weak or malformed (%d bits)", n.BitLen())
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		curve := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}[k.Crv]
		if curve == nil {
			return nil, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		x, err1 := base64.RawURLEncoding.DecodeString(k.X)
		y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
		size := (curve.Params().BitSize + 7) / 8
		if err := errors.Join(err1, err2); err != nil || len(x) != size || len(y) != size {
			return nil, fmt.Errorf("malformed EC point")
		}
		// ParseUncompressedPublicKey rejects points not on the curve.
		return ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
	case "OKP":
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if k.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("unsupported or malformed OKP key (crv %q)", k.Crv)
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("unsupported key type %q", k.Kty)
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("malformed base64url integer")
	}
	return new(big.Int).SetBytes(b), nil
}
