package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// everyAttribute is a valid document holding every block type in every
// place it may appear, and every attribute of every block type, each with
// a value of its own so a reader filling the wrong field shows.
var everyAttribute = strings.Join([]string{
	`route "prefix" {`,
	`  path_prefix          = "/p"`,
	`  methods              = ["get"]`,
	`  host                 = "p.example.com"`,
	`  case_insensitive     = true`,
	`  service              = "ps"`,
	`  tag                  = "pt"`,
	`  strip_prefix         = "/p"`,
	`  balancer             = "random"`,
	`  allow_warning        = true`,
	`  timeout              = "1s"`,
	`  acme                 = true`,
	`  idle_timeout         = "1m"`,
	`  retries              = 1`,
	`  retry_non_idempotent = true`,
	`  rate_limit {`,
	`    requests_per_second = 2.5`,
	`    burst               = 7`,
	`    key                 = "jwt:sub"`,
	`    scope               = "cluster"`,
	`  }`,
	`  jwt {`,
	`    algorithms     = ["RS256"]`,
	`    jwks_url       = "https://auth.example.com/jwks"`,
	`    issuer         = "iss"`,
	`    audience       = "aud"`,
	`    forward_claims = { sub = "x-sub" }`,
	`  }`,
	`  circuit_breaker {`,
	`    failure_ratio = 0.5`,
	`    min_requests  = 3`,
	`    open_timeout  = "2s"`,
	`    serve_stale   = false`,
	`    fallback {`,
	`      status       = 203`,
	`      content_type = "text/plain"`,
	`      body         = "fb"`,
	`    }`,
	`  }`,
	`}`,
	`route "hmac" {`,
	`  path    = "/q/{id}"`,
	`  service = "qs"`,
	`  jwt {`,
	`    algorithms = ["HS256"]`,
	`    secret_env = "Q_SECRET"`,
	`  }`,
	`}`,
	`route "pem" {`,
	`  path    = "/r"`,
	`  service = "rs"`,
	`  jwt {`,
	`    algorithms      = ["ES256"]`,
	`    public_key_file = "/keys/r.pem"`,
	`  }`,
	`}`,
	`route "fa" {`,
	`  path    = "/s"`,
	`  service = "ss"`,
	`  forward_auth {`,
	`    service      = "auth"`,
	`    path         = "/verify"`,
	`    copy_headers = ["x-user"]`,
	`    timeout      = "3s"`,
	`  }`,
	`}`,
	`aggregate "agg" {`,
	`  path               = "/a/{id}"`,
	`  methods            = ["GET"]`,
	`  host               = "a.example.com"`,
	`  timeout            = "4s"`,
	`  timeout_status     = 503`,
	`  max_concurrency    = 1`,
	`  max_response_bytes = 1000`,
	`  forward_headers    = ["x-tenant"]`,
	`  balancer           = "random"`,
	`  allow_warning      = true`,
	`  rate_limit {`,
	`    requests_per_second = 1`,
	`    key                 = "auth_header:x-user"`,
	`  }`,
	`  forward_auth {`,
	`    service      = "auth"`,
	`    path         = "/check"`,
	`    copy_headers = ["x-user"]`,
	`  }`,
	`  call "c" {`,
	`    service              = "cs"`,
	`    tag                  = "ct"`,
	`    path                 = "/c/{id}?q={query.q}"`,
	`    required             = true`,
	`    timeout              = "2s"`,
	`    retries              = 2`,
	`    retry_non_idempotent = true`,
	`    circuit_breaker {`,
	`      failure_ratio = 0.25`,
	`      fallback {`,
	`        body = "{}"`,
	`      }`,
	`    }`,
	`  }`,
	`}`,
	`aggregate "agg2" {`,
	`  path = "/b"`,
	`  jwt {`,
	`    algorithms = ["HS512"]`,
	`    secret_env = "B_SECRET"`,
	`  }`,
	`  call "d" {`,
	`    service = "ds"`,
	`    path    = "/d"`,
	`  }`,
	`}`,
	`route "tls" {`,
	`  path         = "/t"`,
	`  service      = "ts"`,
	`  https_only   = true`,
	`  hsts_max_age = "24h"`,
	`  protocol     = "https"`,
	`  upstream_tls {`,
	`    ca_file     = "/ca/t.pem"`,
	`    server_name = "t.internal"`,
	`  }`,
	`  sticky {`,
	`    cookie    = "gw_s"`,
	`    max_age   = "1h"`,
	`    path      = "/t"`,
	`    same_site = "Strict"`,
	`  }`,
	`  mirror {`,
	`    service         = "ms"`,
	`    tag             = "mt"`,
	`    percent         = 12.5`,
	`    max_concurrency = 3`,
	`  }`,
	`}`,
	`route "canary" {`,
	`  path = "/u"`,
	`  split {`,
	`    service     = "us"`,
	`    tag         = "v1"`,
	`    weight      = 95`,
	`  }`,
	`  split {`,
	`    service     = "us"`,
	`    tag         = "v2"`,
	`    weight      = 5`,
	`    when_header = { "x-canary" = "1" }`,
	`    when_cookie = { canary = "yes" }`,
	`  }`,
	`}`,
	`route "dc" {`,
	`  path       = "/dc"`,
	`  service    = "dcs"`,
	`  datacenter = "dc2"`,
	`  failover {`,
	`    datacenters = ["dc3", "dc1"]`,
	`  }`,
	`}`,
	`route "mesh" {`,
	`  path    = "/mesh"`,
	`  service = "meshs"`,
	`  connect = true`,
	`}`,
	`aggregate "agg3" {`,
	`  path = "/e"`,
	`  call "w" {`,
	`    service = "ws"`,
	`    path    = "/w"`,
	`    method  = "post"`,
	`    body    = "client"`,
	`  }`,
	`  call "g" {`,
	`    service     = "gs"`,
	`    path        = "/g/{w.id}"`,
	`    after       = "w"`,
	`    cache       = true`,
	`    hedge_after = "50ms"`,
	`  }`,
	`}`,
}, "\n") + "\n"

