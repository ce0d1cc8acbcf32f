package main

import (
	"flag"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// The gateway's live heap is small (a few MB: the route table, the pools)
// while every request allocates, so with Go's default GOGC=100 it
// collects many times a second and the collector is a fair share of the
// CPU per request. The gateway therefore grows the heap further between
// collections (-gc-percent, 400 by default) and holds it down with a
// soft memory limit (-memory-limit) instead, so RSS stays bounded. The
// limit is never allowed to make the collector work harder than GOGC=100
// would: after each collection it is raised to at least twice the live
// heap plus the runtime's other memory, so a gateway whose table is large
// (thousands of services) collects as it would by default rather than
// spinning against a limit below its live heap.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 16 << 20
	maxGCPercent       = 10000
)

// gcFlags are -gc-percent and -memory-limit.
type gcFlags struct {
	percent int
	limit   int64
}

// addGCFlags declares -gc-percent and -memory-limit.
func addGCFlags(fs *flag.FlagSet, f *gcFlags) {
	fs.IntVar(&f.percent, "gc-percent", defaultGCPercent, "heap growth between collections in percent, as GOGC; left at its default it yields to a set GOGC or GOMEMLIMIT")
	fs.Int64Var(&f.limit, "memory-limit", defaultMemoryLimit, "soft limit in bytes on the Go runtime's memory, as GOMEMLIMIT but never below twice the live heap (0: none); left at its default it yields to a set GOGC or GOMEMLIMIT")
}

// check validates the flags.
func (f gcFlags) check() error {
	if f.percent < 1 || f.percent > maxGCPercent {
		return fmt.Errorf("%w: -gc-percent must be between 1 and %d", errUsage, maxGCPercent)
	}
	if f.limit < 0 {
		return fmt.Errorf("%w: -memory-limit must not be negative", errUsage)
	}
	return nil
}

// applyGC sets the collector from f. given reports whether a flag was set
// on the command line or by its GATEWAY_* variable. When the operator
// set GOGC or GOMEMLIMIT, the flags left at their defaults leave the
// collector to those variables, so a Go setting tuned as a pair (say,
// GOGC=off with a GOMEMLIMIT) is not half overridden.
func applyGC(f gcFlags, given func(name string) bool, lookup func(string) (string, bool)) {
	_, gogc := lookup("GOGC")
	_, gomemlimit := lookup("GOMEMLIMIT")
	env := gogc || gomemlimit
	if given("gc-percent") || !env {
		debug.SetGCPercent(f.percent)
	}
	if (given("memory-limit") || !env) && f.limit > 0 {
		startLimitFloor(f.limit)
	}
}

var (
	// limitBase is the -memory-limit the hook keeps the floor above; 0
	// stops the hook and lifts the limit.
	limitBase atomic.Int64
	// limitHooked reports whether the after-collection hook is armed.
	limitHooked atomic.Bool
)

// startLimitFloor sets the soft memory limit to base and, after every
// collection, to at least twice the live heap plus the memory the runtime
// holds besides the heap (stacks, metadata), so the limit only trims the
// extra growth -gc-percent allows and never forces collections more often
// than GOGC=100 would. base 0 lifts the limit (tests).
func startLimitFloor(base int64) {
	limitBase.Store(base)
	if base <= 0 {
		debug.SetMemoryLimit(math.MaxInt64)
		return
	}
	debug.SetMemoryLimit(base)
	if !limitHooked.CompareAndSwap(false, true) {
		return
	}
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	var afterGC func(*gcSentinel)
	afterGC = func(s *gcSentinel) {
		b := limitBase.Load()
		if b <= 0 {
			limitHooked.Store(false)
			return
		}
		debug.SetMemoryLimit(limitFor(b, samples))
		runtime.SetFinalizer(s, afterGC)
	}
	// A finalizer runs once after the collection that finds its object
	// unreachable; re-arming it each time makes it a hook on every cycle
	// at no cost between them.
	runtime.SetFinalizer(&gcSentinel{}, afterGC)
}

// gcSentinel is the unreachable object whose finalizer marks a collection.
// It has a pointer-free field so it is a real allocation, not the
// zero-size base the runtime shares.
type gcSentinel struct{ _ [16]byte }

// limitFor is the memory limit for the runtime's state in samples (read
// afresh): base, or twice the live heap plus the non-heap memory if that
// is more.
func limitFor(base int64, samples []metrics.Sample) int64 {
	metrics.Read(samples)
	v := func(i int) int64 {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(samples[i].Value.Uint64())
	}
	live := v(0)
	nonHeap := v(1) - v(2) - v(3) - v(4) - v(5)
	if nonHeap < 0 {
		nonHeap = 0
	}
	if floor := 2*live + nonHeap; floor > base {
		return floor
	}
	return base
}

// gcGiven reports, for applyGC, which flags of fs were set.
func gcGiven(fs *flag.FlagSet) func(string) bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return func(name string) bool { return set[name] }
}
