package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/gatewayco/gateway/balancer"
)

// validateDocument applies every per-route rule, then the rules that span
// routes of one document. Cross-document rules live in Resolve.
func validateDocument(p *problems, routes []*routeSrc) {
	for _, r := range routes {
		validateRoute(p, r)
	}

	names := map[string]*routeSrc{}
	matchers := map[string]*routeSrc{}
	for _, r := range routes {
		if r.Name != "" {
			if first, dup := names[r.Name]; dup {
				p.addf(r.labelPos(p), "route name %q already defined at %d:%d", r.Name, first.Pos.Line, first.Pos.Column)
			} else {
				names[r.Name] = r
			}
		}
		// An invalid route's matcher is partly zero values; comparing it
		// would report phantom conflicts.
		if !r.valid {
			continue
		}
		key := r.MatchKey()
		if first, dup := matchers[key]; dup {
			p.addf(r.Pos, "route %q matches the same requests as route %q at %d:%d",
				r.Name, first.Name, first.Pos.Line, first.Pos.Column)
			continue
		}
		matchers[key] = r
	}
}

// validateRoute checks one route's own rules and applies defaults. Rules on
// an attribute run only when it was read cleanly, so one mistake is reported
// once rather than as a cascade.
func validateRoute(p *problems, r *routeSrc) {
	a := r.attrs
	if r.Name == "" {
		p.addf(r.labelPos(p), "route name must not be empty")
	}

	switch {
	case !a.has(attrService):
		p.addf(r.Pos, "route %q: missing required attribute %q", r.Name, attrService)
	case a.ok(attrService) && r.Service == "":
		p.addf(a.pos(attrService), "service must not be empty")
	}

	switch hasPath, hasPrefix := a.has(attrPath), a.has(attrPathPrefix); {
	case hasPath && hasPrefix:
		// Point at whichever comes second: that is the one added by mistake.
		later := a.pos(attrPath)
		if before(later, a.pos(attrPathPrefix)) {
			later = a.pos(attrPathPrefix)
		}
		p.addf(later, "only one of %q and %q may be set", attrPath, attrPathPrefix)
	case !hasPath && !hasPrefix:
		p.addf(r.Pos, "route %q: one of %q or %q is required", r.Name, attrPath, attrPathPrefix)
	case a.ok(attrPath):
		checkTemplate(p, a, attrPath, r.Path, func(rt *mux.Route) *mux.Route { return rt.Path(r.Path) })
	case a.ok(attrPathPrefix):
		checkTemplate(p, a, attrPathPrefix, r.PathPrefix, func(rt *mux.Route) *mux.Route { return rt.PathPrefix(r.PathPrefix) })
	}

	if a.ok(attrHost) {
		if r.Host == "" {
			p.addf(a.pos(attrHost), "host must not be empty (omit it to match any host)")
		} else if err := muxError(func(rt *mux.Route) *mux.Route { return rt.Host(r.Host) }); err != nil {
			p.addf(a.pos(attrHost), "host: invalid template %q: %v", r.Host, err)
		}
	}

	if a.ok(attrMethods) {
		r.Methods = normaliseMethods(p, r.Methods, r.methodPos, a.pos(attrMethods))
	}

	if a.ok(attrTag) && r.Tag == "" {
		p.addf(a.pos(attrTag), "tag must not be empty (omit it to use every instance)")
	}
	if a.ok(attrStripPrefix) && !strings.HasPrefix(r.StripPrefix, "/") {
		p.addf(a.pos(attrStripPrefix), "strip_prefix must start with \"/\", got %q", r.StripPrefix)
	}

	switch {
	case !a.has(attrBalancer):
		r.Balancer = balancer.RoundRobin
	case a.ok(attrBalancer) && !slices.Contains(balancer.Names, r.Balancer):
		p.addf(a.pos(attrBalancer), "unknown balancer %q (want one of %s)", r.Balancer, strings.Join(balancer.Names, ", "))
	}

	r.valid = p.clean(r.mark)
}

// checkTemplate applies the rules shared by path and path_prefix: a leading
// slash (mux would accept a relative template that can never match) and a
// template mux can compile.
func checkTemplate(p *problems, a *attrs, name, tpl string, set func(*mux.Route) *mux.Route) {
	if !strings.HasPrefix(tpl, "/") {
		p.addf(a.pos(name), "%s must start with \"/\", got %q", name, tpl)
		return
	}
	if err := muxError(set); err != nil {
		p.addf(a.pos(name), "%s: invalid template %q: %v", name, tpl, err)
	}
}

// muxError compiles a matcher on a throwaway router, exactly as the gateway
// will, so a document accepted here never fails when the table is built.
func muxError(set func(*mux.Route) *mux.Route) (err error) {
	// mux panics instead of returning an error for a capturing group in a
	// variable's pattern ("/u/{id:(a|b)}"); a document written to Consul
	// must never be able to crash the gateway.
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%v", v)
		}
	}()
	return set(mux.NewRouter().NewRoute()).GetError()
}

// normaliseMethods upper-cases and de-duplicates methods, keeping first
// occurrences in order. Methods are case-sensitive on the wire, but a
// lower-case method in a document is a typo, not an intent to match "get".
func normaliseMethods(p *problems, methods []string, at []Pos, whole Pos) []string {
	if len(methods) == 0 {
		p.addf(whole, "methods must not be empty (omit it to allow any method)")
		return nil
	}
	out := make([]string, 0, len(methods))
	for i, m := range methods {
		if !isToken(m) {
			p.addf(at[i], "methods: %q is not a valid HTTP method", m)
			continue
		}
		m = strings.ToUpper(m)
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// isToken reports whether s is an RFC 9110 token, the grammar of a method.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// before reports whether a comes before b in the document.
func before(a, b Pos) bool {
	return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
}