// walkSpecs calls f for every block spec reachable from the document's,
// once each, parents before children.
func walkSpecs(f func(*blockSpec)) {
	seen := map[*blockSpec]bool{}
	var walk func(*blockSpec)
	walk = func(s *blockSpec) {
		if seen[s] {
			return
		}
		seen[s] = true
		f(s)
		for _, b := range s.blocks {
			walk(b)
		}
	}
	walk(documentSpec)
}

// TestSpecEveryAttributeRead decodes every block with every attribute and
// checks that the decoders read every attribute each spec declares (an
// attribute declared but never read would be accepted and ignored) into
// the right field.
func TestSpecEveryAttributeRead(t *testing.T) {
	src := []byte(everyAttribute)

	// The document must keep up with the specs: every declared attribute
	// written, every nested block written inside each block declaring it.
	file, diags := hclsyntax.ParseConfig(src, "k", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	written := map[string]bool{}
	var collect func(parent string, body *hclsyntax.Body)
	collect = func(parent string, body *hclsyntax.Body) {
		for name := range body.Attributes {
			written[parent+"."+name] = true
		}
		for _, b := range body.Blocks {
			written[parent+">"+b.Type] = true
			collect(b.Type, b.Body)
		}
	}
	collect("", file.Body.(*hclsyntax.Body))
	walkSpecs(func(s *blockSpec) {
		for _, a := range s.attrs {
			if !written[s.typ+"."+a.name] {
				t.Errorf("everyAttribute has no %s attribute in a %s block", a, s.typ)
			}
		}
		for _, b := range s.blocks {
			if !written[s.typ+">"+b.typ] {
				t.Errorf("everyAttribute has no %s block inside a %q block", b.typ, s.typ)
			}
		}
	})

	read := map[*blockSpec]map[attr]bool{}
	p := &problems{key: "k", read: func(s *blockSpec, a attr) {
		if read[s] == nil {
			read[s] = map[attr]bool{}
		}
		read[s][a] = true
	}}
	d, err := parse(p, src, 1)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	walkSpecs(func(s *blockSpec) {
		for _, a := range s.attrs {
			if !read[s][a] {
				t.Errorf("the %s decoder never reads its attribute %s", s.typ, a)
			}
		}
	})

	pos := func(line, col int) Pos { return Pos{Key: "k", Line: line, Column: col} }
	want := &Document{Key: "k", ModifyIndex: 1, Routes: []Route{
		{
			Name: "prefix", SourceKey: "k", Pos: pos(1, 1),
			PathPrefix: "/p", Methods: []string{"GET"}, Host: "p.example.com", CaseInsensitive: true,
			Service: "ps", Tag: "pt", StripPrefix: "/p", Balancer: "random", AllowWarning: true, Timeout: time.Second, ACME: true, IdleTimeout: time.Minute,
			Policy: Policy{
				Retries: 1, RetryNonIdempotent: true,
				RateLimit: &RateLimit{RequestsPerSecond: 2.5, Burst: 7, Key: "jwt:sub", KeyKind: RateKeyJWT, KeyName: "sub", Cluster: true},
				JWT: &JWT{Algorithms: []string{"RS256"}, JWKSURL: "https://auth.example.com/jwks",
					Issuer: "iss", Audience: "aud", ForwardClaims: map[string]string{"sub": "X-Sub"}},
				CircuitBreaker: &CircuitBreaker{FailureRatio: 0.5, MinRequests: 3, OpenTimeout: 2 * time.Second, ServeStale: false,
					Fallback: &Fallback{Status: 203, ContentType: "text/plain", Body: "fb"}},
			},
		},
		{
			Name: "hmac", SourceKey: "k", Pos: pos(41, 1), Path: "/q/{id}", Service: "qs", Balancer: "round_robin",
			Policy: Policy{JWT: &JWT{Algorithms: []string{"HS256"}, SecretEnv: "Q_SECRET"}},
		},
		{
			Name: "pem", SourceKey: "k", Pos: pos(49, 1), Path: "/r", Service: "rs", Balancer: "round_robin",
			Policy: Policy{JWT: &JWT{Algorithms: []string{"ES256"}, PublicKeyFile: "/keys/r.pem"}},
		},
		{
			Name: "fa", SourceKey: "k", Pos: pos(57, 1), Path: "/s", Service: "ss", Balancer: "round_robin",
			Policy: Policy{ForwardAuth: &ForwardAuth{Service: "auth", Path: "/verify", CopyHeaders: []string{"X-User"}, Timeout: 3 * time.Second}},
		},
		{
			Name: "tls", SourceKey: "k", Pos: pos(114, 1), Path: "/t", Service: "ts", Balancer: "round_robin",
			HTTPSOnly: true, HSTSMaxAge: 24 * time.Hour,
			Protocol: ProtocolHTTPS, UpstreamTLS: &UpstreamTLS{CAFile: "/ca/t.pem", ServerName: "t.internal", Pos: pos(120, 3)},
			Sticky:  &Sticky{Cookie: "gw_s", MaxAge: time.Hour, Path: "/t", SameSite: SameSiteStrict, Pos: pos(124, 3)},
			Mirrors: []Mirror{{Service: "ms", Tag: "mt", Percent: 12.5, MaxConcurrency: 3, Pos: pos(130, 3)}},
		},
		{
			Name: "canary", SourceKey: "k", Pos: pos(137, 1), Path: "/u", Balancer: "round_robin",
			Splits: []Split{
				{Service: "us", Tag: "v1", Weight: 95, Pos: pos(139, 3)},
				{Service: "us", Tag: "v2", Weight: 5, Pos: pos(144, 3),
					WhenHeader: map[string]string{"X-Canary": "1"}, WhenCookie: map[string]string{"canary": "yes"}},
			},
		},
		{
			Name: "dc", SourceKey: "k", Pos: pos(152, 1), Path: "/dc", Service: "dcs", Balancer: "round_robin",
			Datacenter: "dc2", Failover: &Failover{Datacenters: []string{"dc3", "dc1"}, Pos: pos(156, 3)},
		},
		{
			Name: "mesh", SourceKey: "k", Pos: pos(160, 1), Path: "/mesh", Service: "meshs", Balancer: "round_robin", Connect: true,
		},
	}, Aggregates: []Aggregate{
		{
			Name: "agg", SourceKey: "k", Pos: pos(67, 1),
			Path: "/a/{id}", Methods: []string{"GET"}, Host: "a.example.com", Timeout: 4 * time.Second,
			TimeoutStatus: 503, MaxConcurrency: 1, MaxResponseBytes: 1000, Balancer: "random", AllowWarning: true, ForwardHeaders: []string{"X-Tenant"},
			Policy: Policy{
				RateLimit:   &RateLimit{RequestsPerSecond: 1, Burst: 1, Key: "auth_header:x-user", KeyKind: RateKeyAuthHeader, KeyName: "X-User"},
				ForwardAuth: &ForwardAuth{Service: "auth", Path: "/check", CopyHeaders: []string{"X-User"}, Timeout: DefaultForwardAuthTimeout},
			},
			Calls: []Call{{
				Name: "c", Service: "cs", Tag: "ct", Path: "/c/{id}?q={query.q}", Required: true, Timeout: 2 * time.Second,
				Pos: pos(87, 3),
				Policy: Policy{Retries: 2, RetryNonIdempotent: true, CircuitBreaker: &CircuitBreaker{
					FailureRatio: 0.25, MinRequests: DefaultMinRequests, OpenTimeout: DefaultOpenTimeout,
					Fallback: &Fallback{Status: 200, Body: "{}"}}},
			}},
		},
		{
			Name: "agg2", SourceKey: "k", Pos: pos(103, 1), Path: "/b",
			TimeoutStatus: DefaultTimeoutStatus, MaxConcurrency: 1, MaxResponseBytes: DefaultMaxResponseBytes, Balancer: "round_robin",
			Policy: Policy{JWT: &JWT{Algorithms: []string{"HS512"}, SecretEnv: "B_SECRET"}},
			Calls:  []Call{{Name: "d", Service: "ds", Path: "/d", Pos: pos(109, 3)}},
		},
		{
			Name: "agg3", SourceKey: "k", Pos: pos(165, 1), Path: "/e",
			TimeoutStatus: DefaultTimeoutStatus, MaxConcurrency: 2, MaxResponseBytes: DefaultMaxResponseBytes, Balancer: "round_robin",
			Calls: []Call{
				{Name: "w", Service: "ws", Path: "/w", Pos: pos(167, 3), Method: "POST", Body: BodyClient},
				{Name: "g", Service: "gs", Path: "/g/{w.id}", Pos: pos(173, 3), After: []string{"w"}, Cache: true, HedgeAfter: 50 * time.Millisecond},
			},
		},
	}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", d, want)
	}
}

// TestReadersRejectUndeclaredAttributes checks that a reader asked for an
// attribute its block does not declare panics instead of reading it as
// absent: retries is declared by route and call, never by rate_limit.
func TestReadersRejectUndeclaredAttributes(t *testing.T) {
	readers := map[string]func(*attrs){
		"has":      func(a *attrs) { a.has(attrRetries) },
		"ok":       func(a *attrs) { a.ok(attrRetries) },
		"pos":      func(a *attrs) { a.pos(attrRetries) },
		"str":      func(a *attrs) { a.str(attrRetries) },
		"strList":  func(a *attrs) { a.strList(attrRetries) },
		"strMap":   func(a *attrs) { a.strMap(attrRetries) },
		"duration": func(a *attrs) { a.duration(attrRetries) },
		"integer":  func(a *attrs) { a.integer(attrRetries) },
		"number":   func(a *attrs) { a.number(attrRetries) },
		"boolean":  func(a *attrs) { a.boolean(attrRetries) },
	}
	const want = `config: the rate_limit block declares no attribute "retries"`
	for name, read := range readers {
		a := newAttrs(&problems{key: "k"}, rateLimitSpec, hcl.Attributes{})
		if got := panicOf(func() { read(a) }); got != want {
			t.Errorf("%s: panic %q, want %q", name, got, want)
		}
	}
	if got := panicOf(func() { _ = rateLimitSpec.ref(attrRetries) }); got != want {
		t.Errorf("ref: panic %q, want %q", got, want)
	}
	if got := panicOf(func() { routeSpec.ref(attrRetries) }); got != "" {
		t.Errorf("ref of a declared attribute panicked: %s", got)
	}
}

// TestParseRejectsDocumentOnUndeclaredRead shows what a reader asking its
// block for an undeclared attribute costs in production: every document
// holding that block is rejected with an internal error, never served with
// the attribute silently absent. The route spec is swapped for one that
// lacks tag, as if a decoder read an attribute nobody declared.
func TestParseRejectsDocumentOnUndeclaredRead(t *testing.T) {
	orig := routeSpec
	t.Cleanup(func() { routeSpec = orig })
	attrs := slices.DeleteFunc(slices.Clone(orig.attrs), func(a attr) bool { return a == attrTag })
	routeSpec = declare(&blockSpec{typ: orig.typ, labels: orig.labels, attrs: attrs, blocks: orig.blocks})

	_, err := Parse("k", []byte("route \"a\" {\n  path = \"/a\"\n  service = \"a\"\n}\n"), 1)
	var pe *PanicError
	if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want an internal error", err)
	}
	if want := `k:1:1: internal error while parsing the document (config: the route block declares no attribute "tag")`; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v, want it to start %q", err, want)
	}
}

