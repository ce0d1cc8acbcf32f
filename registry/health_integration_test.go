package registry

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/hashicorp/consul/api"
)

// instanceIDs returns the IDs of the passing instances in key's snapshot,
// or nil before the first.
func instanceIDs(h *Health, key ServiceKey) []string {
	insts, ok := h.Instances(key)
	if !ok {
		return nil
	}
	ids := []string{}
	for _, i := range Passing(insts) {
		ids = append(ids, i.ID)
	}
	return ids
}

// runningWatches counts goroutines currently inside a watch loop.
func runningWatches() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "registry.(*watch[...]).run(")
}

func register(t *testing.T, client *api.Client, reg *api.AgentServiceRegistration) {
	t.Helper()
	if err := client.Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
}

func TestHealthWatchReportsOnlyPassingInstances(t *testing.T) {
	verifyNoLeaks(t)
	srv := startConsul(t)
	client := testClient(t, srv.HTTPAddr)
	for _, r := range []struct{ id, addr, tag string }{
		{"web-1", "192.0.2.1", "v1"},
		{"web-2", "192.0.2.2", "v1"},
		{"web-3", "", "v2"}, // no service address: the node's is used
	} {
		register(t, client, &api.AgentServiceRegistration{
			ID: r.id, Name: "web", Address: r.addr, Port: 8080, Tags: []string{r.tag},
			Check: &api.AgentServiceCheck{TTL: "10m"}, // starts critical
		})
	}
	setTTL := func(id, status string) {
		t.Helper()
		if err := client.Agent().UpdateTTL("service:"+id, "", status); err != nil {
			t.Fatal(err)
		}
	}

	h := NewHealth(client, Options{}, nil)
	defer h.Stop()
	all, v1 := ServiceKey{Name: "web"}, ServiceKey{Name: "web", Tag: "v1"}
	h.Ensure(context.Background(), []ServiceKey{all, v1})
	if ids := instanceIDs(h, all); ids == nil || len(ids) != 0 {
		t.Fatalf("before any check passes: %q, want an empty snapshot", ids)
	}

	for _, id := range []string{"web-1", "web-2", "web-3"} {
		setTTL(id, api.HealthPassing)
	}
	testkit.WaitWithin(t, 5*time.Second, "three passing instances", func() bool {
		return slices.Equal(instanceIDs(h, all), []string{"web-1", "web-2", "web-3"}) &&
			slices.Equal(instanceIDs(h, v1), []string{"web-1", "web-2"})
	})
	insts, _ := h.Instances(all)
	if got, want := insts[2].Address, "127.0.0.1"; got != want {
		t.Errorf("web-3 address = %q, want the node address %q", got, want)
	}
	if got := insts[0].HostPort(); got != "192.0.2.1:8080" {
		t.Errorf("web-1 = %q", got)
	}

	setTTL("web-2", api.HealthCritical)
	// A blocking query wakes on the change, so this is fast, not a poll.
	testkit.WaitWithin(t, 2*time.Second, "web-2 to disappear", func() bool {
		return slices.Equal(instanceIDs(h, all), []string{"web-1", "web-3"}) &&
			slices.Equal(instanceIDs(h, v1), []string{"web-1"})
	})
}

func TestEnsureStartsAndStopsWatches(t *testing.T) {
	verifyNoLeaks(t)
	srv := startConsul(t)
	client := testClient(t, srv.HTTPAddr)
	for _, name := range []string{"a", "b", "c"} {
		register(t, client, &api.AgentServiceRegistration{ID: name + "-1", Name: name, Port: 80})
	}
	// Registration is synced to the catalog asynchronously.
	testkit.WaitWithin(t, 5*time.Second, "services in the catalog", func() bool {
		svcs, _, err := client.Catalog().Services(nil)
		return err == nil && len(svcs) == 4 // with "consul"
	})
	key := func(name string) ServiceKey { return ServiceKey{Name: name} }
	var notes counter
	h := NewHealth(client, Options{}, notes.notify)
	defer h.Stop()
	ctx := context.Background()
	base := runningWatches()

	h.Ensure(ctx, []ServiceKey{key("a"), key("b"), key("c")})
	// No polling: Ensure promises instances are known when it returns.
	for _, name := range []string{"a", "b", "c"} {
		if ids := instanceIDs(h, key(name)); !slices.Equal(ids, []string{name + "-1"}) {
			t.Errorf("right after Ensure, %s = %q", name, ids)
		}
	}
	if n := runningWatches() - base; n != 3 {
		t.Errorf("%d watch goroutines, want 3", n)
	}

	h.Ensure(ctx, []ServiceKey{key("a"), key("missing")})
	if n := runningWatches() - base; n != 2 {
		t.Errorf("after removing b and c: %d watch goroutines, want 2", n)
	}
	if _, ok := h.Instances(key("b")); ok {
		t.Error("b still reported after its watch was removed")
	}
	if ids := instanceIDs(h, key("a")); !slices.Equal(ids, []string{"a-1"}) {
		t.Errorf("kept watch a = %q", ids)
	}
	if ids := instanceIDs(h, key("missing")); ids == nil || len(ids) != 0 {
		t.Errorf("unknown service = %q, want a known, empty snapshot", ids)
	}
	if notes.count() == 0 {
		t.Error("notify never called")
	}

	h.Stop()
	if n := runningWatches() - base; n != 0 {
		t.Errorf("after Stop: %d watch goroutines", n)
	}
}

// TestHealthWatchReportsMaintenance: Consul represents maintenance mode as
// a critical check, indistinguishable by status from a failing health
// check; the watch must tell them apart, for the service and for the node.
func TestHealthWatchReportsMaintenance(t *testing.T) {
	verifyNoLeaks(t)
	srv := startConsul(t)
	client := testClient(t, srv.HTTPAddr)
	for _, id := range []string{"m-1", "m-2"} {
		register(t, client, &api.AgentServiceRegistration{ID: id, Name: "m", Port: 80})
	}
	h := NewHealth(client, Options{}, nil)
	defer h.Stop()
	key := ServiceKey{Name: "m"}
	h.Ensure(context.Background(), []ServiceKey{key})
	// maint lists each instance as "id:maintenance/passing".
	maint := func() string {
		insts, _ := h.Instances(key)
		var s []string
		for _, i := range insts {
			s = append(s, fmt.Sprintf("%s:%t/%t", i.ID, i.Maintenance, i.Passing))
		}
		return strings.Join(s, " ")
	}
	testkit.WaitWithin(t, 5*time.Second, "two passing instances", func() bool { return maint() == "m-1:false/true m-2:false/true" })

	if err := client.Agent().EnableServiceMaintenance("m-1", "deploy"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitWithin(t, 5*time.Second, "m-1 in service maintenance", func() bool { return maint() == "m-1:true/false m-2:false/true" })
	if err := client.Agent().EnableNodeMaintenance("node work"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitWithin(t, 5*time.Second, "both in node maintenance", func() bool { return maint() == "m-1:true/false m-2:true/false" })
	if err := client.Agent().DisableNodeMaintenance(); err != nil {
		t.Fatal(err)
	}
	if err := client.Agent().DisableServiceMaintenance("m-1"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitWithin(t, 5*time.Second, "maintenance over", func() bool { return maint() == "m-1:false/true m-2:false/true" })
}
