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

// Policy block and attribute names as written in documents.
const (
	blockRateLimit      = "rate_limit"
	blockJWT            = "jwt"
	blockForwardAuth    = "forward_auth"
	blockCircuitBreaker = "circuit_breaker"
	blockFallback       = "fallback"

	attrRetries            = "retries"
	attrRetryNonIdempotent = "retry_non_idempotent"
)

// accessPolicyBlocks are the admission blocks any request-serving block
// (route, aggregate) may carry; decodeAccessPolicy reads them.
var accessPolicyBlocks = []hcl.BlockHeaderSchema{
	{Type: blockRateLimit}, {Type: blockJWT}, {Type: blockForwardAuth},
}

// upstreamPolicyBlocks and upstreamPolicyAttrs protect calls to a service;
// decodeUpstreamPolicy reads them.
var (
	upstreamPolicyBlocks = []hcl.BlockHeaderSchema{{Type: blockCircuitBreaker}}
	upstreamPolicyAttrs  = []hcl.AttributeSchema{{Name: attrRetries}, {Name: attrRetryNonIdempotent}}
)

var rateLimitSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "requests_per_second"}, {Name: "burst"}, {Name: "key"},
}}

var jwtSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "algorithms"}, {Name: "secret_env"}, {Name: "public_key_file"}, {Name: "jwks_url"},
	{Name: "issuer"}, {Name: "audience"}, {Name: "forward_claims"},
}}

var forwardAuthSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "service"}, {Name: "path"}, {Name: "copy_headers"}, {Name: "timeout"},
}}

var breakerSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "failure_ratio"}, {Name: "min_requests"}, {Name: "open_timeout"}, {Name: "serve_stale"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: blockFallback}},
}

var fallbackSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "status"}, {Name: "content_type"}, {Name: "body"},
}}

// MaxRetries caps `retries`: more attempts than this only multiply load on
// a service that is already failing.
const MaxRetries = 10

// blockAttrs decodes one nested block against its schema.
func blockAttrs(p *problems, b *hcl.Block, schema *hcl.BodySchema) (*attrs, hcl.Blocks) {
	content, diags := b.Body.Content(schema)
	p.diags(diags, b.DefRange)
	return newAttrs(p, content.Attributes), content.Blocks
}

// single returns the one block of type typ in blocks, reporting every
// further one; nil when there is none.
func single(p *problems, blocks hcl.Blocks, typ string) *hcl.Block {
	var first *hcl.Block
	for _, b := range blocks {
		if b.Type != typ {
			continue
		}
		if first != nil {
			p.addf(p.pos(b.DefRange), "only one %s block is allowed (first at %d:%d)", typ, first.DefRange.Start.Line, first.DefRange.Start.Column)
			continue
		}
		first = b
	}
	return first
}

