// Package balancer chooses one endpoint out of a service's current snapshot.
// A Balancer holds only per-service selection state (such as a round-robin
// counter); the endpoints themselves come with each call, so the state
// survives every snapshot swap.
package balancer

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
)

// Balancer picks the index of one endpoint out of n. It returns -1 when n is
// zero. Implementations are safe for concurrent use and never allocate.
type Balancer interface {
	Pick(n int) int
}

// Names of the built-in policies as they appear in route documents.
const (
	RoundRobin = "round_robin"
	Random     = "random"
)

// Names lists every policy New accepts, in documentation order.
var Names = []string{RoundRobin, Random}

// ErrUnknown is returned by New for a policy name it does not know.
var ErrUnknown = fmt.Errorf("unknown balancer")

// New returns a fresh balancer for the named policy. The empty name means
// round-robin, the default a Traefik or Fabio user would expect.
func New(name string) (Balancer, error) {
	switch name {
	case "", RoundRobin:
		return &roundRobin{}, nil
	case Random:
		return &random{intN: rand.IntN}, nil
	}
	return nil, fmt.Errorf("%w %q (want one of %v)", ErrUnknown, name, Names)
}

// roundRobin walks the endpoints in order with one atomic counter, so a
// sequence of k*n picks hits every endpoint exactly k times, lock-free.
type roundRobin struct {
	next atomic.Uint64
}

func (b *roundRobin) Pick(n int) int {
	if n <= 0 {
		return -1
	}
	return int((b.next.Add(1) - 1) % uint64(n))
}

// random picks uniformly; intN is injectable so tests are deterministic.
type random struct {
	intN func(int) int
}

func (b *random) Pick(n int) int {
	if n <= 0 {
		return -1
	}
	return b.intN(n)
}
