package policy

import (
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
)

func TestLimiterBurstThenDenyThenRecover(t *testing.T) {
	clk := testkit.NewClock()
	l := NewLimiter(2, 3, LimiterOptions{Now: clk.Now})
	for i := range 3 {
		d := l.Allow("a")
		if !d.Allowed || d.Remaining != 2-i || d.Limit != 3 {
			t.Fatalf("request %d of the burst: %+v", i, d)
		}
	}
	d := l.Allow("a")
	if d.Allowed || d.Remaining != 0 || d.RetryAfter != 500*time.Millisecond {
		t.Fatalf("after the burst: %+v, want denied with RetryAfter 500ms", d)
	}
	if d := l.Allow("b"); !d.Allowed {
		t.Fatalf("another key shares the bucket: %+v", d)
	}
	clk.Advance(500 * time.Millisecond)
	if d := l.Allow("a"); !d.Allowed {
		t.Fatalf("after one refill interval: %+v", d)
	}
	if d := l.Allow("a"); d.Allowed {
		t.Fatalf("only one token refilled, second request allowed: %+v", d)
	}
}

func TestLimiterEvictsIdleBuckets(t *testing.T) {
	clk := testkit.NewClock()
	l := NewLimiter(1, 1, LimiterOptions{Now: clk.Now, Idle: time.Minute})
	for i := range 1000 {
		l.Allow(strconv.Itoa(i))
	}
	if n := l.Len(); n != 1000 {
		t.Fatalf("Len = %d, want 1000", n)
	}
	clk.Advance(2 * time.Minute)
	// Inserting a key sweeps idle buckets out of its shard; touching every
	// shard once sweeps them all.
	for i := range 5000 {
		l.Allow("new-" + strconv.Itoa(i))
	}
	if n := l.Len(); n != 5000 {
		t.Fatalf("Len = %d after the old keys went idle, want only the 5000 new ones", n)
	}
}

// TestLimiterMemoryIsBoundedUnderKeyFlood sends a million distinct keys,
// as a client rotating source addresses or API keys would, and checks the
// number of buckets and the live heap stay bounded.
func TestLimiterMemoryIsBoundedUnderKeyFlood(t *testing.T) {
	const keys = 1_000_000
	const maxKeys = 100_000
	// Documented bound: 100k buckets in at most 64 MiB of heap (measured
	// about 30 MB, i.e. ~300 bytes per bucket with its key and LRU entry).
	const heapBound = 64 << 20
	clk := testkit.NewClock()
	l := NewLimiter(10, 10, LimiterOptions{Now: clk.Now, MaxKeys: maxKeys})

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	peak := 0
	for i := range keys {
		l.Allow("client-" + strconv.Itoa(i))
		if i%100_000 == 0 {
			peak = max(peak, l.Len())
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	n := l.Len()
	t.Logf("%d distinct keys -> %d buckets live (peak sampled %d), heap grew %.1f MiB (%.0f B/bucket)",
		keys, n, peak, float64(grown)/(1<<20), float64(grown)/float64(max(n, 1)))
	if n > maxKeys || peak > maxKeys {
		t.Fatalf("%d buckets live (peak %d), bound is %d", n, peak, maxKeys)
	}
	if grown > heapBound {
		t.Fatalf("heap grew by %d bytes, bound is %d", grown, heapBound)
	}
	runtime.KeepAlive(l)
}

// TestLimiterMemoryDoesNotGrowWithKeyLength: keys are client input (a
// header value can be as long as the header limit), so a bucket must cost
// the same whatever the key's length.
func TestLimiterMemoryDoesNotGrowWithKeyLength(t *testing.T) {
	clk := testkit.NewClock()
	l := NewLimiter(10, 10, LimiterOptions{Now: clk.Now})
	long := strings.Repeat("k", 512<<10)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 2000 {
		l.Allow(long + strconv.Itoa(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("2,000 keys of 512 KiB: %d buckets, heap grew %.1f KiB", l.Len(), float64(grown)/1024)
	// 2,000 small buckets are well under 2 MiB; storing the keys would
	// take 1 GiB.
	if grown > 2<<20 {
		t.Fatalf("heap grew by %d bytes for 2,000 buckets: the keys are being kept", grown)
	}
	runtime.KeepAlive(l)
}

// TestLimiterClusterShareFollowsReplicas checks that a limit shared by n
// replicas gives each its share, rate and burst, and that a change of n
// reaches a bucket without refilling it: a replica leaving must not hand
// every client a fresh burst.
func TestLimiterClusterShareFollowsReplicas(t *testing.T) {
	clk := testkit.NewClock()
	var replicas atomic.Int64
	replicas.Store(3)
	l := NewLimiter(30, 30, LimiterOptions{Now: clk.Now, Replicas: func() int { return int(replicas.Load()) }})
	drain := func() int {
		n := 0
		for l.Allow("a").Allowed {
			n++
		}
		return n
	}
	if n := drain(); n != 10 {
		t.Fatalf("burst with 3 replicas: %d admitted, want 30/3 = 10", n)
	}
	if d := l.Allow("a"); d.Limit != 10 {
		t.Fatalf("X-RateLimit-Limit with 3 replicas: %d, want 10", d.Limit)
	}
	clk.Advance(time.Second)
	if n := drain(); n != 10 {
		t.Fatalf("one second with 3 replicas: %d admitted, want 10", n)
	}
	replicas.Store(2)
	// The bucket was empty when the count changed: no fresh burst.
	if d := l.Allow("a"); d.Allowed || d.Limit != 15 {
		t.Fatalf("right after going to 2 replicas: %+v, want denied with limit 15", d)
	}
	clk.Advance(time.Second)
	if n := drain(); n != 15 {
		t.Fatalf("one second with 2 replicas: %d admitted, want 30/2 = 15", n)
	}
	replicas.Store(0) // not yet known: counts as this replica alone
	// A change applies to a bucket from its next request on.
	if d := l.Allow("a"); d.Allowed || d.Limit != 30 {
		t.Fatalf("right after going to 1 replica: %+v, want denied with limit 30", d)
	}
	clk.Advance(time.Second)
	if n := drain(); n != 30 {
		t.Fatalf("one second alone: %d admitted, want the whole rate of 30", n)
	}
	replicas.Store(100) // more replicas than burst: still one token each
	clk.Advance(time.Second)
	if d := l.Allow("a"); !d.Allowed || d.Limit != 1 {
		t.Fatalf("with 100 replicas: %+v, want one token admitted", d)
	}
}
