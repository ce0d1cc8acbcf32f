package config

import (
	"fmt"
	"math"
	"net/textproto"
	"net/url"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// MaxRetries caps `retries`: more attempts than this only multiply load on
// a service that is already failing.
const MaxRetries = 10

// decodeAccessPolicy reads the accessPolicy blocks (rate_limit, jwt,
// forward_auth) out of blocks (other block types are ignored) into pol,
// with every rule that spans them. Any block spec with the accessPolicy
// part can call it.
func decodeAccessPolicy(p *problems, blocks hcl.Blocks, pol *Policy) {
	var keyPos Pos
	if b := single(p, blocks, rateLimitSpec); b != nil {
		pol.RateLimit, keyPos = decodeRateLimit(p, b)
	}
	jb := single(p, blocks, jwtSpec)
	if jb != nil {
		pol.JWT = decodeJWT(p, jb)
	}
	if fb := single(p, blocks, forwardAuthSpec); fb != nil {
		pol.ForwardAuth = decodeForwardAuth(p, fb)
		if jb != nil {
			later := fb
			if jb.DefRange.Start.Byte > fb.DefRange.Start.Byte {
				later = jb
			}
			p.addf(p.pos(later.DefRange), "only one of %q and %q may be set", jwtSpec.typ, forwardAuthSpec.typ)
		}
	}
	if rl := pol.RateLimit; rl != nil && rl.KeyKind == RateKeyJWT && jb == nil {
		p.addf(keyPos, "%s %q needs a %s block: only verified claims are used as keys", rateLimitSpec.ref(attrKey), rl.Key, jwtSpec.typ)
	}
	if rl := pol.RateLimit; rl != nil && rl.KeyKind == RateKeyAuthHeader && rl.KeyName != "" && !authSets(pol, rl.KeyName) {
		p.addf(keyPos, "%s %q needs a %s or %s entry for %s: only headers the route's auth sets are verified",
			rateLimitSpec.ref(attrKey), rl.Key, jwtSpec.ref(attrForwardClaims), forwardAuthSpec.ref(attrCopyHeaders), rl.KeyName)
	}
}

// authSets reports whether the route's auth policy sets header h (in
// canonical form) on the upstream request.
func authSets(pol *Policy, h string) bool {
	if pol.JWT != nil {
		for _, v := range pol.JWT.ForwardClaims {
			if v == h {
				return true
			}
		}
	}
	return pol.ForwardAuth != nil && slices.Contains(pol.ForwardAuth.CopyHeaders, h)
}

// gatewayHeaders are the headers auth may not set for the upstream: the
// connection's own (hop-by-hop, framing, Host) and those the gateway fills
// itself (forwarding headers, the request ID). Auth headers are applied
// last, so one of these would replace the gateway's value or reintroduce a
// hop-by-hop header after ReverseProxy removed them.
var gatewayHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length",
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id",
}

// authHeaderName canonicalises a header an auth policy sets, reporting
// names that are not tokens or that the gateway owns; what names the
// header in the message, e.g. "copy_headers".
func authHeaderName(p *problems, pos Pos, what, h string) (string, bool) {
	if !isToken(h) {
		p.addf(pos, "%s: %q is not a valid header name", what, h)
		return "", false
	}
	c := textproto.CanonicalMIMEHeaderKey(h)
	if slices.Contains(gatewayHeaders, c) {
		p.addf(pos, "%s: %q is set by the gateway or the connection, not by auth", what, c)
		return "", false
	}
	return c, true
}

