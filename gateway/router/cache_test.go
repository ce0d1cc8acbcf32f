package router

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/mux"

	"github.com/gatewayco/gateway/gateway/config"
)

// TestCacheReusesCompiledParts checks that a table built again from the
// same matches shares the compiled regexps and mux routes of the last one,
// and that a table without an entry drops its parts.
func TestCacheReusesCompiledParts(t *testing.T) {
	c := NewCache()
	tpl := Spec{Match: config.Route{Name: "a", Path: "/api/{id}"}, Handler: rankHandler(1)}
	host := Spec{Match: config.Route{Name: "b", Host: "{sub}.example.com", PathPrefix: "/x/{v}/"}, Handler: rankHandler(2), Vars: true}
	first := c.New([]Spec{tpl, host}).(*matcher)
	second := c.New([]Spec{host, tpl}).(*matcher)
	a1, a2 := first.anyHost.root.children["api"].entries[0], second.anyHost.root.children["api"].entries[0]
	if a1.re == nil || a1.re != a2.re {
		t.Fatalf("path regexp compiled again: %p then %p", a1.re, a2.re)
	}
	b1, b2 := first.hostPats[0], second.hostPats[0]
	if b1.hostRe == nil || b1.hostRe != b2.hostRe || b1.vars == nil || b1.vars != b2.vars || b1.re != b2.re {
		t.Fatalf("host template or variables compiled again")
	}
	c.New([]Spec{tpl})
	if len(c.last) != 1 {
		t.Fatalf("cache holds %d entries' parts after a table of one", len(c.last))
	}
	third := c.New([]Spec{host}).(*matcher)
	if third.hostPats[0].hostRe == b1.hostRe {
		t.Fatal("parts of an entry absent from the last table were kept")
	}
}

// TestCachedTableServesAsUncached checks that a table built through a
// Cache, after others, answers every request as one built afresh: ranks,
// path variables, 404 and 405.
func TestCachedTableServesAsUncached(t *testing.T) {
	vars := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "vars "+mux.Vars(r)["id"]) })
	specs := []Spec{
		{Match: config.Route{Name: "t", Path: "/api/{id}", Methods: []string{"GET"}}, Handler: rankHandler(1)},
		{Match: config.Route{Name: "p", PathPrefix: "/api/"}, Handler: rankHandler(2)},
		{Match: config.Route{Name: "h", Host: "{sub}.example.com", Path: "/h/{id}"}, Handler: vars, Vars: true},
		{Match: config.Route{Name: "f", PathPrefix: "/Fold/{x}/", CaseInsensitive: true}, Handler: rankHandler(4)},
		{Match: config.Route{Name: "l", Host: "lit.example.com", Path: "/lit"}, Handler: rankHandler(5)},
	}
	c := NewCache()
	c.New(specs[:2])
	c.New(specs[1:])
	cached, fresh := c.New(specs), New(specs)
	for _, target := range []string{"/api/7", "/api/", "/h/9", "/fold/a/b", "/FOLD/a/b", "/lit", "/none"} {
		for _, hostName := range []string{"x.example.com", "lit.example.com", "other"} {
			for _, method := range []string{"GET", "POST"} {
				got, want := httptest.NewRecorder(), httptest.NewRecorder()
				r := httptest.NewRequest(method, "http://"+hostName+target, nil)
				cached.ServeHTTP(got, r)
				fresh.ServeHTTP(want, r)
				if got.Code != want.Code || got.Body.String() != want.Body.String() {
					t.Errorf("%s %s%s: cached %d %q, fresh %d %q", method, hostName, target, got.Code, got.Body, want.Code, want.Body)
				}
			}
		}
	}
}
