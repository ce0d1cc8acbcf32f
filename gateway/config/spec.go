package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// Every block a route document may hold is declared in this file, once:
// its type, its labels, its attributes and the blocks nested in it. The
// hcl.BodySchema a body is decoded with is derived from its declaration,
// and the readers of its attributes (attrs) take the declared attr values,
// never strings, so each name is spelled in one place. Asking a block's
// reader for an attribute the block does not declare panics (see
// attrs.get): a misspelt or misplaced name fails every test that decodes
// the block, instead of silently reading as "absent".
//
// Adding an attribute: declare its attr below, list it in its blocks'
// specs, read it in the decoder, and add it to the document of
// TestSpecEveryAttributeRead, which fails for any declared attribute no
// decoder reads.

// attr is an attribute name as written in documents. A string literal is
// not an attr, so no reader can be handed a name by accident: the values
// used are the ones declared here.
type attr struct{ name string }

// String is the name as written, for messages.
func (a attr) String() string { return a.name }

// Attribute names. Several blocks share some (path, service, timeout, ...);
// which block has which is said by the block specs further down.
var (
	// route, and partly aggregate, call and forward_auth.
	attrPath        = attr{"path"}
	attrPathPrefix  = attr{"path_prefix"}
	attrMethods     = attr{"methods"}
	attrHost        = attr{"host"}
	attrCaseFold    = attr{"case_insensitive"}
	attrService     = attr{"service"}
	attrTag         = attr{"tag"}
	attrStripPrefix = attr{"strip_prefix"}
	attrBalancer    = attr{"balancer"}
	attrTimeout     = attr{"timeout"}
	attrACME        = attr{"acme"}
	attrProtocol    = attr{"protocol"}
	// route and aggregate: take Consul's warning instances too.
	attrAllowWarning = attr{"allow_warning"}

	attrDatacenter = attr{"datacenter"}

	// route: reach the service through Consul Connect (mTLS, intentions).
	attrConnect = attr{"connect"}

	// failover.
	attrDatacenters = attr{"datacenters"}

	// upstream_tls.
	attrCAFile     = attr{"ca_file"}
	attrServerName = attr{"server_name"}

	// route: plain-HTTP redirect and HSTS.
	attrHTTPSOnly   = attr{"https_only"}
	attrHSTSMaxAge  = attr{"hsts_max_age"}
	attrIdleTimeout = attr{"idle_timeout"}

	// upstreamPolicy: route and call.
	attrRetries            = attr{"retries"}
	attrRetryNonIdempotent = attr{"retry_non_idempotent"}

	// aggregate.
	attrTimeoutStatus    = attr{"timeout_status"}
	attrMaxConcurrency   = attr{"max_concurrency"}
	attrMaxResponseBytes = attr{"max_response_bytes"}
	attrForwardHeaders   = attr{"forward_headers"}

	// call.
	attrRequired = attr{"required"}

	// call: execution (sequence, writes, caching, hedging); see callplan.go.
	attrAfter      = attr{"after"}
	attrCallMethod = attr{"method"}
	attrCallBody   = attr{"body"}
	attrCache      = attr{"cache"}
	attrHedgeAfter = attr{"hedge_after"}

	// rate_limit.
	attrRequestsPerSecond = attr{"requests_per_second"}
	attrBurst             = attr{"burst"}
	attrKey               = attr{"key"}
	// rate_limit: "local" (per replica) or "cluster" (shared by the
	// gateways registered under one -service-name).
	attrScope = attr{"scope"}

	// jwt.
	attrAlgorithms    = attr{"algorithms"}
	attrSecretEnv     = attr{"secret_env"}
	attrPublicKeyFile = attr{"public_key_file"}
	attrJWKSURL       = attr{"jwks_url"}
	attrIssuer        = attr{"issuer"}
	attrAudience      = attr{"audience"}
	attrForwardClaims = attr{"forward_claims"}

	// forward_auth.
	attrCopyHeaders = attr{"copy_headers"}

	// circuit_breaker.
	attrFailureRatio = attr{"failure_ratio"}
	attrMinRequests  = attr{"min_requests"}
	attrOpenTimeout  = attr{"open_timeout"}
	attrServeStale   = attr{"serve_stale"}

	// split.
	attrWeight     = attr{"weight"}
	attrWhenHeader = attr{"when_header"}
	attrWhenCookie = attr{"when_cookie"}
	// sticky.
	attrCookie   = attr{"cookie"}
	attrMaxAge   = attr{"max_age"}
	attrSameSite = attr{"same_site"}

	// mirror.
	attrPercent = attr{"percent"}

	// fallback.
	attrStatus      = attr{"status"}
	attrContentType = attr{"content_type"}
	attrBody        = attr{"body"}
)

