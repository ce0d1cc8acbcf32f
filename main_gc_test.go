package main

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/gatewayco/gateway/internal/testkit"
)

func TestGCFlagsRejected(t *testing.T) {
	for _, args := range [][]string{{"-gc-percent", "0"}, {"-gc-percent", "10001"}, {"-memory-limit", "-1"}} {
		if err := run(args, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}

// restoreGC puts the test binary's collector back as it was.
func restoreGC(t *testing.T) {
	percent := debug.SetGCPercent(100)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		startLimitFloor(0)
	})
}

// TestApplyGCYieldsToGOGC: a flag left at its default does not override
// the operator's GOGC or GOMEMLIMIT; a flag given does.
func TestApplyGCYieldsToGOGC(t *testing.T) {
	restoreGC(t)
	env := func(name string) (string, bool) { return "150", name == "GOGC" || name == "GOMEMLIMIT" }
	none := func(string) bool { return false }
	debug.SetGCPercent(150)
	debug.SetMemoryLimit(math.MaxInt64)
	applyGC(gcFlags{percent: 400, limit: 16 << 20}, none, env)
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("GOGC set, -gc-percent default: percent = %d, want 150", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT set, -memory-limit default: limit = %d, want none", got)
	}
	all := func(string) bool { return true }
	applyGC(gcFlags{percent: 400, limit: 1 << 40}, all, env)
	if got := debug.SetGCPercent(150); got != 400 {
		t.Errorf("-gc-percent given: percent = %d, want 400", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<40 {
		t.Errorf("-memory-limit given: limit = %d, want %d", got, 1<<40)
	}
	unset := func(string) (string, bool) { return "", false }
	applyGC(gcFlags{percent: 300, limit: 1 << 41}, none, unset)
	if got := debug.SetGCPercent(150); got != 300 {
		t.Errorf("GOGC unset: percent = %d, want the default 300", got)
	}
}

// TestMemoryLimitFollowsLiveHeap: a live heap beyond -memory-limit raises
// the limit to twice the live heap after a collection, so the collector
// does not spin against a limit it cannot meet.
func TestMemoryLimitFollowsLiveHeap(t *testing.T) {
	restoreGC(t)
	const liveBytes = 64 << 20
	live := make([]byte, liveBytes)
	for i := range live {
		live[i] = 1
	}
	startLimitFloor(8 << 20)
	testkit.WaitFor(t, "the limit to exceed twice the live heap", func() bool {
		runtime.GC()
		return debug.SetMemoryLimit(-1) >= 2*liveBytes
	})
	runtime.KeepAlive(live)
	live = nil
	testkit.WaitFor(t, "the limit to fall back to its base", func() bool {
		runtime.GC()
		return debug.SetMemoryLimit(-1) < liveBytes
	})
}
