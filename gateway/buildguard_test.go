package gateway

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/internal/registrytest"
	"github.com/gatewayco/gateway/internal/testkit"
)

func routeDoc(name, prefix string) string {
	return "route \"" + name + "\" {\n  path_prefix = \"" + prefix + "\"\n  service     = \"svc\"\n}\n"
}

// TestControllerContainsBuildPanics injects panics into table builds: the
// document to blame is rejected like one that does not parse, its last
// good version and every other key keep serving, and a panic no document
// can be blamed for keeps the previous table.
func TestControllerContainsBuildPanics(t *testing.T) {
	m := metrics.New(metrics.Options{})
	logs := &testkit.Buffer{}
	gw := New(Options{Metrics: m})
	c := NewController(gw, hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info}))
	docs, insts := &registrytest.Docs{}, &registrytest.Instances{}
	panicOn := map[string]bool{}
	c.builder.panicHook = func(name string) {
		if panicOn[name] {
			panic("injected: " + name)
		}
	}
	builds := func() float64 { return sample(t, m, "gateway_config_panics_total", "stage", metrics.PanicStageBuild) }
	check := func(step string, routes, errKeys []string, panics float64) *Table {
		t.Helper()
		c.reload(context.Background(), docs, insts)
		tab := gw.Table()
		if got := routeNames(tab); !slices.Equal(got, routes) {
			t.Fatalf("%s: routes %v, want %v", step, got, routes)
		}
		var keys []string
		for _, e := range tab.Errors() {
			keys = append(keys, e.Key)
		}
		if !slices.Equal(keys, errKeys) {
			t.Fatalf("%s: error keys %v, want %v (%v)", step, keys, errKeys, tab.Errors())
		}
		if got := sample(t, m, "gateway_config_rejected_documents"); got != float64(len(errKeys)) {
			t.Fatalf("%s: rejected documents metric %v, want %d", step, got, len(errKeys))
		}
		if got := builds(); got != panics {
			t.Fatalf("%s: build panics counted %v, want %v", step, got, panics)
		}
		return tab
	}

	docs.Put("k1", routeDoc("a", "/a"))
	docs.Put("k2", routeDoc("b", "/b"))
	check("start", []string{"a", "b"}, nil, 0)

	panicOn["boom"] = true
	docs.Put("k1", routeDoc("boom", "/boom"))
	tab := check("a version that panics", []string{"a", "b"}, []string{"k1"}, 1)
	want := `k1:1:1: internal error while building route "boom" (injected: boom); the document is rejected, please report this`
	if msg := tab.Errors()[0].Message; msg != want {
		t.Fatalf("error %q, want %q", msg, want)
	}
	if n := strings.Count(logs.String(), "panic while building the routing table; the document is rejected"); n != 1 {
		t.Fatalf("panic logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "buildguard_test.go") {
		t.Fatalf("panic logged without its stack:\n%s", logs)
	}

	check("unchanged: the rejected version is not built again", []string{"a", "b"}, []string{"k1"}, 1)

	panicOn["boom2"] = true
	docs.Put("k3", routeDoc("boom2", "/boom2"))
	check("a new key that panics serves nothing", []string{"a", "b"}, []string{"k1", "k3"}, 2)

	docs.Put("k1", routeDoc("a2", "/a2"))
	check("a fixed version serves", []string{"a2", "b"}, []string{"k3"}, 2)

	// A last good version that panics now (it built before) is dropped
	// too, and the key's own error stays.
	docs.Put("k2", "route \"b\" {\n")
	check("k2 invalid, last good serves", []string{"a2", "b"}, []string{"k2", "k3"}, 2)
	panicOn["b"] = true
	docs.Put("k4", routeDoc("d", "/d"))
	check("k2's last good panics", []string{"a2", "d"}, []string{"k2", "k3"}, 3)
	delete(panicOn, "b")

	// Nobody to blame: the previous table keeps serving, as it was.
	before := gw.Table()
	panicOn[""] = true
	docs.Put("k5", routeDoc("e", "/e"))
	if check("whole-table panic", []string{"a2", "d"}, []string{"k2", "k3"}, 4) != before {
		t.Fatal("a table was published although its build panicked")
	}
	delete(panicOn, "")
	check("the next build publishes", []string{"a2", "d", "e"}, []string{"k2", "k3"}, 4)
}

// TestBuildBlamesTheRouteWhoseMatcherPanics feeds the builder a template
// validation would have refused (mux panics on a capturing group): the
// panic names that route and its document.
func TestBuildBlamesTheRouteWhoseMatcherPanics(t *testing.T) {
	gw := New(Options{})
	c := NewController(gw, nil)
	bad := prefixRoute("bad", "", "svc")
	bad.PathPrefix, bad.Path = "", "/u/{id:(a|b)}"
	bad.Pos = config.Pos{Key: "kb", Line: 3, Column: 1}
	routes := []config.Route{prefixRoute("good", "/g", "svc"), bad}
	tab, failure := c.tryBuild(func() *Table { return c.builder.build(routes, fixed(nil), nil) })
	bp, ok := failure.(*buildPanic)
	if tab != nil || !ok {
		t.Fatalf("table %v, failure %#v; want a *buildPanic", tab, failure)
	}
	if bp.at != bad.Pos || bp.kind != "route" || bp.name != "bad" {
		t.Fatalf("blamed %s %q at %v, want route \"bad\" at %v", bp.kind, bp.name, bp.at, bad.Pos)
	}
	// The builder is usable again, with what it had before.
	c.builder.discard()
	if tab := c.builder.build(routes[:1], fixed(nil), nil); len(tab.Routes()) != 1 {
		t.Fatalf("build after a panic: %v", routeNames(tab))
	}
}

// TestVersionWhoseBuildPanicsIsNeverSharedAsLastGood: the last good
// version goes to Consul for the other replicas only once a table built
// from it serves; a version whose build panics must not reach the store,
// or every replica would start from a document that breaks its build.
func TestVersionWhoseBuildPanicsIsNeverSharedAsLastGood(t *testing.T) {
	store := &fakeStore{loaded: true, ok: true}
	c, gw, _ := lastGoodController(store, acceptedAt)
	docs, insts := &registrytest.Docs{}, &registrytest.Instances{}
	c.builder.panicHook = func(name string) {
		if name == "boom" {
			panic("injected")
		}
	}
	recorded := func() []uint64 {
		store.mu.Lock()
		defer store.mu.Unlock()
		var out []uint64
		for _, v := range store.recorded {
			out = append(out, v.SourceIndex)
		}
		return out
	}
	docs.Set("k", routeDoc("a", "/a"), 10, 10)
	c.reload(context.Background(), docs, insts)
	if got := recorded(); !slices.Equal(got, []uint64{10}) {
		t.Fatalf("recorded %v after a good version, want [10]", got)
	}
	docs.Set("k", routeDoc("boom", "/boom"), 11, 10)
	c.reload(context.Background(), docs, insts)
	if got := routeNames(gw.Table()); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("routes %v, want the last good [a]", got)
	}
	if got := recorded(); !slices.Equal(got, []uint64{10}) {
		t.Fatalf("recorded %v after a version whose build panicked, want only [10]", got)
	}
}
