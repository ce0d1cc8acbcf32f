package registry

import (
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// BenchmarkCheckList is what each answer of the shared check watch costs
// the gateway at 10,000 services of 3 instances: decoding 30,000 checks
// as Consul serializes them and computing the fingerprints. It gives the
// per-check cost docs/capacity.md starts from.
func BenchmarkCheckList(b *testing.B) {
	const services, per = 10_000, 3
	checks := make([]*api.HealthCheck, 0, services*per)
	for i := range services {
		for j := range per {
			id := fmt.Sprintf("svc%d-%d", i, j)
			checks = append(checks, &api.HealthCheck{Node: "node-1", CheckID: "check-" + id, Name: "Service check", Status: api.HealthPassing,
				Output: "HTTP GET http://10.0.0.1:8080/health: 200 OK Output: ok", ServiceID: id, ServiceName: fmt.Sprintf("svc%d", i),
				ServiceTags: []string{"v1"}, Type: "http", Definition: api.HealthCheckDefinition{HTTP: "http://10.0.0.1:8080/health"}, CreateIndex: 10, ModifyIndex: uint64(1000 + i)})
		}
	}
	body, err := json.Marshal(checks)
	if err != nil {
		b.Fatal(err)
	}
	s := newSharedHealth(&Health{opts: Options{}.withDefaults()})
	b.SetBytes(int64(len(body)))
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		var out []checkLite
		if err := json.Unmarshal(body, &out); err != nil {
			b.Fatal(err)
		}
		s.onChecks(out)
	}
	// CPU time, not wall time: on a shared machine it is the figure that
	// holds still.
	b.ReportMetric(float64(len(body))/float64(len(checks)), "bytes/check")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/float64(len(checks)), "cpu-ns/check")
}

// TestCheckFingerprintsFollowChanges: a changed status, index, or a check
// gone all change the fingerprint; the order Consul lists checks in does
// not.
func TestCheckFingerprintsFollowChanges(t *testing.T) {
	a := checkLite{Node: "n", CheckID: "c1", ServiceID: "web-1", ServiceName: "web", Status: "passing", ModifyIndex: 5}
	b := checkLite{Node: "n", CheckID: "c2", ServiceID: "web-2", ServiceName: "web", Status: "passing", ModifyIndex: 6}
	sum := func(cs ...checkLite) uint64 {
		var h uint64
		for _, c := range cs {
			h += checkHash(c)
		}
		return h
	}
	if sum(a, b) != sum(b, a) {
		t.Error("order changes the fingerprint")
	}
	flapped := a
	flapped.Status, flapped.ModifyIndex = "critical", 7
	for name, other := range map[string]uint64{"flap": sum(flapped, b), "gone": sum(b), "split fields": sum(checkLite{Node: "nc", CheckID: "1", ServiceID: "web-1", Status: "passing", ModifyIndex: 5}, b)} {
		if other == sum(a, b) {
			t.Errorf("%s leaves the fingerprint unchanged", name)
		}
	}
	if got := changed(map[string]uint64{"a": 1, "b": 2}, map[string]uint64{"b": 3, "c": 4}); len(got) != 3 || !got["a"] || !got["b"] || !got["c"] {
		t.Errorf("changed = %v, want a, b and c", got)
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
