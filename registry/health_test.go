package registry

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

func TestPassingFiltersWithoutAllocatingWhenAllPass(t *testing.T) {
	all := []Instance{{ID: "a", Passing: true}, {ID: "b", Passing: true}}
	if got := Passing(all); &got[0] != &all[0] {
		t.Error("all passing: want the same slice back")
	}
	mixed := []Instance{{ID: "a", Passing: true}, {ID: "b"}, {ID: "c", Passing: true}}
	if got := Passing(mixed); len(got) != 2 || got[0].ID != "a" || got[1].ID != "c" {
		t.Errorf("Passing = %+v", got)
	}
	if got := Passing(nil); len(got) != 0 {
		t.Errorf("Passing(nil) = %+v", got)
	}
}

// TestToInstancesFallsBackToNodeAddressAndSorts also checks that an
// instance passes only when every check passes, warning included.
func TestToInstancesFallsBackToNodeAddressAndSorts(t *testing.T) {
	entries := []*api.ServiceEntry{
		{Node: &api.Node{Node: "n2", Address: "10.0.0.2"}, Service: &api.AgentService{ID: "web-1", Port: 81}},
		{Node: &api.Node{Node: "n1", Address: "10.0.0.1"}, Service: &api.AgentService{ID: "web-1", Address: "192.0.2.1", Port: 80, Tags: []string{"v1"}}},
		{Node: &api.Node{Node: "n1", Address: "10.0.0.1"}, Service: &api.AgentService{ID: "web-0", Address: "2001:db8::1", Port: 80}},
		nil,
		{Node: &api.Node{Node: "n3"}},
		{Node: &api.Node{Node: "n4", Address: "10.0.0.4"}, Service: &api.AgentService{ID: "web-2", Port: 82},
			Checks: api.HealthChecks{{Status: api.HealthPassing}, {Status: api.HealthCritical}}},
		{Node: &api.Node{Node: "n5", Address: "10.0.0.5"}, Service: &api.AgentService{ID: "web-3", Port: 83},
			Checks: api.HealthChecks{{Status: api.HealthWarning}}},
	}
	one := Weights{Passing: 1, Warning: 1} // Consul's default without weights
	want := []Instance{
		{ID: "web-0", Node: "n1", Address: "2001:db8::1", Port: 80, Passing: true, Weights: one},
		{ID: "web-1", Node: "n1", Address: "192.0.2.1", Port: 80, Tags: []string{"v1"}, Passing: true, Weights: one},
		{ID: "web-1", Node: "n2", Address: "10.0.0.2", Port: 81, Passing: true, Weights: one},
		{ID: "web-2", Node: "n4", Address: "10.0.0.4", Port: 82, Weights: one},
		{ID: "web-3", Node: "n5", Address: "10.0.0.5", Port: 83, Warning: true, Weights: one},
	}
	got := toInstances(entries)
	if !equalInstances(got, want) {
		t.Errorf("toInstances = %+v\nwant %+v", got, want)
	}
	if hp := got[0].HostPort(); hp != "[2001:db8::1]:80" {
		t.Errorf("HostPort = %q", hp)
	}
}

// TestWeightsOfFollowsConsulAndBounds covers weights as Consul's answers
// may carry them: none (catalog registrations store zeros), what the
// agent accepts, and what it would refuse.
func TestWeightsOfFollowsConsulAndBounds(t *testing.T) {
	for _, c := range []struct {
		desc             string
		passing, warning int
		want             Weights
	}{
		{"no weights", 0, 0, Weights{1, 1}},
		{"agent default", 1, 1, Weights{1, 1}},
		{"warning gets none", 5, 0, Weights{5, 0}},
		{"registered", 3, 2, Weights{3, 2}},
		{"passing zero", 0, 4, Weights{1, 4}},
		{"negative", -7, -1, Weights{1, 1}},
		{"negative warning", 2, -1, Weights{2, 0}},
		{"too large", 1 << 40, 70000, Weights{MaxWeight, MaxWeight}},
	} {
		if got := weightsOf(c.passing, c.warning); got != c.want {
			t.Errorf("%s: weightsOf(%d, %d) = %+v, want %+v", c.desc, c.passing, c.warning, got, c.want)
		}
	}
	in := Instance{Weights: Weights{Passing: 3, Warning: 2}}
	if in.Weight() != 3 {
		t.Errorf("passing instance weight = %d, want 3", in.Weight())
	}
	in.Warning = true
	if in.Weight() != 2 {
		t.Errorf("warning instance weight = %d, want 2", in.Weight())
	}
}

