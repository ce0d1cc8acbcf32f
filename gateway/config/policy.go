package config

import (
	"encoding/json"
	"time"
)

// Policy is what a route does to a request besides routing it: admission
// (rate limit, authentication) and upstream protection (circuit breaker,
// retries). Every pointer is nil when its block is absent, which means
// that policy is off. Policy values are compared with Equal or Fingerprint
// to decide whether per-route state (limiter buckets, breakers) may be
// carried over to a newly built table.
type Policy struct {
	// RateLimit is the `rate_limit` block; nil means no limit.
	RateLimit *RateLimit
	// JWT is the `jwt` block; nil means requests are not authenticated by
	// token. Never set together with ForwardAuth.
	JWT *JWT
	// ForwardAuth is the `forward_auth` block; nil means no auth call.
	ForwardAuth *ForwardAuth
	// CircuitBreaker is the `circuit_breaker` block; nil means no breaker.
	CircuitBreaker *CircuitBreaker
	// Retries is how many extra attempts an idempotent request gets on
	// another instance; zero means none.
	Retries int
	// RetryNonIdempotent lets PUT and DELETE be retried too. POST and PATCH
	// are never retried.
	RetryNonIdempotent bool
}

// Rate-limit key kinds, as written before the colon in `key`. A header
// key is whatever the client sends, so a client changing it per request
// is a new client each time; the JWT and auth-header keys are values the
// route's auth verified, and their limiter runs after auth.
const (
	RateKeyIP     = "ip"
	RateKeyHeader = "header"
	RateKeyJWT    = "jwt"
	// RateKeyAuthHeader keys on a header the route's auth policy set: a
	// forward_claims header of jwt or a copy_headers header of
	// forward_auth, never the client's copy.
	RateKeyAuthHeader = "auth_header"
)

// RateLimit is a token bucket per client key.
type RateLimit struct {
	// RequestsPerSecond is the refill rate; always positive.
	RequestsPerSecond float64
	// Burst is the bucket size; always at least 1.
	Burst int
	// Key is how clients are told apart, as written: "ip",
	// "header:NAME", "jwt:CLAIM" or "auth_header:NAME".
	Key string
	// KeyKind is RateKeyIP, RateKeyHeader, RateKeyJWT or RateKeyAuthHeader.
	KeyKind string
	// KeyName is the header name (canonical form) or claim name; empty for
	// "ip".
	KeyName string
	// Cluster is true for scope = "cluster": RequestsPerSecond and Burst
	// are the fleet's, and each replica enforces its share of them, the
	// limit divided by the passing replicas Consul reports (see the
	// docs/policies.md, "Cluster rate limits", for the model and its error bounds).
	// False, the default scope "local", means every replica enforces the
	// whole limit on its own.
	Cluster bool
}

// Rate-limit scopes, as written in `scope`.
const (
	RateScopeLocal   = "local"
	RateScopeCluster = "cluster"
)

// JWT verifies a bearer token on every request. Exactly one key source is
// set: SecretEnv for HS* algorithms, PublicKeyFile or JWKSURL otherwise.
type JWT struct {
	// Algorithms are the accepted "alg" values; never empty, never "none",
	// never mixing HMAC with public-key algorithms.
	Algorithms []string
	// SecretEnv names the environment variable holding the HMAC secret.
	// The secret itself is read when the table is built, so it never
	// appears in the configuration or in /routes.
	SecretEnv string
	// PublicKeyFile is a PEM file with one public key.
	PublicKeyFile string
	// JWKSURL is fetched for a JSON Web Key Set.
	JWKSURL string
	// Issuer is the required "iss"; empty means any.
	Issuer string
	// Audience is the required "aud" member; empty means any.
	Audience string
	// ForwardClaims maps claim names to upstream request headers; nil
	// means none. Client-sent copies of those headers are always removed.
	ForwardClaims map[string]string
}

// ForwardAuth asks a Consul service whether to admit each request.
type ForwardAuth struct {
	// Service is the Consul service called; its instances are picked with
	// the Balancer of the route or aggregate the block is on.
	Service string
	// Path is requested on the auth service; starts with "/".
	Path string
	// CopyHeaders are copied from a 2xx auth answer to the upstream request;
	// client-sent copies are always removed.
	CopyHeaders []string
	// Timeout bounds the auth call; defaulted to DefaultForwardAuthTimeout.
	Timeout time.Duration
}

// DefaultForwardAuthTimeout bounds a forward_auth call without `timeout`.
const DefaultForwardAuthTimeout = 5 * time.Second

// CircuitBreaker stops calling a failing service for a while.
type CircuitBreaker struct {
	// FailureRatio trips the breaker when this share of the recent requests
	// failed; in (0, 1].
	FailureRatio float64
	// MinRequests is how many recent requests are needed before the ratio
	// counts; at least 1, defaulted to DefaultMinRequests.
	MinRequests int
	// OpenTimeout is how long the breaker stays open before letting a probe
	// through; defaulted to DefaultOpenTimeout.
	OpenTimeout time.Duration
	// Fallback is answered while open; nil means none.
	Fallback *Fallback
	// ServeStale answers an open-breaker GET with the last successful
	// response for the same URL, when one is cached.
	ServeStale bool
}

// Defaults of the circuit_breaker block.
const (
	DefaultMinRequests = 20
	DefaultOpenTimeout = 30 * time.Second
)

// Fallback is a fixed answer.
type Fallback struct {
	// Status is the HTTP status; defaulted to 200.
	Status int
	// ContentType is sent as Content-Type; empty sends none.
	ContentType string
	// Body is sent as is.
	Body string
}

// Fingerprint is a stable rendering of the policy: equal policies have
// equal fingerprints. encoding/json sorts map keys, which makes it stable.
func (p Policy) Fingerprint() string {
	return fingerprint(p)
}

// Equal reports whether p and o configure the same behaviour.
func (p Policy) Equal(o Policy) bool { return p.Fingerprint() == o.Fingerprint() }

// fingerprint renders any policy part (nil pointers included) stably.
func fingerprint(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Policies hold only strings, numbers, bools, slices and maps of
		// strings: marshalling cannot fail.
		panic(err)
	}
	return string(b)
}

// Fingerprint of a RateLimit, for keying limiter state; "null" for nil.
func (r *RateLimit) Fingerprint() string { return fingerprint(r) }

// Fingerprint of a JWT block, for keying key caches; "null" for nil.
func (j *JWT) Fingerprint() string { return fingerprint(j) }

// Fingerprint of a CircuitBreaker block, for keying breakers; "null" for nil.
func (c *CircuitBreaker) Fingerprint() string { return fingerprint(c) }
