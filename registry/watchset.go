package registry

import (
	"context"
	"sync"
)

// watchSet keeps one blocking watch per key, for watches whose keys
// follow the routing table (a service's instances, a destination's
// intentions): ensure starts the missing ones and stops the removed ones.
// Safe for concurrent use.
type watchSet[K comparable, T any] struct {
	// newWatch builds the watch of a key; it must not start it.
	newWatch func(K) *watch[T]

	mu      sync.Mutex
	stopped bool
	running map[K]*runningWatch[T]
}

type runningWatch[T any] struct {
	w      *watch[T]
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop goroutine has returned
}

func newWatchSet[K comparable, T any](newWatch func(K) *watch[T]) *watchSet[K, T] {
	return &watchSet[K, T]{newWatch: newWatch, running: make(map[K]*runningWatch[T])}
}

// ensure makes the running watches those of keys (duplicates ignored),
// waiting for the stopped ones' goroutines, then blocks until every newly
// started watch has answered or failed once, or ctx is done. After stop it
// does nothing.
func (s *watchSet[K, T]) ensure(ctx context.Context, keys []K) {
	want := make(map[K]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	var removed, started []*runningWatch[T]
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	for k, rw := range s.running {
		if !want[k] {
			delete(s.running, k)
			rw.cancel()
			removed = append(removed, rw)
		}
	}
	for k := range want {
		if s.running[k] == nil {
			rw := s.start(k)
			s.running[k] = rw
			started = append(started, rw)
		}
	}
	s.mu.Unlock()

	// Waiting outside the lock keeps snapshot responsive meanwhile; the
	// cancelled calls return promptly because they abort their HTTP request.
	for _, rw := range removed {
		<-rw.done
	}
	for _, rw := range started {
		select {
		case <-rw.w.ready:
		case <-ctx.Done():
			return
		}
	}
}

// start launches the loop of k; the caller holds s.mu. Watches outlive the
// ensure call that started them, so they hang off their own context.
func (s *watchSet[K, T]) start(k K) *runningWatch[T] {
	ctx, cancel := context.WithCancel(context.Background())
	rw := &runningWatch[T]{w: s.newWatch(k), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(rw.done)
		rw.w.run(ctx)
	}()
	return rw
}

// snapshot is the latest answer of k's watch; ok is false until its first
// answer and for keys not passed to the last ensure.
func (s *watchSet[K, T]) snapshot(k K) (T, bool) {
	s.mu.Lock()
	rw := s.running[k]
	s.mu.Unlock()
	if rw == nil {
		var zero T
		return zero, false
	}
	return rw.w.snapshot()
}

// stop stops every watch and waits for their goroutines. It is final:
// later ensure calls start nothing. Safe to call more than once.
func (s *watchSet[K, T]) stop() {
	s.mu.Lock()
	s.stopped = true
	all := s.running
	s.running = make(map[K]*runningWatch[T])
	s.mu.Unlock()
	for _, rw := range all {
		rw.cancel()
	}
	for _, rw := range all {
		<-rw.done
	}
}
