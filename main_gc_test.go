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

// TestApplyGCYieldsToGOGC: with GOGC or GOMEMLIMIT set, the flags left at
// their defaults leave the collector alone; a flag given still applies.
func TestApplyGCYieldsToGOGC(t *testing.T) {
	restoreGC(t)
	none := func(string) bool { return false }
	all := func(string) bool { return true }
	for _, name := range []string{"GOGC", "GOMEMLIMIT"} {
		env := func(n string) (string, bool) { return "150", n == name }
		debug.SetGCPercent(150)
		startLimitFloor(0)
		applyGC(gcFlags{percent: 400, limit: 16 << 20}, none, env)
		if got := debug.SetGCPercent(150); got != 150 {
			t.Errorf("%s set, -gc-percent default: percent = %d, want 150", name, got)
		}
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Errorf("%s set, -memory-limit default: limit = %d, want none", name, got)
		}
		applyGC(gcFlags{percent: 400, limit: 1 << 40}, all, env)
		if got := debug.SetGCPercent(150); got != 400 {
			t.Errorf("%s set, -gc-percent given: percent = %d, want 400", name, got)
		}
		if got := debug.SetMemoryLimit(-1); got < 1<<40 {
			t.Errorf("%s set, -memory-limit given: limit = %d, want at least %d", name, got, int64(1)<<40)
		}
	}
	unset := func(string) (string, bool) { return "", false }
	startLimitFloor(0)
	applyGC(gcFlags{percent: 300, limit: 1 << 41}, none, unset)
	if got := debug.SetGCPercent(150); got != 300 {
		t.Errorf("GOGC unset: percent = %d, want the default 300", got)
	}
	if got := debug.SetMemoryLimit(-1); got < 1<<41 {
		t.Errorf("GOMEMLIMIT unset: limit = %d, want at least the default %d", got, int64(1)<<41)
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
