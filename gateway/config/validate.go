package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

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
				p.addf(r.labelPos(p), "%s name %q already defined at %d:%d", routeSpec.typ, r.Name, first.Pos.Line, first.Pos.Column)
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
			p.addf(r.Pos, "%s %q matches the same requests as %s %q at %d:%d",
				routeSpec.typ, r.Name, routeSpec.typ, first.Name, first.Pos.Line, first.Pos.Column)
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
		p.addf(r.labelPos(p), "%s name must not be empty", routeSpec.typ)
	}

	switch {
	case a.has(attrService) && r.Splits != nil:
		p.addf(a.pos(attrService), "only one of %q and %s blocks may be set", attrService, splitSpec.typ)
	case r.Splits != nil:
		if a.has(attrTag) {
			p.addf(a.pos(attrTag), "%s goes inside each %s block on a route with splits", attrTag, splitSpec.typ)
		}
		// A split route picks a destination before any instance: a sticky
		// cookie or a mirror of one destination would be silently unused.
		if r.Sticky != nil {
			p.addf(r.Sticky.Pos, "%s is not supported on a route with %s blocks", stickySpec.typ, splitSpec.typ)
		}
		for _, m := range r.Mirrors {
			p.addf(m.Pos, "%s is not supported on a route with %s blocks", mirrorSpec.typ, splitSpec.typ)
		}
	case !a.has(attrService):
		p.addf(r.Pos, "%s %q: missing required attribute %q", routeSpec.typ, r.Name, attrService)
	case a.ok(attrService) && r.Service == "":
		p.addf(a.pos(attrService), "%s must not be empty", attrService)
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
		p.addf(r.Pos, "%s %q: one of %q or %q is required", routeSpec.typ, r.Name, attrPath, attrPathPrefix)
	case a.ok(attrPath):
		checkTemplate(p, a, attrPath, r.Path, func(rt *mux.Route) *mux.Route { return rt.Path(r.Path) })
	case a.ok(attrPathPrefix):
		checkTemplate(p, a, attrPathPrefix, r.PathPrefix, func(rt *mux.Route) *mux.Route { return rt.PathPrefix(r.PathPrefix) })
	}

	hostOK := a.ok(attrHost) && checkHost(p, a, r.Host)
	if r.ACME {
		checkACMEHost(p, a, r.Host, hostOK)
	}

	if a.ok(attrMethods) {
		r.Methods = normaliseMethods(p, a, r.Methods, r.methodPos)
	}

	if a.ok(attrTag) {
		checkTag(p, a, r.Tag)
	}
	if a.ok(attrStripPrefix) && !strings.HasPrefix(r.StripPrefix, "/") {
		p.addf(a.pos(attrStripPrefix), "%s must start with \"/\", got %q", attrStripPrefix, r.StripPrefix)
	}

	checkBalancer(p, a, &r.Balancer)
	checkProtocol(p, r)
	checkIdleTimeout(p, a, &r.IdleTimeout)
	checkDatacenters(p, r)

	r.valid = p.clean(r.mark)
}

// MaxIdleTimeout bounds a route's idle_timeout: a document cannot make a
// dead tunnel hold its connection slot for days.
const MaxIdleTimeout = 24 * time.Hour

// checkIdleTimeout bounds a route's idle_timeout; unset stays zero, which
// the proxy reads as DefaultIdleTimeout.
func checkIdleTimeout(p *problems, a *attrs, d *time.Duration) {
	if a.ok(attrIdleTimeout) && *d > MaxIdleTimeout {
		p.addf(a.pos(attrIdleTimeout), "%s must be at most %v, got %v", attrIdleTimeout, MaxIdleTimeout, *d)
	}
}

// checkHost applies the rules of a host attribute read cleanly from a
// (a route's or an aggregate's) and reports whether they hold.
func checkHost(p *problems, a *attrs, host string) bool {
	if host == "" {
		p.addf(a.pos(attrHost), "%s must not be empty (omit it to match any host)", attrHost)
		return false
	}
	if err := muxError(func(rt *mux.Route) *mux.Route { return rt.Host(host) }); err != nil {
		p.addf(a.pos(attrHost), "%s: invalid template %q: %v", attrHost, host, err)
		return false
	}
	return true
}

// checkTag applies the rule of a tag attribute read cleanly from a (a
// route's or a call's).
func checkTag(p *problems, a *attrs, tag string) {
	if tag == "" {
		p.addf(a.pos(attrTag), "%s must not be empty (omit it to use every instance)", attrTag)
	}
}

