package balancer

import (
	"testing"

	"github.com/gatewayco/gateway/registry"
)

// TestKnownGoodRecordStaysExact checks the record of instances that ever
// passed when a build leaves a service as it was (the record is kept, not
// rebuilt) and when an answer repeats an instance: an instance gone from
// the answer must leave the record, so that when it comes back it has to
// pass again before panic mode may pick it.
func TestKnownGoodRecordStaysExact(t *testing.T) {
	s := NewSelector(0.5, nil)
	key := registry.ServiceKey{Name: "svc"}
	s.Choose(key, insts("a+ b+ c+"))
	if got := ids(s.knownGood(key, insts("a+ b- c+"))); got != "a b c" {
		t.Fatalf("known good %q, want a b c", got)
	}
	if len(s.everPassed[key]) != 3 {
		t.Fatalf("record %v after an unchanged set", s.everPassed[key])
	}
	// b is gone and a repeated: three entries still, but two instances.
	s.knownGood(key, insts("a+ a+ c+"))
	if s.everPassed[key][instanceID{"", "b"}] {
		t.Fatal("b stayed in the record after it left the answer")
	}
	if got := ids(s.knownGood(key, insts("a- b- c-"))); got != "a c" {
		t.Fatalf("known good %q after b came back failing, want a c", got)
	}
}
