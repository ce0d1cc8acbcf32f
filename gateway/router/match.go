package router

import (
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/gatewayco/gateway/gateway/config"
)

// matcher finds the handler for a request without trying every route: it
// indexes routes by host and by the first path segment, so a table of
// 10,000 routes costs about what one of 10 does. Templates keep mux's
// semantics, because their regexps are mux's own; only a route with a
// host template is tried linearly (rare in practice). Matching a request
// allocates nothing, except building path variables for an aggregate and
// folding a path that is not lower-case ASCII when some route is
// case-insensitive.
type matcher struct {
	hosts    map[string]*pathIndex // literal hosts, canonical, without port
	hostPats []*matchEntry         // routes with a host template, by rank
	anyHost  *pathIndex            // routes without a host
	// fold is set when some entry is case-insensitive: only then is the
	// request path folded, so tables without such routes pay nothing.
	fold     bool
	notFound http.Handler
	badVerb  http.Handler
}

// pathIndex is a trie over literal path segments: an entry sits at the
// node of the literal segments every path it matches starts with, so a
// lookup only tries the entries on the request path's own branch, however
// many routes share a first segment such as /api.
type pathIndex struct {
	root segNode
	// folded indexes the case-insensitive entries by folded segments; a
	// lookup walks it with the folded request path.
	folded segNode
}

type segNode struct {
	children map[string]*segNode
	entries  []*matchEntry // by rank
}

// matchEntry is one route or aggregate, ready to match.
type matchEntry struct {
	rank    int  // position in precedence order: lower wins
	fold    bool // case-insensitive path: literal folded, re with (?i)
	host    string
	hostRe  *mux.Route // host template, matched through mux
	literal string     // path or prefix without variables
	re      *regexp.Regexp
	prefix  bool
	methods []string
	h       http.Handler
	// vars is set for aggregates, which read path variables with
	// mux.Vars: a mux route able to extract them.
	vars *mux.Route
}

// newMatcher indexes entries, given in precedence order, taking their
// compiled parts from c (nil: compile every one).
func newMatcher(ordered []Spec, c *Cache, notFound, badVerb http.Handler) *matcher {
	m := &matcher{hosts: map[string]*pathIndex{}, anyHost: newPathIndex(), notFound: notFound, badVerb: badVerb}
	for i, s := range ordered {
		e := s.entry(i, c)
		m.fold = m.fold || e.fold
		switch {
		case e.hostRe != nil:
			m.hostPats = append(m.hostPats, e)
		case e.host != "":
			idx := m.hosts[e.host]
			if idx == nil {
				idx = newPathIndex()
				m.hosts[e.host] = idx
			}
			idx.add(e, s.literalSegments())
		default:
			m.anyHost.add(e, s.literalSegments())
		}
	}
	return m
}

func newPathIndex() *pathIndex { return &pathIndex{} }

func (p *pathIndex) add(e *matchEntry, segs []string) {
	n := &p.root
	if e.fold {
		n = &p.folded
	}
	for _, s := range segs {
		if e.fold {
			s = config.FoldCase(s)
		}
		if n.children == nil {
			n.children = map[string]*segNode{}
		}
		c := n.children[s]
		if c == nil {
			c = &segNode{}
			n.children[s] = c
		}
		n = c
	}
	n.entries = append(n.entries, e)
}

// maxDepth bounds the candidate lists a lookup keeps on the stack: the
// root, up to maxDepth-2 segments, and the host templates; twice as many
// less one when some entry is case-insensitive (both tries of an index).
// Entries are never placed deeper (see literalSegments), so every entry is
// reachable.
const maxDepth = 16

// candidates stores in lists, from index k on, the entry lists on the
// branches of path (and of folded, its folded form, in the folded trie) and
// returns the new count.
func (p *pathIndex) candidates(path, folded string, lists [][]*matchEntry, k int) int {
	k = walk(&p.root, path, lists, k)
	if folded != "" && (p.folded.children != nil || len(p.folded.entries) > 0) {
		k = walk(&p.folded, folded, lists, k)
	}
	return k
}

