package registry

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnreachable is wrapped by Status.Err while some watch's most recent call
// to Consul failed.
var ErrUnreachable = errors.New("consul unreachable")

// ErrCallTimeout is wrapped by the error of a call that hit its per-call
// deadline (WaitTime + WaitTime/16 + Margin) while its watch was still running:
// the sign of a half-open connection or a stalled agent.
var ErrCallTimeout = errors.New("consul call exceeded its deadline")

// Status aggregates Consul reachability over all watches sharing it, for the
// gateway's /health endpoint. The zero value is ready to use and a nil *Status
// is valid (it reports healthy and never records anything). It is safe for
// concurrent use.
type Status struct {
	mu          sync.Mutex
	failing     map[uint64]failure // by watch id; absent means last call succeeded
	seq         uint64
	lastSuccess time.Time
}

type failure struct {
	err error
	seq uint64 // orders failures so Err can name the most recent one
}

// watchIDs hands out the keys under which watches report to a Status.
var watchIDs atomic.Uint64

func nextWatchID() uint64 { return watchIDs.Add(1) }

// Err returns nil when every watch's most recent call succeeded (including
// before any call was made; see LastSuccess for that). Otherwise it returns an
// error wrapping ErrUnreachable and the most recent failure, e.g.
// "consul unreachable: <err>". A refusal by Consul's ACLs is named before
// any other failure and wraps ErrPermissionDenied instead, e.g. "consul
// ACLs denied the gateway's token: reading ...": it does not heal by
// retrying, and calling it unreachable would send an operator looking at
// the network.
func (s *Status) Err() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var last, lastDenied failure
	for _, f := range s.failing {
		if f.seq > last.seq {
			last = f
		}
		if f.seq > lastDenied.seq && errors.Is(f.err, ErrPermissionDenied) {
			lastDenied = f
		}
	}
	n := len(s.failing)
	switch {
	case n == 0:
		return nil
	case lastDenied.err != nil && n == 1:
		return lastDenied.err
	case lastDenied.err != nil:
		return fmt.Errorf("%d watches failing: %w", n, lastDenied.err)
	case n == 1:
		return fmt.Errorf("%w: %w", ErrUnreachable, last.err)
	default:
		return fmt.Errorf("%w (%d watches failing): %w", ErrUnreachable, n, last.err)
	}
}

// LastSuccess returns when any watch last got an answer from Consul, by the
// watches' Options.Now clock. The zero time means never.
func (s *Status) LastSuccess() time.Time {
	if s == nil {
		return time.Time{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSuccess
}

// report records the outcome of one call of watch id; err nil means success.
func (s *Status) report(id uint64, at time.Time, err error) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.failing, id)
		if at.After(s.lastSuccess) {
			s.lastSuccess = at
		}
		return
	}
	if s.failing == nil {
		s.failing = make(map[uint64]failure)
	}
	s.seq++
	s.failing[id] = failure{err: err, seq: s.seq}
}

// forget drops watch id, so a stopped watch cannot keep /health degraded.
func (s *Status) forget(id uint64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.failing, id)
}
