package router

import (
	"net/http"
	"regexp"

	"github.com/gorilla/mux"
)

// Cache carries the compiled parts of entries (path regexps, host
// templates, variable extraction) from one table to the next, so a
// rebuild after a health change, which leaves every route's match as it
// was, compiles nothing: compiling templates was most of the cost of
// indexing 1,000 routes. It holds only what the last New used, so it never
// grows past the current table. A Cache is for one writer (the
// controller's builder); the handlers it helps build are shared as any
// are, since what it keeps is immutable once compiled.
type Cache struct {
	last map[compileKey]*compiled // what the last finished New used
	next map[compileKey]*compiled // what the New under way uses
}

// compileKey is everything an entry's compiled parts depend on.
type compileKey struct {
	host, tpl    string // host as routed on (routeHost), path or prefix
	prefix, fold bool
	vars         bool
}

// compiled is one entry's compiled parts; each nil when not needed.
type compiled struct {
	re     *regexp.Regexp
	hostRe *mux.Route
	vars   *mux.Route
}

// NewCache returns an empty Cache.
func NewCache() *Cache { return &Cache{} }

// New is the package's New reusing the parts compiled for the last table
// New built with c. A New that panics leaves c as the last one that
// finished left it.
func (c *Cache) New(specs []Spec) http.Handler {
	c.next = make(map[compileKey]*compiled, len(c.last))
	h := build(specs, c)
	c.last, c.next = c.next, nil
	return h
}

// compiled returns k's parts, compiling them only when the last table
// had none; a nil c compiles every time.
func (c *Cache) compiled(k compileKey) *compiled {
	if c == nil {
		return compile(k)
	}
	if p := c.next[k]; p != nil {
		return p
	}
	p := c.last[k]
	if p == nil {
		p = compile(k)
	}
	c.next[k] = p
	return p
}