// TestEnsureWaitsForFirstOutcome checks that Ensure returns once a new watch
// has answered (instances known), failed once, or ctx is done, whichever
// comes first, and never waits out a long poll.
func TestEnsureWaitsForFirstOutcome(t *testing.T) {
	web := []*api.ServiceEntry{{Node: &api.Node{Node: "n1", Address: "10.0.0.1"}, Service: &api.AgentService{ID: "web-1", Port: 80}}}
	tests := []struct {
		name       string
		first      fakeAnswer
		ctxTimeout time.Duration
		wantOK     bool
	}{
		{"answered: instances are known on return", fakeAnswer{Index: 4, Body: web}, time.Minute, true},
		{"failed once: returns without instances", fakeAnswer{Status: 500}, time.Minute, false},
		{"hung: returns when ctx is done", fakeAnswer{Hang: true}, 100 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verifyNoLeaks(t)
			fake := newFakeConsul(t, func(n int, _ fakeRequest) fakeAnswer {
				if n == 0 {
					return tt.first
				}
				return fakeAnswer{Hang: true}
			})
			h := NewHealth(testClient(t, fake.URL), Options{WaitTime: 10 * time.Second}, nil)
			defer h.Stop()
			key := ServiceKey{Name: "web"}

			ctx, cancel := context.WithTimeout(context.Background(), tt.ctxTimeout)
			defer cancel()
			start := time.Now()
			h.Ensure(ctx, []ServiceKey{key, key}) // duplicates are one watch
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Ensure took %s", took)
			}
			got, ok := h.Instances(key)
			if ok != tt.wantOK {
				t.Fatalf("Instances ok = %v, want %v", ok, tt.wantOK)
			}
			if ok && (len(got) != 1 || got[0].HostPort() != "10.0.0.1:80") {
				t.Errorf("Instances = %+v", got)
			}
			if reqs := fake.requests(); reqs[0].Path != "/v1/health/service/web" {
				t.Errorf("path = %q", reqs[0].Path)
			}
		})
	}
}

func TestEnsureAfterStopStartsNothing(t *testing.T) {
	verifyNoLeaks(t)
	fake := newFakeConsul(t, func(int, fakeRequest) fakeAnswer { return fakeAnswer{Index: 1, Body: []*api.ServiceEntry{}} })
	h := NewHealth(testClient(t, fake.URL), Options{}, nil)
	h.Stop()
	h.Ensure(context.Background(), []ServiceKey{{Name: "web"}})
	if _, ok := h.Instances(ServiceKey{Name: "web"}); ok {
		t.Error("a stopped Health reported instances")
	}
	if n := fake.count(); n != 0 {
		t.Errorf("a stopped Health sent %d requests", n)
	}
	h.Stop() // idempotent
}

func TestEqualInstancesComparesTags(t *testing.T) {
	a := []Instance{{ID: "1", Tags: []string{"v1"}}}
	b := []Instance{{ID: "1", Tags: []string{"v2"}}}
	if equalInstances(a, b) || !equalInstances(a, slices.Clone(a)) || !equalInstances(nil, []Instance{}) {
		t.Error("equalInstances is wrong")
	}
}

// TestToInstancesMarksMaintenance: only the check IDs Consul gives
// maintenance mode mark an instance, not any critical check.
func TestToInstancesMarksMaintenance(t *testing.T) {
	node := &api.Node{Node: "n1", Address: "10.0.0.1"}
	critical := func(id string) *api.HealthCheck { return &api.HealthCheck{CheckID: id, Status: api.HealthCritical} }
	entries := []*api.ServiceEntry{
		{Node: node, Service: &api.AgentService{ID: "a"}, Checks: api.HealthChecks{critical("service:a")}},
		{Node: node, Service: &api.AgentService{ID: "b"}, Checks: api.HealthChecks{critical(api.ServiceMaintPrefix + "b")}},
		{Node: node, Service: &api.AgentService{ID: "c"}, Checks: api.HealthChecks{critical(api.NodeMaint), {CheckID: "service:c", Status: api.HealthPassing}}},
	}
	got := toInstances(entries)
	for i, want := range []bool{false, true, true} {
		if got[i].Maintenance != want || got[i].Passing {
			t.Errorf("%s: maintenance %t passing %t, want maintenance %t, not passing", got[i].ID, got[i].Maintenance, got[i].Passing, want)
		}
	}
	if equalInstances(got[:1], []Instance{{ID: "a", Node: "n1", Address: "10.0.0.1", Maintenance: true}}) {
		t.Error("equalInstances ignores Maintenance: a change into maintenance would not be published")
	}
}
