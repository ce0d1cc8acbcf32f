package config

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/hashicorp/hcl/v2"
)

// Aggregate is one validated `aggregate` block: a request matching Path is
// answered by calling every Call concurrently and merging their JSON
// bodies into one object. Fields hold defaults already applied.
type Aggregate struct {
	// Name is the block label; routes and aggregates share one namespace.
	Name string
	// SourceKey is the KV key (or file name) the aggregate came from.
	SourceKey string
	// Pos is where the aggregate block starts.
	Pos Pos

	// Path is a gorilla/mux path template; its variables fill the calls' paths.
	Path string
	// Methods restricts the aggregate to these upper-case methods; empty means any.
	Methods []string
	// Host restricts the aggregate to one Host header (a mux host template); empty means any.
	Host string

	// Timeout bounds the whole request, every call included; zero means none.
	Timeout time.Duration
	// TimeoutStatus answers a required call that timed out; defaulted to 504.
	TimeoutStatus int
	// MaxConcurrency caps the calls in flight for one request; defaulted to
	// the number of calls (all at once).
	MaxConcurrency int
	// MaxResponseBytes bounds each call's body; a larger body is a system
	// error. Defaulted to DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Balancer is the policy every call picks an instance of its service
	// with, as a route's Balancer; defaulted to round_robin.
	Balancer string
	// AllowWarning lets every call of the aggregate use instances whose
	// Consul checks warn, as a route's AllowWarning.
	AllowWarning bool
	// ForwardHeaders are passed to every call in addition to the built-in
	// set (Authorization, X-Request-Id, traceparent, tracestate), in
	// canonical form; nil means only the built-in set.
	ForwardHeaders []string
	// Policy holds the aggregate's admission policies: RateLimit, JWT and
	// ForwardAuth, applied once per client request before any call. Its
	// upstream fields are unused; each call has its own.
	Policy Policy
	// Calls are the upstream calls in declaration order, which is also the
	// order of the merged body's members; never empty.
	Calls []Call
}

// Call is one upstream call of an Aggregate.
type Call struct {
	// Name is the block label and the member name in the merged body.
	Name string
	// Service is the Consul service called; its instances are picked with
	// the aggregate's Balancer.
	Service string
	// Tag filters the service's instances by Consul tag; empty means any.
	Tag string
	// Path is the request target (path and optional query) with {var}
	// placeholders naming aggregate path variables or query.NAME.
	Path string
	// Required makes the whole response fail when this call fails.
	Required bool
	// Timeout bounds this call alone; zero means only the aggregate's.
	Timeout time.Duration
	// Policy holds the call's upstream protection, as a route's: Retries
	// and CircuitBreaker. Its admission fields are unused.
	Policy Policy
	// Pos is where the call block starts.
	Pos Pos

	// How the call is made (callplan.go).

	// After names the calls this one waits for; its path may then use
	// their answers' values as {call.field}. Empty: it starts at once.
	After []string
	// Method is the call's upper-case method; empty means GET (see
	// CallMethod).
	Method string
	// Body is BodyClient to forward the client's request body; empty
	// sends none.
	Body string
	// Cache lets the call's answers be reused for as long as their
	// Cache-Control allows a shared cache to.
	Cache bool
	// HedgeAfter sends a second copy of the call to another instance
	// when the first has not answered within it; zero: never.
	HedgeAfter time.Duration
}

// DefaultMaxResponseBytes is the per-call body bound when none is set.
const DefaultMaxResponseBytes = 10 << 20

// DefaultTimeoutStatus answers a required call that timed out when the
// aggregate sets no timeout_status.
const DefaultTimeoutStatus = http.StatusGatewayTimeout

// MatchKey identifies what the aggregate matches, comparable with
// Route.MatchKey: a route and an aggregate with equal keys conflict.
func (a *Aggregate) MatchKey() string {
	return (&Route{Host: a.Host, Path: a.Path, Methods: a.Methods}).MatchKey()
}

// aggregateSrc is a decoded aggregate with what validation needs to point
// at the right place.
type aggregateSrc struct {
	Aggregate
	block     *hcl.Block
	attrs     *attrs
	methodPos []Pos
	headerPos []Pos
	calls     []*callSrc
	valid     bool
	mark      int
}

type callSrc struct {
	block    *hcl.Block
	attrs    *attrs
	afterPos []Pos // where each After name is written
}