// decodeAccessPolicy reads the rate_limit, jwt and forward_auth blocks out
// of blocks (other block types are ignored) into pol, with every rule that
// spans them. Any block type listing accessPolicyBlocks in its schema can
// call it.
func decodeAccessPolicy(p *problems, blocks hcl.Blocks, pol *Policy) {
	var keyPos Pos
	if b := single(p, blocks, blockRateLimit); b != nil {
		pol.RateLimit, keyPos = decodeRateLimit(p, b)
	}
	jb := single(p, blocks, blockJWT)
	if jb != nil {
		pol.JWT = decodeJWT(p, jb)
	}
	if fb := single(p, blocks, blockForwardAuth); fb != nil {
		pol.ForwardAuth = decodeForwardAuth(p, fb)
		if jb != nil {
			later := fb
			if jb.DefRange.Start.Byte > fb.DefRange.Start.Byte {
				later = jb
			}
			p.addf(p.pos(later.DefRange), "only one of %q and %q may be set", blockJWT, blockForwardAuth)
		}
	}
	if rl := pol.RateLimit; rl != nil && rl.KeyKind == RateKeyJWT && jb == nil {
		p.addf(keyPos, "rate_limit key %q needs a jwt block: only verified claims are used as keys", rl.Key)
	}
	if rl := pol.RateLimit; rl != nil && rl.KeyKind == RateKeyAuthHeader && rl.KeyName != "" && !authSets(pol, rl.KeyName) {
		p.addf(keyPos, "rate_limit key %q needs a jwt forward_claims or forward_auth copy_headers entry for %s: only headers the route's auth sets are verified", rl.Key, rl.KeyName)
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
// header in the message, e.g. `copy_headers`.
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

// decodeUpstreamPolicy reads circuit_breaker out of blocks and retries and
// retry_non_idempotent out of a into pol.
func decodeUpstreamPolicy(p *problems, blocks hcl.Blocks, a *attrs, pol *Policy) {
	if b := single(p, blocks, blockCircuitBreaker); b != nil {
		pol.CircuitBreaker = decodeBreaker(p, b)
	}
	pol.Retries = a.integer(attrRetries)
	if a.ok(attrRetries) && (pol.Retries < 0 || pol.Retries > MaxRetries) {
		p.addf(a.pos(attrRetries), "retries must be between 0 and %d, got %d", MaxRetries, pol.Retries)
	}
	pol.RetryNonIdempotent = a.boolean(attrRetryNonIdempotent)
}

func decodeRateLimit(p *problems, b *hcl.Block) (*RateLimit, Pos) {
	a, _ := blockAttrs(p, b, rateLimitSchema)
	rl := &RateLimit{RequestsPerSecond: a.number("requests_per_second"), Burst: a.integer("burst"), Key: a.str("key")}
	switch {
	case !a.has("requests_per_second"):
		p.addf(p.pos(b.DefRange), "rate_limit: missing required attribute %q", "requests_per_second")
	case a.ok("requests_per_second") && rl.RequestsPerSecond <= 0:
		p.addf(a.pos("requests_per_second"), "requests_per_second must be positive, got %g", rl.RequestsPerSecond)
	}
	switch {
	case !a.has("burst"):
		// A bucket of one second's worth of requests, as most users expect.
		rl.Burst = max(1, int(math.Ceil(rl.RequestsPerSecond)))
	case a.ok("burst") && rl.Burst < 1:
		p.addf(a.pos("burst"), "burst must be at least 1, got %d", rl.Burst)
	}
	if !a.has("key") {
		rl.Key = RateKeyIP
	}
	kind, name, _ := strings.Cut(rl.Key, ":")
	rl.KeyKind = kind
	switch {
	case !a.ok("key") && a.has("key"):
	case kind == RateKeyIP && name == "" && !strings.Contains(rl.Key, ":"):
	case kind == RateKeyHeader && isToken(name):
		rl.KeyName = textproto.CanonicalMIMEHeaderKey(name)
	case kind == RateKeyJWT && name != "":
		rl.KeyName = name
	case kind == RateKeyAuthHeader && isToken(name):
		rl.KeyName = textproto.CanonicalMIMEHeaderKey(name)
	default:
		p.addf(a.pos("key"), `rate_limit key %q: want "ip", "header:NAME", "jwt:CLAIM" or "auth_header:NAME"`, rl.Key)
	}
	return rl, a.pos("key")
}

// Algorithms lists every JWT algorithm a jwt block may pin.
var Algorithms = []string{
	"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA",
}

func decodeJWT(p *problems, b *hcl.Block) *JWT {
	a, _ := blockAttrs(p, b, jwtSchema)
	j := &JWT{
		SecretEnv: a.str("secret_env"), PublicKeyFile: a.str("public_key_file"), JWKSURL: a.str("jwks_url"),
		Issuer: a.str("issuer"), Audience: a.str("audience"),
	}
	algs, algPos := a.strList("algorithms")
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
	case !a.has("algorithms"):
		p.addf(p.pos(b.DefRange), "jwt: missing required attribute %q (pin the algorithms your issuer uses)", "algorithms")
	case a.ok("algorithms") && len(algs) == 0:
		p.addf(a.pos("algorithms"), "algorithms must not be empty")
	case hmac && public:
		// The classic confusion attack signs HS256 with the RSA public key;
		// never letting one route accept both families rules it out.
		p.addf(a.pos("algorithms"), "algorithms must not mix HMAC (HS*) with public-key algorithms")
	}
	sources := 0
	for _, n := range []string{"secret_env", "public_key_file", "jwks_url"} {
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
	case hmac && !a.has("secret_env"):
		p.addf(p.pos(b.DefRange), "jwt: HS* algorithms need secret_env (the environment variable holding the secret)")
	case hmac && sources > 1:
		p.addf(p.pos(b.DefRange), "jwt: HS* algorithms take only secret_env, not public_key_file or jwks_url")
	case public && a.has("secret_env"):
		p.addf(a.pos("secret_env"), "secret_env is only for HS* algorithms")
	case public && sources == 0:
		p.addf(p.pos(b.DefRange), "jwt: %s needs jwks_url or public_key_file", strings.Join(j.Algorithms, ", "))
	case public && sources > 1:
		p.addf(a.pos("jwks_url"), "only one of %q and %q may be set", "jwks_url", "public_key_file")
	}
	if a.ok("jwks_url") && j.JWKSURL != "" {
		if u, err := url.Parse(j.JWKSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.addf(a.pos("jwks_url"), "jwks_url must be an absolute http or https URL, got %q", RedactURL(j.JWKSURL))
		}
	}
	for _, n := range []string{"issuer", "audience"} {
		if a.ok(n) && a.str(n) == "" {
			p.addf(a.pos(n), "%s must not be empty (omit it to accept any)", n)
		}
	}
	if claims := a.strMap("forward_claims"); claims != nil {
		j.ForwardClaims = make(map[string]string, len(claims))
		for claim, h := range claims {
			if c, ok := authHeaderName(p, a.pos("forward_claims"), fmt.Sprintf("forward_claims[%q]", claim), h); ok {
				j.ForwardClaims[claim] = c
			}
		}
	}
	return j
}

func decodeForwardAuth(p *problems, b *hcl.Block) *ForwardAuth {
	a, _ := blockAttrs(p, b, forwardAuthSchema)
	f := &ForwardAuth{Service: a.str("service"), Path: a.str("path"), Timeout: a.duration("timeout")}
	switch {
	case !a.has("service"):
		p.addf(p.pos(b.DefRange), "forward_auth: missing required attribute %q", "service")
	case a.ok("service") && f.Service == "":
		p.addf(a.pos("service"), "service must not be empty")
	}
	switch {
	case !a.has("path"):
		p.addf(p.pos(b.DefRange), "forward_auth: missing required attribute %q", "path")
	case a.ok("path") && !strings.HasPrefix(f.Path, "/"):
		p.addf(a.pos("path"), "path must start with \"/\", got %q", f.Path)
	}
	hdrs, pos := a.strList("copy_headers")
	for i, h := range hdrs {
		if c, ok := authHeaderName(p, pos[i], "copy_headers", h); ok {
			f.CopyHeaders = append(f.CopyHeaders, c)
		}
	}
	if !a.has("timeout") {
		f.Timeout = DefaultForwardAuthTimeout
	}
	return f
}

func decodeBreaker(p *problems, b *hcl.Block) *CircuitBreaker {
	a, blocks := blockAttrs(p, b, breakerSchema)
	c := &CircuitBreaker{
		FailureRatio: a.number("failure_ratio"), MinRequests: a.integer("min_requests"),
		OpenTimeout: a.duration("open_timeout"), ServeStale: a.boolean("serve_stale"),
	}
	switch {
	case !a.has("failure_ratio"):
		p.addf(p.pos(b.DefRange), "circuit_breaker: missing required attribute %q", "failure_ratio")
	case a.ok("failure_ratio") && (c.FailureRatio <= 0 || c.FailureRatio > 1):
		p.addf(a.pos("failure_ratio"), "failure_ratio must be in (0, 1], got %g", c.FailureRatio)
	}
	switch {
	case !a.has("min_requests"):
		c.MinRequests = DefaultMinRequests
	case a.ok("min_requests") && c.MinRequests < 1:
		p.addf(a.pos("min_requests"), "min_requests must be at least 1, got %d", c.MinRequests)
	}
	if !a.has("open_timeout") {
		c.OpenTimeout = DefaultOpenTimeout
	}
	if fb := single(p, blocks, blockFallback); fb != nil {
		fa, _ := blockAttrs(p, fb, fallbackSchema)
		c.Fallback = &Fallback{Status: fa.integer("status"), ContentType: fa.str("content_type"), Body: fa.str("body")}
		switch {
		case !fa.has("status"):
			c.Fallback.Status = 200
		case fa.ok("status") && (c.Fallback.Status < 200 || c.Fallback.Status > 599):
			p.addf(fa.pos("status"), "status must be between 200 and 599, got %d", c.Fallback.Status)
		}
	}
	return c
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
