package gateway

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// TestFailoverPicksFirstDatacenterWithAPassingInstance walks one route
// through its datacenters as their instances change, table by table.
func TestFailoverPicksFirstDatacenterWithAPassingInstance(t *testing.T) {
	gw := New(Options{})
	b := newTableBuilder(gw.deps)
	b.localDC = "dc1"
	rc := prefixRoute("r", "/r", "svc")
	rc.Failover = &config.Failover{Datacenters: []string{"dc2", "dc3"}}
	key := func(dc string) registry.ServiceKey { return registry.ServiceKey{Name: "svc", Datacenter: dc} }
	up := registry.Instance{ID: "a", Address: "127.0.0.1", Port: 1, Passing: true}
	down := up
	down.Passing = false

	steps := []struct {
		name   string
		insts  map[string][]registry.Instance // by datacenter
		wantDC string
		reason string // a part of the reason; "" wants none
	}{
		{"own passing", map[string][]registry.Instance{"": {up}, "dc2": {up}}, "dc1", ""},
		{"own critical, dc2 empty", map[string][]registry.Instance{"": {down}, "dc3": {up}}, "dc3", "dc1 has no passing instance; dc3 is the first"},
		{"dc2 passing again", map[string][]registry.Instance{"": {down}, "dc2": {up}, "dc3": {up}}, "dc2", "dc2 is the first"},
		{"own back: immediately", map[string][]registry.Instance{"": {up}, "dc2": {up}}, "dc1", ""},
		{"none anywhere", map[string][]registry.Instance{"": {down}, "dc2": {down}}, "dc1", "no datacenter listed has a passing instance"},
	}
	for _, st := range steps {
		instances := func(k registry.ServiceKey) []registry.Instance { return st.insts[k.Datacenter] }
		tab := b.build([]config.Route{rc}, instances, nil)
		rt := tab.Routes()[0]
		if rt.Datacenter != st.wantDC || (st.reason == "") != (rt.DatacenterReason == "") || !strings.Contains(rt.DatacenterReason, st.reason) {
			t.Errorf("%s: serving %q (%q), want %q with %q", st.name, rt.Datacenter, rt.DatacenterReason, st.wantDC, st.reason)
		}
		wantKey := key(strings.TrimPrefix(st.wantDC, "dc1"))
		if rt.Service != wantKey {
			t.Errorf("%s: service key %v, want %v", st.name, rt.Service, wantKey)
		}
		if got := tab.metricsView().Datacenters["r"]; got != st.wantDC {
			t.Errorf("%s: metrics view says %q, want %q", st.name, got, st.wantDC)
		}
	}

	// Consul's answer decides, not the chosen instances: a datacenter whose
	// only instances are last-known ones (Consul lists none) has no
	// passing instance.
	b.passing = map[registry.ServiceKey]int{key(""): 0, key("dc2"): 1}
	tab := b.build([]config.Route{rc}, fixed(map[string][]registry.Instance{"svc": {up}}), nil)
	if dc := tab.Routes()[0].Datacenter; dc != "dc2" {
		t.Errorf("own datacenter with last-known instances only: serving %q, want dc2", dc)
	}
}

// TestRouteKeysWatchEveryListedDatacenter: the controller watches the
// route's own datacenter and each failover one, and nothing else.
func TestRouteKeysWatchEveryListedDatacenter(t *testing.T) {
	rc := prefixRoute("r", "/r", "svc")
	rc.Tag, rc.Datacenter = "v1", "dc2"
	rc.Failover = &config.Failover{Datacenters: []string{"dc1", "dc3"}}
	got := serviceKeys([]config.Route{rc, rc}, nil)
	k := func(dc string) registry.ServiceKey {
		return registry.ServiceKey{Name: "svc", Tag: "v1", Datacenter: dc}
	}
	want := []registry.ServiceKey{k("dc2"), k("dc1"), k("dc3")}
	if len(got) != len(want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("keys %v, want %v", got, want)
		}
	}
}

// TestFailoverWatchesBounded: past MaxFailoverWatches no route gets more
// failover watches, while every route keeps its own.
func TestFailoverWatchesBounded(t *testing.T) {
	var routes []config.Route
	for i := range MaxFailoverWatches {
		rc := prefixRoute(fmt.Sprint("r", i), "/r", fmt.Sprint("svc", i))
		rc.Failover = &config.Failover{Datacenters: []string{"dc2", "dc3"}}
		routes = append(routes, rc)
	}
	keys := serviceKeys(routes, nil)
	if want := 2 * MaxFailoverWatches; len(keys) != want {
		t.Fatalf("%d watches, want %d (each route's own and %d failover ones)", len(keys), want, MaxFailoverWatches)
	}
	for i, k := range keys[:MaxFailoverWatches] {
		if k.Datacenter != "" || k.Name != fmt.Sprint("svc", i) {
			t.Fatalf("watch %d is %v, want route %d's own", i, k, i)
		}
	}
}

// TestFailoverKeepsWarningInstancesOfAllowWarningRoute: a route with
// allow_warning serves its own datacenter's warning instances rather
// than failing over; one without fails over.
func TestFailoverKeepsWarningInstancesOfAllowWarningRoute(t *testing.T) {
	gw := New(Options{})
	b := newTableBuilder(gw.deps)
	b.localDC = "dc1"
	warn := registry.Instance{ID: "a", Address: "127.0.0.1", Port: 1, Warning: true, Weights: registry.Weights{Passing: 1, Warning: 1}}
	up := registry.Instance{ID: "b", Address: "127.0.0.1", Port: 2, Passing: true, Weights: registry.Weights{Passing: 1, Warning: 1}}
	insts := map[string][]registry.Instance{"": {warn}, "dc2": {up}}
	instances := func(k registry.ServiceKey) []registry.Instance { return insts[k.Datacenter] }
	for _, allow := range []bool{true, false} {
		rc := prefixRoute("r", "/r", "svc")
		rc.AllowWarning = allow
		rc.Failover = &config.Failover{Datacenters: []string{"dc2"}}
		want := map[bool]string{true: "dc1", false: "dc2"}[allow]
		for _, counted := range []bool{false, true} {
			b.passing, b.warning = nil, nil
			if counted { // as Controller.publish sets them
				b.passing = map[registry.ServiceKey]int{{Name: "svc"}: 0, {Name: "svc", Datacenter: "dc2"}: 1}
				b.warning = map[registry.ServiceKey]int{{Name: "svc"}: 1}
			}
			if dc := b.build([]config.Route{rc}, instances, nil).Routes()[0].Datacenter; dc != want {
				t.Errorf("allow_warning %v (counts from Consul %v): serving %q, want %q", allow, counted, dc, want)
			}
		}
	}
}
