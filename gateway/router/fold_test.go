package router

import (
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/gatewayco/gateway/gateway/config"
)

// TestMatcherAgreesWithReferenceOnCaseInsensitiveRoutes checks the index,
// with case-insensitive routes in the table, against the plainest
// reference: try every route in precedence order, a case-insensitive one
// on the folded path with its folded template.
func TestMatcherAgreesWithReferenceOnCaseInsensitiveRoutes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	segs := []string{"api", "API", "Api", "users", "Users", "v1", "V1", "a", "A", "ap"}
	hosts := []string{"", "", "a.example.com", "{sub}.c.example.com"}
	methods := [][]string{nil, nil, {"GET"}, {"POST"}}
	randPath := func(vars bool) string { return randomPath(rng, segs, vars) }
	for table := range 200 {
		var specs []Spec
		for i := range 1 + rng.IntN(30) {
			c := config.Route{Name: fmt.Sprint(i), Host: hosts[rng.IntN(len(hosts))], Methods: methods[rng.IntN(len(methods))],
				CaseInsensitive: rng.IntN(2) == 0}
			p := randPath(true)
			if rng.IntN(2) == 0 {
				c.Path = p
			} else {
				c.PathPrefix = strings.TrimSuffix(p, "/") + []string{"", "/", "s"}[rng.IntN(3)]
			}
			specs = append(specs, Spec{Match: c})
		}
		sort.SliceStable(specs, func(i, j int) bool { return moreSpecific(&specs[i].Match, &specs[j].Match) })
		ref := make([]*mux.Route, len(specs))
		for i := range specs {
			specs[i].Handler = rankHandler(i)
			c := specs[i].Match
			r := mux.NewRouter().NewRoute()
			if c.Host != "" {
				r = r.Host(c.Host)
			}
			tpl := c.Path + c.PathPrefix
			if c.CaseInsensitive {
				tpl = config.FoldCase(tpl)
			}
			if c.Path != "" {
				r = r.Path(tpl)
			} else {
				r = r.PathPrefix(tpl)
			}
			ref[i] = r
		}
		m := newMatcher(specs, nil, rankHandler(-1), rankHandler(-2))
		for range 200 {
			req := httptest.NewRequest([]string{"GET", "POST", "PUT"}[rng.IntN(3)], randPath(false), nil)
			req.Host = []string{"a.example.com", "x.c.example.com", "other.com"}[rng.IntN(3)]
			want := -1
			for i, r := range ref {
				rr := req
				if specs[i].Match.CaseInsensitive {
					rr = req.Clone(req.Context())
					rr.URL.Path = config.FoldCase(req.URL.Path)
				}
				var rm mux.RouteMatch
				if !r.Match(rr, &rm) {
					continue
				}
				if ms := specs[i].Match.Methods; len(ms) == 0 || slices.Contains(ms, req.Method) {
					want = i
					break
				}
				want = -2
			}
			got := httptest.NewRecorder()
			m.ServeHTTP(got, req)
			if fmt.Sprint(want) != got.Body.String() {
				t.Fatalf("table %d, %s %s%s: reference chose %d, matcher chose %s (-1 = 404, -2 = 405)\ntable: %+v",
					table, req.Method, req.Host, req.URL.Path, want, got.Body, specs)
			}
		}
	}
}

func TestFoldCaseAgreesWithEqualFold(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"/api/users", "/api/users", true},
		{"/API/Users", "/api/users", true},
		{"/\u212Aelvin", "/kelvin", true}, // KELVIN SIGN
		{"/cla\u017Fs", "/CLASS", true},   // LATIN SMALL LETTER LONG S
		{"/\u03A3\u03C2\u03C3", "/\u03C3\u03C3\u03A3", true},
		{"/ÄÖÜ", "/äöü", true},
		{"/\xff\xfe", "/\xff\xfe", true},
		{"/\xff", "/\xfe", false},
		{"/\u0130", "/i", false}, // no simple folding for İ
		{"/straße", "/strasse", false},
		{"/a", "/b", false},
	} {
		valid := utf8.ValidString(tc.a) && utf8.ValidString(tc.b)
		if got := config.FoldCase(tc.a) == config.FoldCase(tc.b); got != tc.same || valid && strings.EqualFold(tc.a, tc.b) != tc.same {
			t.Errorf("%q and %q: fold alike %v, EqualFold %v; want %v", tc.a, tc.b, got, strings.EqualFold(tc.a, tc.b), tc.same)
		}
		if rest, ok := config.CutPrefixFold(tc.a+"/rest", tc.b); ok != tc.same || (ok && rest != "/rest") {
			t.Errorf("CutPrefixFold(%q, %q) = %q, %v; want %v", tc.a+"/rest", tc.b, rest, ok, tc.same)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = config.FoldCase("/api/users/42") }); n != 0 {
		t.Errorf("folding a lower-case ASCII path allocated %v times", n)
	}
}
