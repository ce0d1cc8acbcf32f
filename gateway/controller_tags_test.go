package gateway

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/gateway/fabio"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/internal/registrytest"
	"github.com/gatewayco/gateway/registry"
)

// tagSource is a TagSource the test sets directly.
type tagSource struct {
	mu   sync.Mutex
	snap registry.CatalogSnapshot
}

func (s *tagSource) Services() (registry.CatalogSnapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap, true
}

func (s *tagSource) set(services ...registry.ServiceTags) {
	s.mu.Lock()
	s.snap = registry.CatalogSnapshot{Services: services}
	s.mu.Unlock()
}

// TestControllerTagRoutes composes tag routes below KV documents: a KV
// route with the same matcher shadows a tag route, a bad tag is listed
// and costs nothing else, and a tag route whose build panics is rejected
// alone while the next table publishes.
func TestControllerTagRoutes(t *testing.T) {
	gw := New(Options{Metrics: metrics.New(metrics.Options{})})
	c := NewController(gw, hclog.NewNullLogger())
	src := &tagSource{}
	c.SetTagSource(src)
	docs, insts := &registrytest.Docs{}, &registrytest.Instances{}
	panicOn := map[string]bool{}
	c.builder.panicHook = func(name string) {
		if panicOn[name] {
			panic("injected: " + name)
		}
	}
	check := func(step string, routes []string, errs ...string) {
		t.Helper()
		c.reload(context.Background(), docs, insts)
		tab := gw.Table()
		if got := routeNames(tab); !slices.Equal(got, routes) {
			t.Fatalf("%s: routes %v, want %v", step, got, routes)
		}
		var got []string
		for _, e := range tab.Errors() {
			got = append(got, e.Key+" "+e.Message)
		}
		if len(got) != len(errs) {
			t.Fatalf("%s: errors %q, want %d", step, got, len(errs))
		}
		for i, want := range errs {
			if !strings.Contains(got[i], want) {
				t.Fatalf("%s: error %q lacks %q", step, got[i], want)
			}
		}
	}
	web, api := fabio.RouteName("web", "urlprefix-/web"), fabio.RouteName("api", "urlprefix-/a")

	docs.Put("k1", routeDoc("a", "/a"))
	src.set(registry.ServiceTags{Name: "api", Tags: []string{"urlprefix-/a"}},
		registry.ServiceTags{Name: "web", Tags: []string{"urlprefix-/web", "urlprefix-/x proto=tcp"}})
	check("KV wins, bad tag listed", sorted("a", web),
		`fabio:api route "`+api+`" shadowed: route "a" in k1`,
		`fabio:web service "web": tag "urlprefix-/x proto=tcp" ignored`)

	docs.Delete("k1")
	check("KV route gone", sorted(api, web), `fabio:web service "web"`)

	panicOn[web] = true
	check("a panicking tag route", []string{api}, `fabio:web service "web": tag "urlprefix-/web" ignored: internal error`, `proto=tcp`)
}

func sorted(s ...string) []string { slices.Sort(s); return s }