// checkBalancer defaults the balancer of a route or an aggregate, whose
// attributes are a, or checks it names one of balancer.Names.
func checkBalancer(p *problems, a *attrs, name *string) {
	switch {
	case !a.has(attrBalancer):
		*name = balancer.RoundRobin
	case a.ok(attrBalancer) && !slices.Contains(balancer.Names, *name):
		p.addf(a.pos(attrBalancer), "unknown %s %q (want one of %s)", attrBalancer, *name, strings.Join(balancer.Names, ", "))
	}
}

// checkTemplate applies the rules shared by a route's path and path_prefix
// and an aggregate's path: a leading slash (mux would accept a relative
// template that can never match) and a template mux can compile.
func checkTemplate(p *problems, a *attrs, name attr, tpl string, set func(*mux.Route) *mux.Route) {
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

// normaliseMethods upper-cases and de-duplicates the methods attribute
// read cleanly from a, at holding each element's position, keeping first
// occurrences in order. Methods are case-sensitive on the wire, but a
// lower-case method in a document is a typo, not an intent to match "get".
func normaliseMethods(p *problems, a *attrs, methods []string, at []Pos) []string {
	if len(methods) == 0 {
		p.addf(a.pos(attrMethods), "%s must not be empty (omit it to allow any method)", attrMethods)
		return nil
	}
	out := make([]string, 0, len(methods))
	for i, m := range methods {
		if !isToken(m) {
			p.addf(at[i], "%s: %q is not a valid HTTP method", attrMethods, m)
			continue
		}
		m = strings.ToUpper(m)
		if !slices.Contains(KnownMethods, m) {
			p.addf(at[i], "%s: %q is not an HTTP method (known: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, CONNECT, TRACE, QUERY and the WebDAV ones of the IANA registry)", attrMethods, methods[i])
			continue
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// KnownMethods are the methods a route may name: those of the IANA HTTP
// Method Registry (RFC 9110, PATCH, QUERY, WebDAV and its extensions),
// less PRI, which is HTTP/2's connection preface and never a request. Any
// token is a valid method on the wire, but a name outside the registry in
// a document is a typo ("GTE") that would make the route match nothing.
var KnownMethods = []string{
	"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY",
	"ACL", "BASELINE-CONTROL", "BIND", "CHECKIN", "CHECKOUT", "COPY", "LABEL", "LINK", "LOCK",
	"MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL", "MKREDIRECTREF", "MKWORKSPACE", "MOVE",
	"ORDERPATCH", "PROPFIND", "PROPPATCH", "REBIND", "REPORT", "SEARCH", "UNBIND", "UNCHECKOUT",
	"UNLINK", "UNLOCK", "UPDATE", "UPDATEREDIRECTREF", "VERSION-CONTROL",
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

// checkProtocol checks a route's protocol (empty is http) and that an
// upstream_tls block only appears where TLS is spoken: on any other
// protocol it would be silently ignored, and the operator would believe
// the traffic verified.
func checkProtocol(p *problems, r *routeSrc) {
	a := r.attrs
	switch {
	case a.ok(attrProtocol) && !slices.Contains(Protocols, r.Protocol):
		p.addf(a.pos(attrProtocol), "%s must be one of %s, got %q", attrProtocol, strings.Join(Protocols, ", "), r.Protocol)
		return
	}
	if r.UpstreamTLS != nil && r.Protocol != ProtocolHTTPS {
		p.addf(r.UpstreamTLS.Pos, "%s needs %s = %q", upstreamTLSSpec.typ, attrProtocol, ProtocolHTTPS)
	}
	checkConnect(p, r)
}

// checkConnect refuses what a connect route cannot honour: the mesh
// speaks its own mTLS (so no other protocol or upstream_tls), and the
// SPIFFE identity checked names one service of the local datacenter (so
// no splits, datacenter or failover, which would need mesh gateways).
func checkConnect(p *problems, r *routeSrc) {
	a := r.attrs
	if !r.Connect {
		return
	}
	at := a.pos(attrConnect)
	switch {
	case r.Protocol != "" && r.Protocol != ProtocolHTTP:
		p.addf(at, "%s = true needs %s = %q (the mesh speaks its own mTLS)", attrConnect, attrProtocol, ProtocolHTTP)
	case r.Splits != nil:
		p.addf(at, "%s = true cannot be used with %s blocks", attrConnect, splitSpec.typ)
	case r.Datacenter != "" || r.Failover != nil:
		p.addf(at, "%s = true reaches the local datacenter only (no %s or %s)", attrConnect, attrDatacenter, failoverSpec.typ)
	}
}
