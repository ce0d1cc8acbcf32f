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
		m := newMatcher(specs, nil, rankHandler(-1), rankHandler(-2))
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
			var allow []string // every method of the specs matching host and path
			if want.Body.String() == "-1" || want.Body.String() == "-2" {
				want.Body.Reset()
				fmt.Fprint(want.Body, -1)
				for i, r := range methodless {
					var rm mux.RouteMatch
					if r.Match(refReq, &rm) {
						want.Body.Reset()
						fmt.Fprint(want.Body, -2)
						allow = append(allow, specs[i].Match.Methods...)
					}
				}
			}
			if got.Body.String() == "-2" {
				gotAllow := strings.Split(got.Header().Get("Allow"), ", ")
				slices.Sort(allow)
				slices.Sort(gotAllow)
				if !slices.Equal(slices.Compact(allow), gotAllow) {
					t.Fatalf("table %d, %s %s%s: Allow %q, want %q\ntable: %+v", table, req.Method, req.Host, req.URL.Path,
						got.Header().Get("Allow"), slices.Compact(allow), specs)
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

// TestMethodNotAllowedNamesTheAllowedMethods: a path some route takes
// with other methods answers 405, the gateway's JSON error, and an Allow
// header listing those methods (RFC 9110 15.5.6); a path no route takes
// answers 404 without one.
func TestMethodNotAllowedNamesTheAllowedMethods(t *testing.T) {
	h := New([]Spec{
		{Match: config.Route{Name: "read", PathPrefix: "/items", Methods: []string{"GET", "HEAD"}}, Handler: rankHandler(0)},
		{Match: config.Route{Name: "write", Path: "/items/{id}", Methods: []string{"PUT", "GET"}}, Handler: rankHandler(1)},
		{Match: config.Route{Name: "other", Host: "other.example.com", PathPrefix: "/items", Methods: []string{"PATCH"}}, Handler: rankHandler(2)},
	})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("DELETE", "/items/7", nil)
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD, PUT" {
		t.Errorf("DELETE /items/7 = %d Allow %q; want 405 Allow \"GET, HEAD, PUT\"", rec.Code, rec.Header().Get("Allow"))
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || !strings.Contains(rec.Body.String(), "method not allowed") {
		t.Errorf("405 body %q (%s), want the JSON error", rec.Body, ct)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/nothing", nil))
	if rec.Code != http.StatusNotFound || rec.Header().Get("Allow") != "" {
		t.Errorf("GET /nothing = %d Allow %q; want 404 without Allow", rec.Code, rec.Header().Get("Allow"))
	}
}