// decodeUpstreamPolicy reads the upstreamPolicy part into pol: the
// circuit_breaker block out of blocks, and retries and
// retry_non_idempotent out of a, whose spec must have the part. access is
// the admission policy the calls are made under (the route's own, or the
// aggregate's for its calls): with jwt or forward_auth, answers are per
// user, whatever header carries the user, so serve_stale, which replays
// one client's answer to the next, is refused.
func decodeUpstreamPolicy(p *problems, blocks hcl.Blocks, a *attrs, pol *Policy, access *Policy) {
	if b := single(p, blocks, circuitBreakerSpec); b != nil {
		var stalePos Pos
		pol.CircuitBreaker, stalePos = decodeBreaker(p, b)
		if pol.CircuitBreaker.ServeStale && (access.JWT != nil || access.ForwardAuth != nil) {
			p.addf(stalePos, "%s cannot be used with %s or %s: their answers are per user, and a stale copy would be served to other users",
				attrServeStale, jwtSpec.typ, forwardAuthSpec.typ)
		}
	}
	pol.Retries = a.integer(attrRetries)
	if a.ok(attrRetries) && (pol.Retries < 0 || pol.Retries > MaxRetries) {
		p.addf(a.pos(attrRetries), "%s must be between 0 and %d, got %d", attrRetries, MaxRetries, pol.Retries)
	}
	pol.RetryNonIdempotent = a.boolean(attrRetryNonIdempotent)
}

// missing reports that block b, of spec, lacks the required attribute name.
func missing(p *problems, b *hcl.Block, spec *blockSpec, name attr) {
	spec.mustHave(name)
	p.addf(p.pos(b.DefRange), "%s: missing required attribute %q", spec.typ, name)
}

func decodeRateLimit(p *problems, b *hcl.Block) (*RateLimit, Pos) {
	a, _ := decodeBody(p, b, rateLimitSpec)
	rl := &RateLimit{RequestsPerSecond: a.number(attrRequestsPerSecond), Burst: a.integer(attrBurst), Key: a.str(attrKey)}
	switch {
	case !a.has(attrRequestsPerSecond):
		missing(p, b, rateLimitSpec, attrRequestsPerSecond)
	case a.ok(attrRequestsPerSecond) && rl.RequestsPerSecond <= 0:
		p.addf(a.pos(attrRequestsPerSecond), "%s must be positive, got %g", attrRequestsPerSecond, rl.RequestsPerSecond)
	}
	switch {
	case !a.has(attrBurst):
		// A bucket of one second's worth of requests, as most users expect.
		rl.Burst = max(1, int(math.Ceil(rl.RequestsPerSecond)))
	case a.ok(attrBurst) && rl.Burst < 1:
		p.addf(a.pos(attrBurst), "%s must be at least 1, got %d", attrBurst, rl.Burst)
	}
	if !a.has(attrKey) {
		rl.Key = RateKeyIP
	}
	kind, name, _ := strings.Cut(rl.Key, ":")
	rl.KeyKind = kind
	switch {
	case !a.ok(attrKey) && a.has(attrKey):
	case kind == RateKeyIP && name == "" && !strings.Contains(rl.Key, ":"):
	case kind == RateKeyHeader && isToken(name):
		rl.KeyName = textproto.CanonicalMIMEHeaderKey(name)
	case kind == RateKeyJWT && name != "":
		rl.KeyName = name
	case kind == RateKeyAuthHeader && isToken(name):
		rl.KeyName = textproto.CanonicalMIMEHeaderKey(name)
	default:
		p.addf(a.pos(attrKey), `%s %q: want "ip", "header:NAME", "jwt:CLAIM" or "auth_header:NAME"`, rateLimitSpec.ref(attrKey), rl.Key)
	}
	switch scope := a.str(attrScope); {
	case !a.ok(attrScope) || scope == RateScopeLocal:
	case scope == RateScopeCluster:
		rl.Cluster = true
	default:
		p.addf(a.pos(attrScope), `%s %q: want %q or %q`, rateLimitSpec.ref(attrScope), scope, RateScopeLocal, RateScopeCluster)
	}
	return rl, a.pos(attrKey)
}

// Algorithms lists every JWT algorithm a jwt block may pin.
var Algorithms = []string{
	"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA",
}

