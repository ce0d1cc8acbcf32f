package router

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/gatewayco/gateway/gateway/config"
)

// rankHandler answers with its entry's rank, so both matchers can be
// compared on which entry they chose.
type rankHandler int

func (h rankHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fmt.Fprint(w, int(h))
}

// TestMatcherAgreesWithMux checks the index against the reference it
// replaces: mux trying every route in precedence order. Random tables and
// requests are drawn from a small vocabulary so that they collide often.
//
// The chosen route must be mux's. When no route matches, the answer is
// 405 exactly when some route matched host and path but not the method,
// else 404. That is checked against its own oracle rather than mux,
// because mux 1.8.1 forgets a method mismatch whenever any matcher of a
// later, unrelated route succeeds, so its 404-or-405 depends on routes
// that have nothing to do with the request.
func TestMatcherAgreesWithMux(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	segs := []string{"api", "users", "v1", "items", "a", "ap"}
	hosts := []string{"", "", "a.example.com", "b.example.com", "{sub}.c.example.com"}
	methods := [][]string{nil, nil, {"GET"}, {"POST"}, {"GET", "PUT"}}
	randPath := func(vars bool) string { return randomPath(rng, segs, vars) }
	for table := range 200 {
		var specs []Spec
		for i := range 1 + rng.IntN(30) {
			c := config.Route{Name: fmt.Sprint(i), Host: hosts[rng.IntN(len(hosts))], Methods: methods[rng.IntN(len(methods))]}
			p := randPath(true)
			if rng.IntN(2) == 0 {
				c.Path = p
			} else {
				c.PathPrefix = strings.TrimSuffix(p, "/") + []string{"", "/", "s"}[rng.IntN(3)]
			}
			specs = append(specs, Spec{Match: c})
		}
		sort.SliceStable(specs, func(i, j int) bool { return moreSpecific(&specs[i].Match, &specs[j].Match) })
		ref := mux.NewRouter().SkipClean(true)
		ref.NotFoundHandler = rankHandler(-1)
		ref.MethodNotAllowedHandler = rankHandler(-2)
		for i := range specs {
			specs[i].Handler = rankHandler(i)
			c := specs[i].Match
			r := ref.NewRoute()
			if c.Host != "" {
				r = r.Host(c.Host)
			}
			if c.Path != "" {
				r = r.Path(c.Path)
			} else {
				r = r.PathPrefix(c.PathPrefix)
			}
			if len(c.Methods) > 0 {
				r = r.Methods(slices.Clone(c.Methods)...)
			}
			r.Handler(specs[i].Handler)
		}
		// methodless[i] is spec i without its method restriction: the
		// oracle for 405.
		methodless := make([]*mux.Route, len(specs))
		for i, sp := range specs {
			r := mux.NewRouter().NewRoute()
			if sp.Match.Host != "" {
				r = r.Host(sp.Match.Host)
			}
			if sp.Match.Path != "" {
				r = r.Path(sp.Match.Path)
			} else {
				r = r.PathPrefix(sp.Match.PathPrefix)
			}
			methodless[i] = r
		}
		m := newMatcher(specs, rankHandler(-1), rankHandler(-2))
		for range 200 {
			req := httptest.NewRequest([]string{"GET", "POST", "PUT", "DELETE"}[rng.IntN(4)], randPath(false), nil)
			req.Host = []string{"a.example.com", "b.example.com", "x.c.example.com", "other.com", "a.example.com:8080", "A.Example.COM", "X.C.example.com", "a.example.com.:80", "B.EXAMPLE.COM."}[rng.IntN(9)]
			// Hosts are case-insensitive here, case-sensitive in mux: the
			// reference sees the lower-cased name without dot or port 80,
			// the matcher the canonical host the gateway hands it.
			refReq := req.Clone(req.Context())
			refReq.Host = strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(req.Host), ":80"), ".")
			req.Host, _ = canonicalHost(req.Host, false)
			want, got := httptest.NewRecorder(), httptest.NewRecorder()
			ref.ServeHTTP(want, refReq)
			m.ServeHTTP(got, req)
			if want.Body.String() == "-1" || want.Body.String() == "-2" {
				want.Body.Reset()
				fmt.Fprint(want.Body, -1)
				for _, r := range methodless {
					var rm mux.RouteMatch
					if r.Match(refReq, &rm) {
						want.Body.Reset()
						fmt.Fprint(want.Body, -2)
						break
					}
				}
			}
			if want.Body.String() != got.Body.String() {
				t.Fatalf("table %d, %s %s%s: mux chose %s, matcher chose %s (-1 = 404, -2 = 405)\ntable: %+v",
					table, req.Method, req.Host, req.URL.Path, want.Body, got.Body, specs)
			}
		}
	}
}

// randomPath draws a path (or, with vars, a template) of one to four
// segments from segs, sometimes with a trailing slash: the matcher tests'
// small vocabulary, so that routes and requests collide often.
func randomPath(rng *rand.Rand, segs []string, vars bool) string {
	var b strings.Builder
	for i := range 1 + rng.IntN(4) {
		b.WriteByte('/')
		if vars && rng.IntN(4) == 0 {
			fmt.Fprintf(&b, "{v%d}", i)
			continue
		}
		b.WriteString(segs[rng.IntN(len(segs))])
	}
	if rng.IntN(5) == 0 {
		b.WriteByte('/')
	}
	return b.String()
}