func decodeAggregate(p *problems, b *hcl.Block) *aggregateSrc {
	ag := &aggregateSrc{block: b, mark: p.mark()}
	a, blocks := decodeBody(p, b, aggregateSpec)
	ag.attrs = a
	ag.Name, ag.SourceKey, ag.Pos = b.Labels[0], p.key, p.pos(b.DefRange)
	ag.Path = a.str(attrPath)
	ag.Methods, ag.methodPos = a.strList(attrMethods)
	ag.Host = a.str(attrHost)
	ag.Timeout = a.duration(attrTimeout)
	ag.TimeoutStatus = a.integer(attrTimeoutStatus)
	ag.MaxConcurrency = a.integer(attrMaxConcurrency)
	ag.MaxResponseBytes = int64(a.integer(attrMaxResponseBytes))
	ag.ForwardHeaders, ag.headerPos = a.strList(attrForwardHeaders)
	ag.Balancer = a.str(attrBalancer)
	ag.AllowWarning = a.boolean(attrAllowWarning)
	decodeAccessPolicy(p, blocks, &ag.Policy)
	for _, cb := range blocks {
		if cb.Type != callSpec.typ {
			continue
		}
		ca, cblocks := decodeBody(p, cb, callSpec)
		call := Call{
			Name: cb.Labels[0], Pos: p.pos(cb.DefRange),
			Service: ca.str(attrService), Tag: ca.str(attrTag), Path: ca.str(attrPath),
			Required: ca.boolean(attrRequired), Timeout: ca.duration(attrTimeout),
		}
		decodeUpstreamPolicy(p, cblocks, ca, &call.Policy, &ag.Policy)
		afterPos := decodeCallExecution(ca, &call)
		ag.Calls = append(ag.Calls, call)
		ag.calls = append(ag.calls, &callSrc{block: cb, attrs: ca, afterPos: afterPos})
	}
	return ag
}

// validateAggregate checks one aggregate's own rules and applies defaults.
func validateAggregate(p *problems, ag *aggregateSrc) {
	a := ag.attrs
	if ag.Name == "" {
		p.addf(p.pos(ag.block.LabelRanges[0]), "%s name must not be empty", aggregateSpec.typ)
	}
	var vars map[string]bool
	switch {
	case !a.has(attrPath):
		p.addf(ag.Pos, "%s %q: missing required attribute %q", aggregateSpec.typ, ag.Name, attrPath)
	case a.ok(attrPath):
		m := p.mark()
		checkTemplate(p, a, attrPath, ag.Path, func(rt *mux.Route) *mux.Route { return rt.Path(ag.Path) })
		if p.clean(m) {
			vars = templateVars(ag.Path)
		}
	}
	if a.ok(attrHost) && checkHost(p, a, ag.Host) && vars != nil {
		for v := range templateVars(ag.Host) {
			vars[v] = true
		}
	}
	if a.ok(attrMethods) {
		ag.Methods = normaliseMethods(p, a, ag.Methods, ag.methodPos)
	}
	switch {
	case !a.has(attrTimeoutStatus):
		ag.TimeoutStatus = DefaultTimeoutStatus
	case a.ok(attrTimeoutStatus) && (ag.TimeoutStatus < 400 || ag.TimeoutStatus > 599):
		p.addf(a.pos(attrTimeoutStatus), "%s must be a 4xx or 5xx status, got %d", attrTimeoutStatus, ag.TimeoutStatus)
	}
	switch {
	case !a.has(attrMaxConcurrency):
		ag.MaxConcurrency = len(ag.Calls)
	case a.ok(attrMaxConcurrency) && ag.MaxConcurrency < 1:
		p.addf(a.pos(attrMaxConcurrency), "%s must be at least 1, got %d", attrMaxConcurrency, ag.MaxConcurrency)
	}
	switch {
	case !a.has(attrMaxResponseBytes):
		ag.MaxResponseBytes = DefaultMaxResponseBytes
	case a.ok(attrMaxResponseBytes) && ag.MaxResponseBytes < 1:
		p.addf(a.pos(attrMaxResponseBytes), "%s must be at least 1, got %d", attrMaxResponseBytes, ag.MaxResponseBytes)
	}
	checkBalancer(p, a, &ag.Balancer)
	for i, h := range ag.ForwardHeaders {
		if !isToken(h) {
			p.addf(ag.headerPos[i], "%s: %q is not a valid header name", attrForwardHeaders, h)
			continue
		}
		ag.ForwardHeaders[i] = textproto.CanonicalMIMEHeaderKey(h)
	}
	if len(ag.Calls) == 0 {
		p.addf(ag.Pos, "%s %q: at least one %q block is required", aggregateSpec.typ, ag.Name, callSpec.typ)
	}
	seen := map[string]Pos{}
	for i := range ag.Calls {
		validateCall(p, ag, &ag.Calls[i], ag.calls[i], vars)
		c := &ag.Calls[i]
		if first, dup := seen[c.Name]; dup {
			p.addf(p.pos(ag.calls[i].block.LabelRanges[0]), "%s name %q already defined at %d:%d", callSpec.typ, c.Name, first.Line, first.Column)
		} else {
			seen[c.Name] = c.Pos
		}
	}
	validatePlan(p, ag)
	ag.valid = p.clean(ag.mark)
}

