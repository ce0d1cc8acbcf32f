package gateway

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/gorilla/mux"

	"github.com/gatewayco/gateway/gateway/config"
)

// matcher finds the handler for a request without trying every route: it
// indexes routes by host and by the first path segment, so a table of
// 10,000 routes costs about what one of 10 does. Templates keep mux's
// semantics, because their regexps are mux's own; only a route with a
// host template is tried linearly (rare in practice). Matching a request
// allocates nothing, except building path variables for an aggregate.
type matcher struct {
	hosts    map[string]*pathIndex // literal hosts, lower case, without port
	hostPats []*matchEntry         // routes with a host template, by rank
	anyHost  *pathIndex            // routes without a host
	notFound http.Handler
	badVerb  http.Handler
}

// pathIndex splits one host's routes by the first path segment every path
// they match starts with; wild holds the routes that cannot be pinned to
// one (a template or a short prefix in the first segment).
type pathIndex struct {
	bySeg map[string][]*matchEntry
	wild  []*matchEntry
}

// matchEntry is one route or aggregate, ready to match.
type matchEntry struct {
	rank    int // position in precedence order: lower wins
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

// newMatcher indexes entries, given in precedence order.
func newMatcher(ordered []matchSpec, notFound, badVerb http.Handler) *matcher {
	m := &matcher{hosts: map[string]*pathIndex{}, anyHost: newPathIndex(), notFound: notFound, badVerb: badVerb}
	for i, s := range ordered {
		e := s.entry(i)
		switch {
		case e.hostRe != nil:
			m.hostPats = append(m.hostPats, e)
		case e.host != "":
			idx := m.hosts[e.host]
			if idx == nil {
				idx = newPathIndex()
				m.hosts[e.host] = idx
			}
			idx.add(e, s.firstSegment())
		default:
			m.anyHost.add(e, s.firstSegment())
		}
	}
	return m
}

func newPathIndex() *pathIndex { return &pathIndex{bySeg: map[string][]*matchEntry{}} }

func (p *pathIndex) add(e *matchEntry, seg string) {
	if seg == "" {
		p.wild = append(p.wild, e)
		return
	}
	p.bySeg[seg] = append(p.bySeg[seg], e)
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
		m.badVerb.ServeHTTP(w, r)
	default:
		m.notFound.ServeHTTP(w, r)
	}
}

// match returns the entry serving r, or nil and whether some entry
// matched everything but the method.
func (m *matcher) match(r *http.Request) (*matchEntry, bool) {
	host := hostOnly(r.Host)
	path := r.URL.Path
	seg := firstSegment(path)
	badMethod := false
	var a, b []*matchEntry
	if idx := m.hosts[host]; idx != nil {
		a, b = idx.bySeg[seg], idx.wild
	}
	// Host-bound entries outrank host-less ones, so literal hosts and host
	// templates are tried, merged by rank, before the rest.
	if e := pick3(a, b, m.hostPats, r, host, path, &badMethod); e != nil {
		return e, false
	}
	if e := pick3(m.anyHost.bySeg[seg], m.anyHost.wild, nil, r, host, path, &badMethod); e != nil {
		return e, false
	}
	return nil, badMethod
}

// pick3 walks three rank-sorted lists in merged rank order and returns
// the first entry that matches.
func pick3(a, b, c []*matchEntry, r *http.Request, host, path string, badMethod *bool) *matchEntry {
	for len(a)+len(b)+len(c) > 0 {
		var e *matchEntry
		switch {
		case len(a) > 0 && (len(b) == 0 || a[0].rank < b[0].rank) && (len(c) == 0 || a[0].rank < c[0].rank):
			e, a = a[0], a[1:]
		case len(b) > 0 && (len(c) == 0 || b[0].rank < c[0].rank):
			e, b = b[0], b[1:]
		default:
			e, c = c[0], c[1:]
		}
		if e.matches(r, host, path, badMethod) {
			return e
		}
	}
	return nil
}

func (e *matchEntry) matches(r *http.Request, host, path string, badMethod *bool) bool {
	if e.hostRe != nil {
		var rm mux.RouteMatch
		if !e.hostRe.Match(r, &rm) {
			return false
		}
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

// hostOnly lower-cases the Host header and drops its port, as host
// matching in mux ignores the port when the template has none.
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	for i := 0; i < len(h); i++ {
		if 'A' <= h[i] && h[i] <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// firstSegment is the path's first segment: "api" for "/api/users".
func firstSegment(path string) string {
	if len(path) < 2 {
		return ""
	}
	rest := path[1:]
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[:i]
	}
	return rest
}

// matchSpec is what the table builder hands the matcher for one entry.
type matchSpec struct {
	match     config.Route // Host, Path or PathPrefix, Methods
	h         http.Handler
	needsVars bool // aggregates read mux.Vars
}

// firstSegment is the segment every path this entry matches starts with,
// or "" when that is not fixed.
func (s matchSpec) firstSegment() string {
	p := s.match.Path
	if p == "" {
		p = s.match.PathPrefix
	}
	if len(p) < 2 {
		return ""
	}
	rest := p[1:]
	i := strings.IndexByte(rest, '/')
	seg := rest
	if i >= 0 {
		seg = rest[:i]
	} else if s.match.Path == "" {
		// A prefix ending inside its first segment ("/ap") also
		// matches "/apx": not pinned.
		return ""
	}
	if strings.ContainsAny(seg, "{}") {
		return ""
	}
	return seg
}

func (s matchSpec) entry(rank int) *matchEntry {
	c := &s.match
	e := &matchEntry{rank: rank, methods: c.Methods, h: s.h, prefix: c.Path == ""}
	tpl := c.Path
	if e.prefix {
		tpl = c.PathPrefix
	}
	if strings.Contains(tpl, "{") {
		r := mux.NewRouter().NewRoute()
		if e.prefix {
			r.PathPrefix(tpl)
		} else {
			r.Path(tpl)
		}
		if src, err := r.GetPathRegexp(); err == nil {
			e.re = regexp.MustCompile(src)
		}
	}
	e.literal = tpl
	switch {
	case strings.ContainsAny(c.Host, "{:"):
		// Templates, and hosts with a port, keep mux's exact rules.
		e.hostRe = mux.NewRouter().NewRoute().Host(c.Host)
	case c.Host != "":
		e.host = strings.ToLower(c.Host)
	}
	if s.needsVars {
		v := mux.NewRouter().NewRoute()
		if c.Host != "" {
			v = v.Host(c.Host)
		}
		if e.prefix {
			v = v.PathPrefix(tpl)
		} else {
			v = v.Path(tpl)
		}
		e.vars = v
	}
	return e
}
