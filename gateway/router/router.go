// Package router turns a request into the handler that serves it: it
// brings the request into the one spelling the gateway routes on
// (Normalize), then finds the first route that matches it in precedence
// order, through an index that costs the same for ten routes as for ten
// thousand (New). What a route does once matched is the caller's: the
// router only holds handlers.
package router

import (
	"net/http"
	"sort"
	"strings"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
)

// Spec is one entry of a routing table: what it matches and what serves
// it.
type Spec struct {
	// Match gives the host, the path or path prefix, the methods and
	// whether the path matches in any case; Name breaks ties in
	// precedence, and the rest is not read.
	Match config.Route
	// Handler serves the requests the entry matches.
	Handler http.Handler
	// Vars makes the router extract the path template's variables for
	// the handler, which reads them with mux.Vars (aggregates do).
	Vars bool
}

// New returns the handler that serves each request with the first entry
// of specs, in precedence order (see moreSpecific), that matches it; a
// request only the method of some entry failed gets 405, any other 404,
// both as the gateway's JSON errors. Requests must have been through
// Normalize. The returned handler is immutable and safe for concurrent
// use; specs is not kept.
func New(specs []Spec) http.Handler { return build(specs, nil) }

// build is New taking compiled parts from c (nil: none kept).
func build(specs []Spec, c *Cache) http.Handler {
	// Sorting positions rather than the specs themselves: a Spec holds a
	// whole config.Route, and moving those around was a sixth of a
	// rebuild at 1,000 routes.
	pos := make([]int, len(specs))
	for i := range pos {
		pos[i] = i
	}
	sort.SliceStable(pos, func(i, j int) bool { return moreSpecific(&specs[pos[i]].Match, &specs[pos[j]].Match) })
	ordered := make([]Spec, len(specs))
	for k, i := range pos {
		ordered[k] = specs[i]
	}
	return newMatcher(ordered, c, http.HandlerFunc(notFound), http.HandlerFunc(methodNotAllowed))
}

// moreSpecific orders routes the way Traefik and Fabio users expect: a
// route bound to a host beats one that is not, an exact path template beats
// a prefix, a longer prefix beats a shorter one, and a route restricted to
// methods beats one that takes any method.
func moreSpecific(a, b *config.Route) bool {
	if (a.Host != "") != (b.Host != "") {
		return a.Host != ""
	}
	if (a.Path != "") != (b.Path != "") {
		return a.Path != ""
	}
	pa, pb := a.Path+a.PathPrefix, b.Path+b.PathPrefix
	if len(pa) != len(pb) {
		return len(pa) > len(pb)
	}
	if (len(a.Methods) > 0) != (len(b.Methods) > 0) {
		return len(a.Methods) > 0
	}
	return strings.Compare(a.Name, b.Name) < 0
}

func notFound(w http.ResponseWriter, r *http.Request) {
	exchange.WriteError(w, http.StatusNotFound, exchange.MsgNoRoute, "")
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	exchange.WriteError(w, http.StatusMethodNotAllowed, exchange.MsgMethodNotAllowed, "")
}
