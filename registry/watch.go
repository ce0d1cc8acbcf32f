package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/time/rate"
)

// fetchFunc performs one read against Consul. It must pass q (which carries
// the per-call context and the blocking index) to the api client, changing
// only what selects the data read (a health watch's Datacenter).
type fetchFunc[T any] func(q *api.QueryOptions) (T, *api.QueryMeta, error)

// watch is the one blocking-query loop every watcher in this package runs.
// It publishes immutable snapshots of type T.
type watch[T any] struct {
	fetch  fetchFunc[T]
	equal  func(a, b T) bool
	notify func()
	opts   Options // with defaults applied
	log    hclog.Logger
	id     uint64 // key under which this loop reports to opts.Status
	// lane carries every call of the loop on one connection of its own
	// (client.go), so a long poll never takes a short call's connection
	// nor makes net/http open another.
	lane lane

	// ready is closed once the first call has either answered or failed, so
	// Health.Ensure can wait for a new watch without polling.
	ready     chan struct{}
	readyOnce sync.Once

	mu    sync.RWMutex
	value T
	ok    bool
}

func newWatch[T any](fetch fetchFunc[T], equal func(a, b T) bool, notify func(), opts Options, log hclog.Logger) *watch[T] {
	if notify == nil {
		notify = func() {}
	}
	return &watch[T]{
		fetch:  fetch,
		equal:  equal,
		notify: notify,
		opts:   opts,
		log:    log,
		id:     nextWatchID(),
		ready:  make(chan struct{}),
	}
}

// snapshot returns the latest published value; ok is false until the first
// successful answer. Errors never clear it.
func (w *watch[T]) snapshot() (T, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.value, w.ok
}

func (w *watch[T]) markReady() { w.readyOnce.Do(func() { close(w.ready) }) }

// run loops until ctx is done. It starts no goroutines of its own, so when it
// returns nothing of the watch is left running.
func (w *watch[T]) run(ctx context.Context) {
	defer w.opts.Status.forget(w.id)
	defer w.lane.close()
	// A watch stopped before its first answer must not leave Ensure waiting.
	defer w.markReady()

	limiter := rate.NewLimiter(w.opts.RateLimit, w.opts.Burst)
	var index uint64 // 0 until the first answer: a plain, non-blocking read
	failures := 0
	// consistent marks the next read as ?consistent. A Consul server that
	// just restarted, or just became leader, can serve default reads from a
	// state store that has not replayed its raft log yet: an old, shorter
	// answer that would make the gateway drop routes and instances it
	// still has. A consistent read waits until the leader is ready. It
	// costs a round trip to the leader, so only the reads that re-sync use
	// it: the first, the one after a failure, and the one after the index
	// went backwards. Long polls from a synced index stay default reads.
	consistent := true
	for {
		if err := w.pace(ctx, limiter); err != nil {
			return
		}
		// After a failure, probe with a plain read: a blocking call would
		// only succeed once something changed or WaitTime passed, leaving
		// Status degraded for up to a minute after Consul is back.
		waitIndex := index
		if failures > 0 {
			waitIndex = 0
		}
		value, meta, err := w.call(ctx, waitIndex, consistent)
		if ctx.Err() != nil {
			return // shutting down: not a Consul failure
		}
		if err != nil {
			failures++
			consistent = true
			w.opts.Status.report(w.id, w.opts.Now(), err)
			if w.opts.OnError != nil {
				w.opts.OnError()
			}
			delay := w.opts.backoff(failures)
			w.log.Warn("consul query failed, keeping last snapshot", "error", err, "failures", failures, "retry_in", delay)
			w.markReady()
			if w.opts.Sleep(ctx, delay) != nil {
				return
			}
			continue
		}
		failures = 0
		w.opts.Status.report(w.id, w.opts.Now(), nil)
		next := nextWaitIndex(index, meta.LastIndex)
		if next == 0 && !consistent {
			// The index went backwards: this answer may be the stale
			// state above. Re-read consistently before believing it.
			w.log.Debug("consul index went backwards; re-reading consistently", "held", index, "got", meta.LastIndex)
			index, consistent = 0, true
			continue
		}
		consistent = false
		w.publish(value, index != 0 && next == index)
		index = next
		w.markReady()
	}
}

// pace takes one token from the limiter, sleeping through opts.Sleep so that
// tests control time.
func (w *watch[T]) pace(ctx context.Context, limiter *rate.Limiter) error {
	return w.opts.pace(ctx, limiter)
}

// call performs one read bounded by the per-call deadline; index 0 makes it
// a plain, non-blocking read, consistent a ?consistent one.
func (w *watch[T]) call(ctx context.Context, index uint64, consistent bool) (T, *api.QueryMeta, error) {
	timeout := w.opts.callTimeout()
	callCtx, cancel := context.WithTimeout(withLane(ctx, &w.lane), timeout)
	defer cancel()

	q := &api.QueryOptions{WaitIndex: index, RequireConsistent: consistent}
	if index > 0 {
		// Only a query with an index blocks; sending a wait without one
		// would suggest a blocking read that Consul answers immediately.
		q.WaitTime = w.opts.WaitTime
	}
	value, meta, err := w.fetch(q.WithContext(callCtx))
	if err != nil {
		if errors.Is(callCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("%w (%s): %w", ErrCallTimeout, timeout, err)
		}
		// Every watch's 403 is typed, also those whose fetch does not
		// name the permission it needs (catalog tags, Connect), so
		// Status reports a refusal rather than an unreachable agent.
		if IsPermissionDenied(err) && !errors.Is(err, ErrPermissionDenied) {
			err = fmt.Errorf("%w: %w", ErrPermissionDenied, err)
		}
		var zero T
		return zero, nil, err
	}
	if meta == nil {
		meta = &api.QueryMeta{}
	}
	return value, meta, nil
}

// publish stores value and notifies unless nothing observable changed. An
// unchanged index means nothing under the query changed (typically the wait
// timed out); equal content under a new index happens because indexes are shared
// by unrelated writes (e.g. any health change bumps every service's index).
func (w *watch[T]) publish(value T, sameIndex bool) {
	w.mu.Lock()
	if w.ok && (sameIndex || w.equal(w.value, value)) {
		w.mu.Unlock()
		return
	}
	w.value, w.ok = value, true
	w.mu.Unlock()
	w.notify()
}

// nextWaitIndex applies Consul's blocking-query rules to the index held and
// the X-Consul-Index just received, returning the WaitIndex for the next call.
// An index below 1 is treated as 1 so that we never block on index 0 (which
// Consul answers immediately, turning the watch into a busy poll); an index
// that went backwards (snapshot restore, leader change to a lagging server)
// resets to 0 so the next call is a plain read that re-syncs us.
func nextWaitIndex(held, got uint64) uint64 {
	got = max(got, 1)
	if got < held {
		return 0
	}
	return got
}
