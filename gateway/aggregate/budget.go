package aggregate

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// DefaultMaxBytes bounds the bytes all aggregate requests together
// may buffer at once unless configured otherwise: the call bodies kept for
// merging plus small merged answers while they are copied out. 256 MiB
// holds 85 concurrent aggregates of three 1 MiB answers, thousands of
// typical few-KiB ones, yet stays well below a small container's memory.
const DefaultMaxBytes = 256 << 20

// MsgMemory answers a request refused because the budget is used up; the
// client may retry once other aggregates finished (Retry-After).
const MsgMemory = "aggregate memory limit reached"

// memoryRetryAfter is the Retry-After of that answer, in seconds:
// aggregates are bounded by their timeouts, so the budget frees quickly.
const memoryRetryAfter = "1"

var (
	// errMemory ends an aggregate request whose call would buffer
	// more than the gateway-wide budget has left. It is the gateway's own
	// limit, not the upstream's fault: the upstream had answered already,
	// so its breaker and outlier record saw a success.
	errMemory = errors.New(MsgMemory)
	// errResponseTooLarge is a call body over max_response_bytes.
	errResponseTooLarge = errors.New("response too large")
)

// Budget is the byte budget every aggregate request of one gateway draws
// from. Reservations never wait: a request that cannot get
// its bytes fails at once, so a flood of large answers costs 503s, not
// memory or queued goroutines. A budget with max <= 0 never refuses but
// still counts, for the gauge.
type Budget struct {
	max  int64
	used atomic.Int64
}

// NewBudget returns a budget of max bytes; zero means DefaultMaxBytes,
// negative means no limit. It is safe for concurrent use.
func NewBudget(max int64) *Budget {
	if max == 0 {
		max = DefaultMaxBytes
	}
	return &Budget{max: max}
}

// reserve takes n bytes, or none and false when that would cross max.
func (b *Budget) reserve(n int64) bool {
	if b.max <= 0 {
		b.used.Add(n)
		return true
	}
	for {
		cur := b.used.Load()
		if cur+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

func (b *Budget) release(n int64) { b.used.Add(-n) }

// Used returns the bytes aggregate requests hold now; zero when none runs.
func (b *Budget) Used() int64 { return b.used.Load() }

// share is one request's share of the budget: its calls take from
// it concurrently, and close gives back whatever is left once the answer
// is written, so no path can leak a reservation.
type share struct {
	budget *Budget
	held   atomic.Int64
}

func (b *Budget) hold() *share { return &share{budget: b} }

func (h *share) take(n int64) bool {
	if !h.budget.reserve(n) {
		return false
	}
	h.held.Add(n)
	return true
}

func (h *share) give(n int64) {
	h.held.Add(-n)
	h.budget.release(n)
}

func (h *share) close() { h.give(h.held.Load()) }

// readChunk is the first buffer of a body of unknown length; it doubles
// from there.
const readChunk = 8 << 10

// readBody reads a call's body of declared length (-1 when unknown) into
// memory reserved from hold before it is allocated, and returns the bytes
// it reserved with the body. A declared length is reserved and allocated
// once; otherwise the buffer doubles, the old and the new one both
// reserved while copying, so the reservation is never below what is
// live. On error nothing stays reserved. A body over limit is
// errResponseTooLarge, one that would cross the budget errMemory.
func readBody(r io.Reader, length, limit int64, hold *share) ([]byte, int64, error) {
	if length > limit {
		return nil, 0, errResponseTooLarge
	}
	if length >= 0 {
		if !hold.take(length) {
			return nil, 0, errMemory
		}
		buf := make([]byte, length)
		if _, err := io.ReadFull(r, buf); err != nil {
			hold.give(length)
			return nil, 0, err
		}
		return buf, length, nil
	}
	size := min(int64(readChunk), limit+1)
	if !hold.take(size) {
		return nil, 0, errMemory
	}
	buf := make([]byte, 0, size)
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			hold.give(size)
			return nil, 0, errResponseTooLarge
		}
		if err == io.EOF {
			return buf, size, nil
		}
		if err != nil {
			hold.give(size)
			return nil, 0, err
		}
		if len(buf) < cap(buf) {
			continue
		}
		next := min(2*size, limit+1)
		if !hold.take(next) {
			hold.give(size)
			return nil, 0, errMemory
		}
		grown := make([]byte, len(buf), next)
		copy(grown, buf)
		hold.give(size)
		buf, size = grown, next
	}
}

// bodyFailure is the call failure of a readBody error.
func bodyFailure(err error, limit int64) callResult {
	if errors.Is(err, errMemory) {
		r := failure(KindSystem, 503, MsgMemory)
		r.memory = true
		return r
	}
	return failure(KindSystem, 502, fmt.Sprintf("response larger than %d bytes", limit))
}
