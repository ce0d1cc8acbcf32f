package gateway

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/internal/registrytest"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// readyDocs is a document source that answered with no documents.
func readyDocs() *registrytest.Docs {
	d := &registrytest.Docs{}
	d.Ready()
	return d
}

func routeNames(t *Table) []string {
	var names []string
	for _, r := range t.Routes() {
		names = append(names, r.Config.Name)
	}
	return names
}

const docA = `route "a" {
  path_prefix = "/a"
  service     = "svc-a"
}
`

const docB = `route "b" {
  path_prefix = "/b"
  service     = "svc-b"
}
`

func TestControllerRules(t *testing.T) {
	type step struct {
		put, del, src string
		wantRoutes    []string
		wantErrKeys   []string
		wantErrText   string // a substring of the first error, when any
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"bad document keeps its last good version", []step{
			{put: "k1", src: docA, wantRoutes: []string{"a"}},
			{put: "k1", src: "route \"a\" {\n  path_prefix = \n}\n", wantRoutes: []string{"a"}, wantErrKeys: []string{"k1"}, wantErrText: "k1:2:"},
			{put: "k1", src: docB, wantRoutes: []string{"b"}},
		}},
		{"new bad key serves nothing while other keys apply", []step{
			{put: "k1", src: docA, wantRoutes: []string{"a"}},
			{put: "k2", src: `route "x" { service = "s" }`, wantRoutes: []string{"a"}, wantErrKeys: []string{"k2"}, wantErrText: "k2:1:"},
			{put: "k3", src: docB, wantRoutes: []string{"a", "b"}, wantErrKeys: []string{"k2"}},
		}},
		{"duplicate name in a newer key is rejected", []step{
			{put: "k1", src: docA, wantRoutes: []string{"a"}},
			{put: "k2", src: strings.Replace(docB, `"b"`, `"a"`, 1), wantRoutes: []string{"a"}, wantErrKeys: []string{"k2"}, wantErrText: "already defined"},
		}},
		{"deleted key removes its routes and its error", []step{
			{put: "k1", src: docA, wantRoutes: []string{"a"}},
			{put: "k2", src: "garbage {", wantRoutes: []string{"a"}, wantErrKeys: []string{"k2"}},
			{del: "k1", wantRoutes: nil, wantErrKeys: []string{"k2"}},
			{del: "k2", wantRoutes: nil},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gw := New(Options{})
			c := NewController(gw, nil)
			docs, insts := &registrytest.Docs{}, &registrytest.Instances{}
			for i, s := range tc.steps {
				if s.put != "" {
					docs.Put(s.put, s.src)
				}
				if s.del != "" {
					docs.Delete(s.del)
				}
				c.reload(context.Background(), docs, insts)
				tab := gw.Table()
				if got := routeNames(tab); !slices.Equal(got, s.wantRoutes) {
					t.Fatalf("step %d: routes = %v, want %v", i, got, s.wantRoutes)
				}
				var errKeys []string
				for _, e := range tab.Errors() {
					errKeys = append(errKeys, e.Key)
				}
				if !slices.Equal(errKeys, s.wantErrKeys) {
					t.Fatalf("step %d: error keys = %v, want %v (%v)", i, errKeys, s.wantErrKeys, tab.Errors())
				}
				if s.wantErrText != "" && !strings.Contains(tab.Errors()[0].Message, s.wantErrText) {
					t.Fatalf("step %d: error %q lacks %q", i, tab.Errors()[0].Message, s.wantErrText)
				}
			}
		})
	}
}

func TestControllerWatchesExactlyTheServicesOfServedRoutes(t *testing.T) {
	gw := New(Options{})
	c := NewController(gw, nil)
	docs := &registrytest.Docs{}
	insts := &registrytest.Instances{}
	insts.Set("svc-a", registry.Instance{ID: "a1", Address: "127.0.0.1", Port: 1, Passing: true})
	docs.Put("k1", docA)
	docs.Put("k2", docB)
	c.reload(context.Background(), docs, insts)
	if want := []registry.ServiceKey{{Name: "svc-a"}, {Name: "svc-b"}}; !slices.Equal(insts.Ensured(), want) {
		t.Fatalf("ensured %v, want %v", insts.Ensured(), want)
	}
	if got := gw.Table().Routes()[0].Instances; len(got) != 1 || got[0].ID != "a1" {
		t.Fatalf("route a instances = %v", got)
	}
	docs.Delete("k2")
	c.reload(context.Background(), docs, insts)
	if want := []registry.ServiceKey{{Name: "svc-a"}}; !slices.Equal(insts.Ensured(), want) {
		t.Fatalf("after delete ensured %v, want %v", insts.Ensured(), want)
	}
}

func TestControllerWaitsForTheFirstKVAnswer(t *testing.T) {
	gw := New(Options{})
	c := NewController(gw, nil)
	c.reload(context.Background(), &registrytest.Docs{}, &registrytest.Instances{})
	if gw.Table().Loaded() {
		t.Fatal("table loaded before Consul answered")
	}
	docs := readyDocs()
	c.reload(context.Background(), docs, &registrytest.Instances{})
	if !gw.Table().Loaded() {
		t.Fatal("an empty but real KV answer must load a (route-less) table")
	}
}

func TestControllerRunRebuildsOnNotifyAndStops(t *testing.T) {
	gw := New(Options{})
	c := NewController(gw, nil)
	docs := &registrytest.Docs{}
	docs.Put("k1", docA)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, docs, &registrytest.Instances{}); close(done) }()
	testkit.WaitValue(t, "the published routes", func() ([]string, bool) { n := routeNames(gw.Table()); return n, slices.Equal(n, []string{"a"}) })
	docs.Put("k2", docB)
	c.Notify()
	c.Notify() // coalesces; must not block
	testkit.WaitValue(t, "the published routes", func() ([]string, bool) { n := routeNames(gw.Table()); return n, slices.Equal(n, []string{"a", "b"}) })
	cancel()
	<-done
}
