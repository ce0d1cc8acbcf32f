package router

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
)

// benchSpecs makes n entries spread over 10 hosts and host-less ones,
// half path templates and half prefixes, like a large shared gateway;
// each entry's handler is its name.
func benchSpecs(n int, fold bool) []Spec {
	specs := make([]Spec, 0, n)
	for i := range n {
		r := config.Route{Name: fmt.Sprintf("r%d", i), CaseInsensitive: fold}
		if i%3 == 0 {
			r.Host = fmt.Sprintf("h%d.example.com", i%10)
		}
		if i%2 == 0 {
			r.Path = fmt.Sprintf("/api/s%d/items/{id}", i)
		} else {
			r.PathPrefix = fmt.Sprintf("/api/p%d/", i)
		}
		specs = append(specs, Spec{Match: r, Handler: nameHandler(r.Name)})
	}
	return specs
}

type nameHandler string

func (nameHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

// lastRequest is a request for the last of specs.
func lastRequest(specs []Spec, upper bool) *http.Request {
	last := specs[len(specs)-1].Match
	path := last.PathPrefix + "x"
	if last.Path != "" {
		path = strings.Replace(last.Path, "{id}", "7", 1)
	}
	if upper {
		path = strings.ToUpper(path)
	}
	req := httptest.NewRequest("GET", path, nil)
	req.Host = "any"
	if last.Host != "" {
		req.Host = last.Host
	}
	return req
}

// BenchmarkRouteMatch matches a request for the last route of a table
// with n routes; the index keeps it flat where mux alone grows linearly.
func BenchmarkRouteMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			specs := benchSpecs(n, false)
			m := New(specs).(*matcher)
			req := lastRequest(specs, false)
			if e, _ := m.match(req); e == nil || e.h != specs[n-1].Handler {
				b.Fatalf("request for the last route matched %v", e)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				m.match(req)
			}
		})
	}
}

// BenchmarkRouteMatchCaseInsensitive is BenchmarkRouteMatch with every
// route case_insensitive and the request path in upper case, so the path
// is folded (one allocation) and the folded trie walked.
func BenchmarkRouteMatchCaseInsensitive(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			specs := benchSpecs(n, true)
			m := New(specs).(*matcher)
			req := lastRequest(specs, true)
			if e, _ := m.match(req); e == nil {
				b.Fatal("request for the last route matched nothing")
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				m.match(req)
			}
		})
	}
}