// blockSpec declares one block type. Attributes and blocks are listed in
// the order HCL tries them when it suggests a name for a typo ("Did you
// mean ...?"), so reordering them changes messages. Nothing is marked
// required in the derived schema: HCL would place that error at the
// closing brace, while the decoders point at the block header and name
// the block.
type blockSpec struct {
	// typ is the block type; empty only for the document's top level.
	typ string
	// labels names the labels the block takes, for the schema.
	labels []string
	attrs  []attr
	blocks []*blockSpec
	// parts are attributes and blocks shared with other block types,
	// listed after the block's own.
	parts []part

	// Derived by declare.
	schema   *hcl.BodySchema
	declared map[attr]bool
}

// part is attributes and nested blocks that several block types share.
type part struct {
	attrs  []attr
	blocks []*blockSpec
}

// declare completes a spec: it merges the parts into attrs and blocks and
// derives the schema. A name declared twice is a bug, reported at init.
func declare(s *blockSpec) *blockSpec {
	for _, pt := range s.parts {
		s.attrs = append(s.attrs, pt.attrs...)
		s.blocks = append(s.blocks, pt.blocks...)
	}
	s.parts = nil
	s.schema = &hcl.BodySchema{}
	s.declared = make(map[attr]bool, len(s.attrs))
	for _, a := range s.attrs {
		if s.declared[a] {
			panic(fmt.Sprintf("config: %s block declares attribute %q twice", s.typ, a))
		}
		s.declared[a] = true
		s.schema.Attributes = append(s.schema.Attributes, hcl.AttributeSchema{Name: a.name})
	}
	types := map[string]bool{}
	for _, b := range s.blocks {
		if types[b.typ] {
			panic(fmt.Sprintf("config: %s block declares block %q twice", s.typ, b.typ))
		}
		types[b.typ] = true
		s.schema.Blocks = append(s.schema.Blocks, hcl.BlockHeaderSchema{Type: b.typ, LabelNames: b.labels})
	}
	return s
}

// has reports whether the block declares attribute a.
func (s *blockSpec) has(a attr) bool { return s.declared[a] }

// mustHave panics unless the block declares a: asking for anything else is
// a bug in the code asking, never in the document.
func (s *blockSpec) mustHave(a attr) {
	if !s.has(a) {
		panic(fmt.Sprintf("config: the %s block declares no attribute %q", s.typ, a))
	}
}

// ref names attribute a of this block in messages: "rate_limit key".
func (s *blockSpec) ref(a attr) string {
	s.mustHave(a)
	return s.typ + " " + a.name
}

// labelName is the one label route, aggregate and call blocks take.
var labelName = []string{"name"}

// Shared parts.
var (
	// accessPolicy is the admission any request-serving block (route,
	// aggregate) may carry; decodeAccessPolicy reads it.
	accessPolicy = part{blocks: []*blockSpec{rateLimitSpec, jwtSpec, forwardAuthSpec}}

	// upstreamPolicy protects the calls to a service (route, call);
	// decodeUpstreamPolicy reads it.
	upstreamPolicy = part{
		attrs:  []attr{attrRetries, attrRetryNonIdempotent},
		blocks: []*blockSpec{circuitBreakerSpec},
	}

	// callExecution is how a call is made (order, method, body, cache,
	// hedging); decodeCallExecution reads it.
	callExecution = part{
		attrs: []attr{attrAfter, attrCallMethod, attrCallBody, attrCache, attrHedgeAfter},
	}
)