func decodeJWT(p *problems, b *hcl.Block) *JWT {
	a, _ := decodeBody(p, b, jwtSpec)
	j := &JWT{
		SecretEnv: a.str(attrSecretEnv), PublicKeyFile: a.str(attrPublicKeyFile), JWKSURL: a.str(attrJWKSURL),
		Issuer: a.str(attrIssuer), Audience: a.str(attrAudience),
	}
	algs, algPos := a.strList(attrAlgorithms)
	hmac, public := false, false
	for i, alg := range algs {
		switch {
		case strings.EqualFold(alg, "none"):
			p.addf(algPos[i], `algorithm "none" is never accepted: it means an unsigned token`)
		case !slices.Contains(Algorithms, alg):
			p.addf(algPos[i], "unknown algorithm %q (want one of %s)", alg, strings.Join(Algorithms, ", "))
		case !slices.Contains(j.Algorithms, alg):
			j.Algorithms = append(j.Algorithms, alg)
			hmac = hmac || strings.HasPrefix(alg, "HS")
			public = public || !strings.HasPrefix(alg, "HS")
		}
	}
	switch {
	case !a.has(attrAlgorithms):
		p.addf(p.pos(b.DefRange), "%s: missing required attribute %q (pin the algorithms your issuer uses)", jwtSpec.typ, attrAlgorithms)
	case a.ok(attrAlgorithms) && len(algs) == 0:
		p.addf(a.pos(attrAlgorithms), "%s must not be empty", attrAlgorithms)
	case hmac && public:
		// The classic confusion attack signs HS256 with the RSA public key;
		// never letting one route accept both families rules it out.
		p.addf(a.pos(attrAlgorithms), "%s must not mix HMAC (HS*) with public-key algorithms", attrAlgorithms)
	}
	sources := 0
	for _, n := range []attr{attrSecretEnv, attrPublicKeyFile, attrJWKSURL} {
		if a.has(n) {
			sources++
		}
		if a.ok(n) && a.str(n) == "" {
			p.addf(a.pos(n), "%s must not be empty", n)
		}
	}
	switch {
	case hmac && public:
		// Already reported; which key source fits is undecidable.
	case hmac && !a.has(attrSecretEnv):
		p.addf(p.pos(b.DefRange), "%s: HS* algorithms need %s (the environment variable holding the secret)", jwtSpec.typ, attrSecretEnv)
	case hmac && sources > 1:
		p.addf(p.pos(b.DefRange), "%s: HS* algorithms take only %s, not %s or %s", jwtSpec.typ, attrSecretEnv, attrPublicKeyFile, attrJWKSURL)
	case public && a.has(attrSecretEnv):
		p.addf(a.pos(attrSecretEnv), "%s is only for HS* algorithms", attrSecretEnv)
	case public && sources == 0:
		p.addf(p.pos(b.DefRange), "%s: %s needs %s or %s", jwtSpec.typ, strings.Join(j.Algorithms, ", "), attrJWKSURL, attrPublicKeyFile)
	case public && sources > 1:
		p.addf(a.pos(attrJWKSURL), "only one of %q and %q may be set", attrJWKSURL, attrPublicKeyFile)
	}
	if a.ok(attrJWKSURL) && j.JWKSURL != "" {
		if u, err := url.Parse(j.JWKSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.addf(a.pos(attrJWKSURL), "%s must be an absolute http or https URL, got %q", attrJWKSURL, RedactURL(j.JWKSURL))
		}
	}
	for _, n := range []attr{attrIssuer, attrAudience} {
		if a.ok(n) && a.str(n) == "" {
			p.addf(a.pos(n), "%s must not be empty (omit it to accept any)", n)
		}
	}
	if claims := a.strMap(attrForwardClaims); claims != nil {
		j.ForwardClaims = make(map[string]string, len(claims))
		for claim, h := range claims {
			if c, ok := authHeaderName(p, a.pos(attrForwardClaims), fmt.Sprintf("%s[%q]", attrForwardClaims, claim), h); ok {
				j.ForwardClaims[claim] = c
			}
		}
	}
	return j
}