// walk stores in lists the entry lists of the nodes on path's branch.
func walk(n *segNode, path string, lists [][]*matchEntry, k int) int {
	if len(n.entries) > 0 && k < len(lists) {
		lists[k] = n.entries
		k++
	}
	for rest := path; len(rest) > 1 && n.children != nil && k < len(lists); {
		rest = rest[1:]
		end := strings.IndexByte(rest, '/')
		seg := rest
		if end >= 0 {
			seg = rest[:end]
		}
		n = n.children[seg]
		if n == nil {
			break
		}
		if len(n.entries) > 0 {
			lists[k] = n.entries
			k++
		}
		if end < 0 {
			break
		}
		rest = rest[end:]
	}
	return k
}

// ServeHTTP serves r with the first matching entry, or answers 405 when
// only the method differed, or 404.
func (m *matcher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e, badMethod := m.match(r)
	switch {
	case e != nil:
		if e.vars != nil {
			var rm mux.RouteMatch
			if e.vars.Match(r, &rm) {
				r = mux.SetURLVars(r, rm.Vars)
			}
		}
		e.h.ServeHTTP(w, r)
	case badMethod:
		// RFC 9110 requires a 405 to name the methods the target takes.
		w.Header().Set("Allow", strings.Join(m.allowed(r), ", "))
		m.badVerb.ServeHTTP(w, r)
	default:
		m.notFound.ServeHTTP(w, r)
	}
}

// match returns the entry serving r, or nil and whether some entry
// matched everything but the method. r.Host must be canonical (see
// canonicalHost), as Normalize makes it.
func (m *matcher) match(r *http.Request) (*matchEntry, bool) {
	if m.fold {
		var lists [2 * maxDepth][]*matchEntry
		return m.matchIn(r, config.FoldCase(r.URL.Path), lists[:])
	}
	var lists [maxDepth][]*matchEntry
	return m.matchIn(r, "", lists[:])
}

// matchIn is match with folded, the folded path ("" when no entry is
// case-insensitive), and room on the caller's stack for candidate lists.
func (m *matcher) matchIn(r *http.Request, folded string, lists [][]*matchEntry) (*matchEntry, bool) {
	host := hostOnly(r.Host)
	path := r.URL.Path
	badMethod := false
	// Host-bound entries outrank host-less ones, so the literal host's
	// branch and the host templates are tried, merged by rank, first.
	k := 0
	if idx := m.hosts[host]; idx != nil {
		k = idx.candidates(path, folded, lists, 0)
	}
	if len(m.hostPats) > 0 && k < len(lists) {
		lists[k] = m.hostPats
		k++
	}
	if e := pickFirst(lists[:k], r, path, folded, &badMethod); e != nil {
		return e, false
	}
	k = m.anyHost.candidates(path, folded, lists, 0)
	if e := pickFirst(lists[:k], r, path, folded, &badMethod); e != nil {
		return e, false
	}
	return nil, badMethod
}