// validateCall checks one call. vars are the aggregate's template
// variables; nil when the aggregate's own templates are broken, in which
// case placeholders are not checked against them.
func validateCall(p *problems, ag *aggregateSrc, c *Call, src *callSrc, vars map[string]bool) {
	a := src.attrs
	if c.Name == "" {
		p.addf(p.pos(src.block.LabelRanges[0]), "%s name must not be empty", callSpec.typ)
	}
	if c.Name == "errors" {
		p.addf(p.pos(src.block.LabelRanges[0]), "%s name %q is reserved for the merged body's error member", callSpec.typ, c.Name)
	}
	switch {
	case !a.has(attrService):
		p.addf(c.Pos, "%s %q: missing required attribute %q", callSpec.typ, c.Name, attrService)
	case a.ok(attrService) && c.Service == "":
		p.addf(a.pos(attrService), "%s must not be empty", attrService)
	}
	if a.ok(attrTag) {
		checkTag(p, a, c.Tag)
	}
	switch {
	case !a.has(attrPath):
		p.addf(c.Pos, "%s %q: missing required attribute %q", callSpec.typ, c.Name, attrPath)
	case a.ok(attrPath):
		checkCallPath(p, ag, a, c.Path, vars)
	}
	validateCallExecution(p, ag, c, src)
	if a.ok(attrTimeout) && ag.Timeout > 0 && c.Timeout > ag.Timeout {
		p.addf(a.pos(attrTimeout), "%s %v exceeds the %s's %s %v", callSpec.ref(attrTimeout), c.Timeout, aggregateSpec.typ, attrTimeout, ag.Timeout)
	}
}

// checkCallPath requires an absolute path whose placeholders are all
// known, so a typo fails at push time instead of producing "/users/{idd}".
func checkCallPath(p *problems, ag *aggregateSrc, a *attrs, path string, vars map[string]bool) {
	at := a.pos(attrPath)
	if !strings.HasPrefix(path, "/") {
		p.addf(at, "%s must start with \"/\", got %q", attrPath, path)
		return
	}
	names, err := Placeholders(path)
	if err != nil {
		p.addf(at, "%s: %v", attrPath, err)
		return
	}
	for _, n := range names {
		if q, ok := strings.CutPrefix(n, "query."); ok {
			if q == "" {
				p.addf(at, "%s: placeholder {%s} names no query parameter", attrPath, n)
			}
			continue
		}
		if _, _, ok := ag.callRef(n); ok {
			// A value from another call's answer; validatePlan checks it.
			continue
		}
		if vars != nil && !vars[n] {
			known := make([]string, 0, len(vars))
			for v := range vars {
				known = append(known, "{"+v+"}")
			}
			slices.Sort(known)
			p.addf(at, "%s: {%s} is not a variable of the %s's %s (have %s; use {query.NAME} for query parameters)",
				attrPath, n, aggregateSpec.typ, attrPath, strings.Join(append(known, "{query.NAME}"), ", "))
		}
	}
}

// templateVars returns the variable names of a mux template that mux has
// already accepted: the part of each top-level {...} before any ':'.
func templateVars(tpl string) map[string]bool {
	vars := map[string]bool{}
	depth, start := 0, 0
	for i := 0; i < len(tpl); i++ {
		switch tpl[i] {
		case '{':
			if depth == 0 {
				start = i + 1
			}
			depth++
		case '}':
			depth--
			if depth == 0 {
				name, _, _ := strings.Cut(tpl[start:i], ":")
				vars[name] = true
			}
		}
	}
	return vars
}