func decodeForwardAuth(p *problems, b *hcl.Block) *ForwardAuth {
	a, _ := decodeBody(p, b, forwardAuthSpec)
	f := &ForwardAuth{Service: a.str(attrService), Path: a.str(attrPath), Timeout: a.duration(attrTimeout)}
	switch {
	case !a.has(attrService):
		missing(p, b, forwardAuthSpec, attrService)
	case a.ok(attrService) && f.Service == "":
		p.addf(a.pos(attrService), "%s must not be empty", attrService)
	}
	switch {
	case !a.has(attrPath):
		missing(p, b, forwardAuthSpec, attrPath)
	case a.ok(attrPath) && !strings.HasPrefix(f.Path, "/"):
		p.addf(a.pos(attrPath), "%s must start with \"/\", got %q", attrPath, f.Path)
	}
	hdrs, pos := a.strList(attrCopyHeaders)
	for i, h := range hdrs {
		if c, ok := authHeaderName(p, pos[i], attrCopyHeaders.name, h); ok {
			f.CopyHeaders = append(f.CopyHeaders, c)
		}
	}
	if !a.has(attrTimeout) {
		f.Timeout = DefaultForwardAuthTimeout
	}
	return f
}

func decodeBreaker(p *problems, b *hcl.Block) (*CircuitBreaker, Pos) {
	a, blocks := decodeBody(p, b, circuitBreakerSpec)
	c := &CircuitBreaker{
		FailureRatio: a.number(attrFailureRatio), MinRequests: a.integer(attrMinRequests),
		OpenTimeout: a.duration(attrOpenTimeout), ServeStale: a.boolean(attrServeStale),
	}
	switch {
	case !a.has(attrFailureRatio):
		missing(p, b, circuitBreakerSpec, attrFailureRatio)
	case a.ok(attrFailureRatio) && (c.FailureRatio <= 0 || c.FailureRatio > 1):
		p.addf(a.pos(attrFailureRatio), "%s must be in (0, 1], got %g", attrFailureRatio, c.FailureRatio)
	}
	switch {
	case !a.has(attrMinRequests):
		c.MinRequests = DefaultMinRequests
	case a.ok(attrMinRequests) && c.MinRequests < 1:
		p.addf(a.pos(attrMinRequests), "%s must be at least 1, got %d", attrMinRequests, c.MinRequests)
	}
	if !a.has(attrOpenTimeout) {
		c.OpenTimeout = DefaultOpenTimeout
	}
	if fb := single(p, blocks, fallbackSpec); fb != nil {
		c.Fallback = decodeFallback(p, fb)
	}
	return c, a.pos(attrServeStale)
}

func decodeFallback(p *problems, b *hcl.Block) *Fallback {
	a, _ := decodeBody(p, b, fallbackSpec)
	f := &Fallback{Status: a.integer(attrStatus), ContentType: a.str(attrContentType), Body: a.str(attrBody)}
	switch {
	case !a.has(attrStatus):
		f.Status = 200
	case a.ok(attrStatus) && (f.Status < 200 || f.Status > 599):
		p.addf(a.pos(attrStatus), "%s must be between 200 and 599, got %d", attrStatus, f.Status)
	}
	return f
}

// RedactURL is raw with the password of its userinfo replaced by "xxxxx",
// as url.URL.Redacted does, for every message that quotes a configured
// URL (validation errors, logs). A URL that does not parse is redacted
// too: everything between "//" and the last "@" of the authority.
func RedactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	_, rest, ok := strings.Cut(raw, "//")
	if !ok {
		return raw
	}
	start := len(raw) - len(rest)
	end := len(rest)
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		end = i
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return raw
	}
	return raw[:start] + "xxxxx" + rest[at:]
}

// decodeUpstreamTLS reads an upstream_tls block. The CA file is only
// named here; the table builder reads it (see gateway's transports).
func decodeUpstreamTLS(p *problems, b *hcl.Block) *UpstreamTLS {
	a, _ := decodeBody(p, b, upstreamTLSSpec)
	t := &UpstreamTLS{CAFile: a.str(attrCAFile), ServerName: a.str(attrServerName), Pos: p.pos(b.DefRange)}
	if a.ok(attrCAFile) && t.CAFile == "" {
		p.addf(a.pos(attrCAFile), "%s must not be empty", attrCAFile)
	}
	if a.ok(attrServerName) && (t.ServerName == "" || strings.ContainsAny(t.ServerName, " /:")) {
		p.addf(a.pos(attrServerName), "%s must be a host name, got %q", attrServerName, t.ServerName)
	}
	return t
}