// pickFirst walks rank-sorted lists in merged rank order and returns the
// first entry that matches. It consumes the lists.
func pickFirst(lists [][]*matchEntry, r *http.Request, path, folded string, badMethod *bool) *matchEntry {
	for {
		best := -1
		for i, l := range lists {
			if len(l) > 0 && (best < 0 || l[0].rank < lists[best][0].rank) {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		e := lists[best][0]
		lists[best] = lists[best][1:]
		if e.matches(r, path, folded, badMethod) {
			return e
		}
	}
}

func (e *matchEntry) matches(r *http.Request, path, folded string, badMethod *bool) bool {
	if !e.matchesTarget(r, path, folded) {
		return false
	}
	if len(e.methods) == 0 {
		return true
	}
	for _, m := range e.methods {
		if m == r.Method {
			return true
		}
	}
	*badMethod = true
	return false
}

// allowed lists, sorted and without repeats, the methods of the entries
// matching r's host and path. Only a 405 calls it, so the second
// walk costs nothing on a matched request.
func (m *matcher) allowed(r *http.Request) []string {
	folded := ""
	if m.fold {
		folded = config.FoldCase(r.URL.Path)
	}
	var lists [2 * maxDepth][]*matchEntry
	k := 0
	if idx := m.hosts[hostOnly(r.Host)]; idx != nil {
		k = idx.candidates(r.URL.Path, folded, lists[:], 0)
	}
	if len(m.hostPats) > 0 && k < len(lists) {
		lists[k] = m.hostPats
		k++
	}
	k = m.anyHost.candidates(r.URL.Path, folded, lists[:], k)
	var out []string
	for _, l := range lists[:k] {
		for _, e := range l {
			if !e.matchesTarget(r, r.URL.Path, folded) {
				continue
			}
			out = append(out, e.methods...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// matchesTarget reports whether e matches r's host and path, whatever the
// method.
func (e *matchEntry) matchesTarget(r *http.Request, path, folded string) bool {
	if e.hostRe != nil {
		// r.Host is canonical, so in lower case: templates, like literal
		// hosts, match names case-insensitively (RFC 9110).
		var rm mux.RouteMatch
		if !e.hostRe.Match(r, &rm) {
			return false
		}
	}
	if e.fold && e.re == nil {
		// The literal is folded too; a template's regexp is compiled
		// case-insensitive and reads the path as sent, so its variables'
		// patterns keep their meaning.
		path = folded
	}
	switch {
	case e.re != nil:
		if !e.re.MatchString(path) {
			return false
		}
	case e.prefix:
		if !strings.HasPrefix(path, e.literal) {
			return false
		}
	default:
		if path != e.literal {
			return false
		}
	}
	return true
}

// hostOnly drops the port of a canonical Host, as host matching in mux
// ignores the port when the template has none. Canonical hosts are in
// lower case: unlike mux, which compares hosts case-sensitively, the
// gateway follows RFC 9110, so API.Example.com is the route for
// api.example.com. Write host templates in lower case.
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	return h
}

// literalSegments are the whole segments every path this entry matches
// starts with: "/api/users/{id}" gives api, users; the prefix "/api/us"
// gives only api, since it also matches "/api/usx".
func (s Spec) literalSegments() []string {
	p, prefix := s.Match.Path, false
	if p == "" {
		p, prefix = s.Match.PathPrefix, true
	}
	var segs []string
	for rest := p; len(rest) > 1; {
		rest = rest[1:]
		end := strings.IndexByte(rest, '/')
		if end < 0 {
			if !prefix && !strings.ContainsAny(rest, "{}") {
				segs = append(segs, rest)
			}
			break
		}
		seg := rest[:end]
		if strings.ContainsAny(seg, "{}") {
			break
		}
		segs = append(segs, seg)
		rest = rest[end:]
	}
	if len(segs) > maxDepth-2 {
		segs = segs[:maxDepth-2]
	}
	return segs
}

func (s Spec) entry(rank int, cache *Cache) *matchEntry {
	c := &s.Match
	e := &matchEntry{rank: rank, methods: c.Methods, h: s.Handler, prefix: c.Path == "", fold: c.CaseInsensitive}
	tpl := c.Path
	if e.prefix {
		tpl = c.PathPrefix
	}
	e.literal = tpl
	if e.fold {
		e.literal = config.FoldCase(tpl)
	}
	host := routeHost(c.Host)
	if !strings.ContainsAny(host, "{:") {
		e.host = host
	}
	p := cache.compiled(compileKey{host: host, tpl: tpl, prefix: e.prefix, fold: e.fold, vars: s.Vars})
	e.re, e.hostRe, e.vars = p.re, p.hostRe, p.vars
	return e
}

// compile builds the parts of an entry that cost regexp compilations:
// the path template's regexp, the host template's mux route and the mux
// route that extracts an aggregate's variables. They are immutable once
// built, so tables built one after another can share them.
func compile(k compileKey) *compiled {
	p := &compiled{}
	if strings.Contains(k.tpl, "{") {
		r := mux.NewRouter().NewRoute()
		if k.prefix {
			r.PathPrefix(k.tpl)
		} else {
			r.Path(k.tpl)
		}
		if src, err := r.GetPathRegexp(); err == nil {
			if k.fold {
				src = "(?i)" + src
			}
			p.re = regexp.MustCompile(src)
		}
	}
	if strings.ContainsAny(k.host, "{:") {
		// Templates, and hosts with a port, keep mux's exact rules.
		p.hostRe = mux.NewRouter().NewRoute().Host(k.host)
	}
	if k.vars {
		v := mux.NewRouter().NewRoute()
		if k.host != "" {
			v = v.Host(k.host)
		}
		if k.prefix {
			v = v.PathPrefix(k.tpl)
		} else {
			v = v.Path(k.tpl)
		}
		p.vars = v
	}
	return p
}