// Block specs. Go initialises them in dependency order, so a spec is
// complete before any spec nesting it is declared.
var (
	// documentSpec is the top level. A new top-level block type is listed
	// here and decoded in parse.
	documentSpec = declare(&blockSpec{blocks: []*blockSpec{routeSpec, aggregateSpec}})

	// routeSpec is read by decodeRoute and validateRoute.
	routeSpec = declare(&blockSpec{
		typ: "route", labels: labelName,
		attrs: []attr{
			attrPath, attrPathPrefix, attrMethods, attrHost, attrCaseFold,
			attrService, attrTag, attrStripPrefix, attrBalancer, attrTimeout,
			attrHTTPSOnly, attrHSTSMaxAge, attrACME,
			attrIdleTimeout, attrProtocol, attrAllowWarning, attrDatacenter,
			attrConnect,
		},
		blocks: []*blockSpec{upstreamTLSSpec, splitSpec, failoverSpec, stickySpec, mirrorSpec},
		parts:  []part{accessPolicy, upstreamPolicy},
	})

	// aggregateSpec is read by decodeAggregate and validateAggregate.
	aggregateSpec = declare(&blockSpec{
		typ: "aggregate", labels: labelName,
		attrs: []attr{
			attrPath, attrMethods, attrHost, attrTimeout,
			attrTimeoutStatus, attrMaxConcurrency, attrMaxResponseBytes,
			attrForwardHeaders, attrBalancer, attrAllowWarning,
		},
		blocks: []*blockSpec{callSpec},
		parts:  []part{accessPolicy},
	})

	// callSpec is read by decodeAggregate and validateCall.
	callSpec = declare(&blockSpec{
		typ: "call", labels: labelName,
		attrs: []attr{attrService, attrTag, attrPath, attrRequired, attrTimeout},
		parts: []part{upstreamPolicy, callExecution},
	})

	rateLimitSpec = declare(&blockSpec{
		typ:   "rate_limit",
		attrs: []attr{attrRequestsPerSecond, attrBurst, attrKey, attrScope},
	})

	jwtSpec = declare(&blockSpec{
		typ: "jwt",
		attrs: []attr{
			attrAlgorithms, attrSecretEnv, attrPublicKeyFile, attrJWKSURL,
			attrIssuer, attrAudience, attrForwardClaims,
		},
	})

	forwardAuthSpec = declare(&blockSpec{
		typ:   "forward_auth",
		attrs: []attr{attrService, attrPath, attrCopyHeaders, attrTimeout},
	})

	circuitBreakerSpec = declare(&blockSpec{
		typ:    "circuit_breaker",
		attrs:  []attr{attrFailureRatio, attrMinRequests, attrOpenTimeout, attrServeStale},
		blocks: []*blockSpec{fallbackSpec},
	})

	// upstreamTLSSpec is read by decodeUpstreamTLS.
	upstreamTLSSpec = declare(&blockSpec{
		typ:   "upstream_tls",
		attrs: []attr{attrCAFile, attrServerName},
	})

	// failoverSpec is read by decodeFailover.
	failoverSpec = declare(&blockSpec{
		typ:   "failover",
		attrs: []attr{attrDatacenters},
	})

	// splitSpec is read by decodeSplit; a route has either service or
	// split blocks (see validateSplits).
	splitSpec = declare(&blockSpec{
		typ:   "split",
		attrs: []attr{attrService, attrTag, attrWeight, attrWhenHeader, attrWhenCookie},
	})

	// stickySpec is read by decodeSticky.
	stickySpec = declare(&blockSpec{
		typ:   "sticky",
		attrs: []attr{attrCookie, attrMaxAge, attrPath, attrSameSite},
	})

	// mirrorSpec is read by decodeMirror.
	mirrorSpec = declare(&blockSpec{
		typ:   "mirror",
		attrs: []attr{attrService, attrTag, attrPercent, attrMaxConcurrency},
	})

	fallbackSpec = declare(&blockSpec{
		typ:   "fallback",
		attrs: []attr{attrStatus, attrContentType, attrBody},
	})
)

// decodeBody decodes b's body against spec, placing HCL's problems that
// have no position of their own at b's header. It returns the readers of
// the body's attributes and its nested blocks.
func decodeBody(p *problems, b *hcl.Block, spec *blockSpec) (*attrs, hcl.Blocks) {
	content, diags := b.Body.Content(spec.schema)
	p.diags(diags, b.DefRange)
	return newAttrs(p, spec, content.Attributes), content.Blocks
}

// single returns the one block of spec's type in blocks, reporting every
// further one; nil when there is none.
func single(p *problems, blocks hcl.Blocks, spec *blockSpec) *hcl.Block {
	var first *hcl.Block
	for _, b := range blocks {
		if b.Type != spec.typ {
			continue
		}
		if first != nil {
			p.addf(p.pos(b.DefRange), "only one %s block is allowed (first at %d:%d)", spec.typ, first.DefRange.Start.Line, first.DefRange.Start.Column)
			continue
		}
		first = b
	}
	return first
}
