package balancer

import (
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/registry"
)

func insts(spec string) []registry.Instance {
	// "a+ b- c~ d!": instance ids with + for passing, - for failing, ~
	// for in maintenance (which Consul reports as a critical check) and
	// ! for warning (weights 1, warning 2; "d!0": warning weight 0).
	var out []registry.Instance
	for _, f := range strings.Fields(spec) {
		warnWeight := 2
		if strings.HasSuffix(f, "!0") {
			f, warnWeight = f[:len(f)-1], 0
		}
		mark := f[len(f)-1]
		out = append(out, registry.Instance{ID: f[:len(f)-1], Passing: mark == '+', Maintenance: mark == '~',
			Warning: mark == '!', Weights: registry.Weights{Passing: 1, Warning: warnWeight}})
	}
	return out
}

func ids(in []registry.Instance) string {
	var s []string
	for _, i := range in {
		s = append(s, i.ID)
	}
	return strings.Join(s, " ")
}

func TestInstanceSelector(t *testing.T) {
	type step struct {
		registered string
		want       string
		panic      string // substring of the reason; "" = no panic
	}
	tests := []struct {
		name      string
		threshold float64
		steps     []step
	}{
		{"healthy service uses passing instances", 0.5, []step{
			{"a+ b+ c+", "a b c", ""},
			{"a+ b- c+", "a c", ""},
		}},
		{"below the threshold routes to all known-good", 0.5, []step{
			{"a+ b+ c+", "a b c", ""},
			{"a+ b- c-", "a b c", "only 1 of 3"},
			{"a+ b+ c-", "a b", ""},
		}},
		{"instances that never passed get no traffic, even in panic", 0.5, []step{
			{"a- b- c-", "", ""}, // all registered before ready
			{"a+ b- c-", "a", ""},
			{"a+ b+ c-", "a b", ""},
			{"a- b- c-", "a b", "only 0 of 2"},
			{"a- b- c- d-", "a b", "only 0 of 2"},
		}},
		{"an instance that left Consul is forgotten", 0.5, []step{
			{"a+ b+ c+", "a b c", ""},
			{"a+", "a", ""},
			{"a+ b- c-", "a", ""}, // b and c are back but have not passed yet
		}},
		{"scale-down is not panic", 0.5, []step{
			{"a+ b+ c+ d+", "a b c d", ""},
			{"a+ b+", "a b", ""},
		}},
		{"everything deregistered keeps the last known", 0.5, []step{
			{"a+ b+", "a b", ""},
			{"a+ b-", "a", ""}, // exactly half passing is not below 50%
			{"", "a", "no instances"},
			{"c+", "c", ""},
		}},
		{"threshold zero disables panic but not the empty-list rule", 0, []step{
			{"a+ b+ c+", "a b c", ""},
			{"a+ b- c-", "a", ""},
			{"", "a", "no instances"},
		}},
		{"failing instances deregistered afterwards get no traffic", 0, []step{
			{"a+ b+", "a b", ""},
			{"a- b-", "", ""},
			{"", "", ""},
		}},
		{"maintenance is never panic-eligible", 0.5, []step{
			{"a+ b+ c+", "a b c", ""},
			{"a~ b~ c+", "c", ""},
			{"a~ b~ c-", "", ""}, // c alone is not enough to panic
			{"a~ b~ c+", "c", ""},
		}},
		{"draining every instance serves none, nor after deregistering", 0.5, []step{
			{"a+ b+ c+", "a b c", ""},
			{"a~ b~ c~", "", ""},
			{"", "", ""},
		}},
		{"back from maintenance, an instance must pass again", 0.5, []step{
			{"a+ b+ c+", "a b c", ""},
			{"a~ b+ c+", "b c", ""},
			{"a- b- c-", "b c", "only 0 of 2"}, // a is not known-good yet
			{"a+ b- c-", "a b c", "only 1 of 3"},
		}},
		{"a single instance never panics", 0.5, []step{
			{"a+", "a", ""},
			{"a-", "", ""},
			{"a- b-", "", ""}, // b never passed
		}},
		{"two known-good can panic", 0.5, []step{
			{"a+ b+", "a b", ""},
			{"a- b-", "a b", "only 0 of 2"},
		}},
		{"the default threshold is off", DefaultPanicThreshold, []step{
			{"a+ b+ c+", "a b c", ""},
			{"a- b- c+", "c", ""},
			{"a- b- c-", "", ""},
		}},
		{"a service never seen with instances stays empty", 0.5, []step{
			{"", "", ""},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSelector(tc.threshold, hclog.NewNullLogger())
			key := registry.ServiceKey{Name: "svc"}
			for i, st := range tc.steps {
				got, reason := s.Choose(key, insts(st.registered))
				if ids(got) != st.want {
					t.Fatalf("step %d (%q): serve %q, want %q", i, st.registered, ids(got), st.want)
				}
				if (reason == "") != (st.panic == "") || !strings.Contains(reason, st.panic) {
					t.Fatalf("step %d (%q): reason %q, want one containing %q", i, st.registered, reason, st.panic)
				}
			}
		})
	}
}

func TestInstanceSelectorForgetsUnusedServices(t *testing.T) {
	s := NewSelector(0.5, hclog.NewNullLogger())
	a, b := registry.ServiceKey{Name: "a"}, registry.ServiceKey{Name: "b"}
	s.Choose(a, insts("x+"))
	s.Choose(b, insts("y-")) // never passed: no lastKnown, but a record
	s.Forget(map[registry.ServiceKey]bool{})
	if len(s.everPassed)+len(s.lastKnown)+len(s.reasons) != 0 {
		t.Fatalf("state left for unused services: %v %v %v", s.everPassed, s.lastKnown, s.reasons)
	}
}

// TestWarningInstancesOnlyWhenAllowed: Choose keeps warning instances in
// its answer, marked, and Servable leaves them out unless the caller
// allows them; a warning weight of zero keeps one out regardless, and
// panic mode serves every chosen instance.
func TestWarningInstancesOnlyWhenAllowed(t *testing.T) {
	s := NewSelector(0, nil)
	key := registry.ServiceKey{Name: "svc"}
	chosen, reason := s.Choose(key, insts("a+ b! c- d!0 e~"))
	if reason != "" || ids(chosen) != "a b d" {
		t.Fatalf("Choose = %q (%q), want a b d", ids(chosen), reason)
	}
	if got := ids(Servable(chosen, false, false)); got != "a" {
		t.Errorf("default = %q, want a", got)
	}
	allowed := Servable(chosen, true, false)
	if got := ids(allowed); got != "a b" {
		t.Errorf("allow_warning = %q, want a b", got)
	}
	if allowed[1].Weight() != 2 {
		t.Errorf("warning instance weight = %d, want its warning weight 2", allowed[1].Weight())
	}
	if got := ids(Servable(chosen, false, true)); got != "a b d" {
		t.Errorf("panic = %q, want every chosen instance", got)
	}
	all := insts("a+ b+")
	if got := Servable(all, false, false); &got[0] != &all[0] {
		t.Error("nothing left out: want the same slice back")
	}
}