// TestSchemaDerivedFromSpec checks each derived schema lists exactly the
// spec's attributes and nested blocks, in order, and that declaring a name
// twice is caught.
func TestSchemaDerivedFromSpec(t *testing.T) {
	walkSpecs(func(s *blockSpec) {
		var attrs, blocks []string
		for _, a := range s.schema.Attributes {
			attrs = append(attrs, a.Name)
			if a.Required {
				t.Errorf("%s: %s is Required in the schema", s.typ, a.Name)
			}
		}
		for _, b := range s.schema.Blocks {
			blocks = append(blocks, b.Type+fmt.Sprint(b.LabelNames))
		}
		var wantAttrs, wantBlocks []string
		for _, a := range s.attrs {
			wantAttrs = append(wantAttrs, a.name)
		}
		for _, b := range s.blocks {
			wantBlocks = append(wantBlocks, b.typ+fmt.Sprint(b.labels))
		}
		if !slices.Equal(attrs, wantAttrs) || !slices.Equal(blocks, wantBlocks) {
			t.Errorf("%s: schema %v %v, spec %v %v", s.typ, attrs, blocks, wantAttrs, wantBlocks)
		}
	})
	if got := aggregateSpec.schema.Attributes; !slices.Contains(got, hcl.AttributeSchema{Name: "balancer"}) {
		t.Errorf("aggregate schema %v has no balancer", got)
	}
	dup := func() {
		declare(&blockSpec{typ: "x", attrs: []attr{attrPath}, parts: []part{{attrs: []attr{attrPath}}}})
	}
	if got := panicOf(dup); got != `config: x block declares attribute "path" twice` {
		t.Errorf("duplicate attribute: panic %q", got)
	}
}

// panicOf runs f and returns what it panicked with, "" if it did not.
func panicOf(f func()) (msg string) {
	defer func() {
		if v := recover(); v != nil {
			msg = fmt.Sprint(v)
		}
	}()
	f()
	return ""
}

// TestItemBoundAboveSpecs checks MaxItemsPerBlock's comment: the longest
// valid block (every attribute and nested block of its spec once, an
// aggregate's calls aside) is a route of 29 items, well within the bound.
func TestItemBoundAboveSpecs(t *testing.T) {
	longest, which := 0, ""
	walkSpecs(func(s *blockSpec) {
		n := len(s.attrs) + len(s.blocks)
		if s == aggregateSpec {
			n-- // call blocks count against MaxCallsPerAggregate
		}
		if s != documentSpec && n > longest {
			longest, which = n, s.typ
		}
	})
	if longest != 29 || which != routeSpec.typ || longest > MaxItemsPerBlock {
		t.Errorf("longest valid block: %s with %d items (MaxItemsPerBlock %d); update the comment", which, longest, MaxItemsPerBlock)
	}
}
