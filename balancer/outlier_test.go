package balancer

import (
	"errors"
	"testing"
	"time"

	"github.com/gatewayco/gateway/registry"
)

// TestOutlierEjectionFollowsTheCallersVerdict: consecutive failures eject
// for base × ejections (capped), a success resets the count, and only
// what the caller calls a failure counts.
func TestOutlierEjectionFollowsTheCallersVerdict(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	o := NewOutlierTracker(3, time.Second, nil)
	h := o.ForHosts(registry.ServiceKey{Name: "svc"}, []string{"a:1"})[0]
	boom := errors.New("connection refused")
	fail := func(n int) {
		for range n {
			o.Record(h, "a:1", true, boom, now)
		}
	}
	fail(2)
	o.Record(h, "a:1", false, nil, now) // a success in between
	fail(2)
	if h.Ejected(now) {
		t.Fatal("ejected without three failures in a row")
	}
	fail(1)
	if !h.Ejected(now) || h.Ejected(now.Add(time.Second)) {
		t.Fatalf("first ejection: ejected now %v, after 1s %v; want true, false", h.Ejected(now), h.Ejected(now.Add(time.Second)))
	}
	for n := 2; n <= maxEjectionMultiplier+2; n++ {
		fail(3)
		want := time.Duration(min(n, maxEjectionMultiplier)) * time.Second
		if !h.Ejected(now.Add(want-time.Nanosecond)) || h.Ejected(now.Add(want)) {
			t.Fatalf("ejection %d does not last %s", n, want)
		}
	}
}

// TestOutlierRecordsFollowInstancesAcrossSwaps: a record lives while a
// build asks for it, and an abandoned build changes nothing.
func TestOutlierRecordsFollowInstancesAcrossSwaps(t *testing.T) {
	o := NewOutlierTracker(1, time.Minute, nil)
	key := registry.ServiceKey{Name: "svc"}
	first := o.ForHosts(key, []string{"a:1", "b:1"})
	o.Swap()
	if again := o.ForHosts(key, []string{"b:1"}); again[0] != first[1] {
		t.Fatal("b's record did not survive the swap")
	}
	o.Discard()
	if again := o.ForHosts(key, []string{"a:1"}); again[0] != first[0] {
		t.Fatal("a discarded build dropped a's record")
	}
	o.Swap()
	o.Swap() // a build that no longer has a
	if again := o.ForHosts(key, []string{"a:1"}); again[0] == first[0] {
		t.Fatal("a's record outlived the instance")
	}
	if NewOutlierTracker(0, time.Minute, nil).ForHosts(key, []string{"a:1"}) != nil {
		t.Fatal("records handed out with ejection off")
	}
}
