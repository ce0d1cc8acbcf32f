package gateway

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// meshState is a Mesh with settable verdicts and no identity (the
// registry's real one is exercised end to end in e2e/connect_test.go).
type meshState struct{ denied atomic.Bool }

func (m *meshState) Leaf() (*registry.Leaf, bool)   { return nil, false }
func (m *meshState) Roots() (*registry.Roots, bool) { return nil, false }
func (m *meshState) Verdict(string) (registry.Verdict, bool) {
	return registry.Verdict{Denied: m.denied.Load(), Intention: "gateway => s"}, true
}

// TestConnectRoutesTransportsAndGate: without -connect a connect route's
// transport fails and the route is listed with the errors; with it, one
// transport per service, kept across swaps; a denied verdict answers 403
// before the upstream is called.
func TestConnectRoutesTransportsAndGate(t *testing.T) {
	route := func(name, service string) config.Route {
		return config.Route{Name: name, PathPrefix: "/" + name, Service: service, Balancer: "round_robin", Connect: true,
			Pos: config.Pos{Key: "k", Line: 1, Column: 1}}
	}
	none := fixed(map[string][]registry.Instance{})

	off := New(Options{})
	tb := newTableBuilder(off.deps).build([]config.Route{route("a", "s")}, none, nil)
	if errs := tb.Errors(); len(errs) != 1 || !strings.Contains(errs[0].Message, "-connect") {
		t.Fatalf("errors %+v, want the route named with -connect", errs)
	}
	if _, err := tb.Routes()[0].up.Transport().RoundTrip(httptest.NewRequest("GET", "https://x/", nil)); !errors.Is(err, ErrConnectOff) {
		t.Fatalf("connect route without -connect sent a request: %v", err)
	}

	mesh := &meshState{}
	var called atomic.Int64
	_, inst := startUpstream(t, "s-1", func(w http.ResponseWriter, r *http.Request) { called.Add(1) })
	gw := New(Options{Mesh: mesh})
	b := newTableBuilder(gw.deps)
	insts := fixed(map[string][]registry.Instance{"s": {inst}})
	t1 := b.build([]config.Route{route("a", "s"), route("b", "s"), route("c", "other")}, insts, nil)
	tr := func(tb *Table, i int) http.RoundTripper { return tb.Routes()[i].up.Transport() }
	if tr(t1, 0) != tr(t1, 1) || tr(t1, 0) == tr(t1, 2) {
		t.Error("want one transport per connect service")
	}
	t2 := b.build([]config.Route{route("a", "s")}, insts, nil)
	if tr(t2, 0) != tr(t1, 0) {
		t.Error("a swap made a new connect transport")
	}
	gw.Publish(t2)
	srv := serve(t, gw)
	mesh.denied.Store(true)
	code, body := get(t, srv.Client(), srv.URL+"/a")
	if code != http.StatusForbidden || body["route"] != "a" || !strings.Contains(body["error"], `"s"`) {
		t.Fatalf("denied: %d %v, want 403 naming route and service", code, body)
	}
	if called.Load() != 0 {
		t.Fatal("a denied request reached the upstream")
	}
}
