// Package balancer chooses one instance of a service for one request, and
// owns the rules that decide which instances may be chosen at all.
//
// A Balancer holds only per-service selection state (such as a round-robin
// counter); what it chooses from comes with each call as a Pool, so the
// state survives every snapshot swap, and the caller decides which
// instances may take the request without the balancer having to guess.
// What makes an instance eligible lives here too: the Selector decides,
// per table build, which of Consul's instances get traffic (passing ones,
// panic mode, maintenance, an empty list), and the OutlierTracker keeps
// the passive ejection record a pool consults on every pick.
package balancer

import (
	"fmt"
	"math/rand/v2"
)

// Pool is the balancer's view of one service for one pick: how many
// instances there are, which of them may take this request, and what a
// load-aware policy needs to weigh them. Implementations must be cheap:
// a pick may call Available for every instance.
type Pool interface {
	// Len is the number of instances, available or not.
	Len() int
	// Available reports whether instance i may take this request: it is
	// neither ejected nor already tried by an earlier attempt.
	Available(i int) bool
	// Weight is instance i's relative share; a value below 1 counts as 1.
	// Callers leave out instances that must get no share at all.
	Weight(i int) int
	// InFlight is how many requests instance i is serving now; only
	// least_request reads it.
	InFlight(i int) int64
}

// Balancer picks an available instance of a pool, or returns -1 when none
// is available. Implementations are safe for concurrent use and never
// allocate.
type Balancer interface {
	Pick(p Pool) int
}

// Names of the built-in policies as they appear in route documents.
const (
	RoundRobin   = "round_robin"
	Random       = "random"
	LeastRequest = "least_request"
)

// Names lists every policy New accepts, in documentation order.
var Names = []string{RoundRobin, Random, LeastRequest}

// ErrUnknown is returned by New for a policy name it does not know.
var ErrUnknown = fmt.Errorf("unknown balancer")

// New returns a fresh balancer for the named policy. The empty name means
// round-robin, the default a Traefik or Fabio user would expect.
func New(name string) (Balancer, error) {
	switch name {
	case "", RoundRobin:
		return &smoothRoundRobin{}, nil
	case Random:
		return &random{intN: rand.IntN}, nil
	case LeastRequest:
		return &leastRequest{intN: rand.IntN}, nil
	}
	return nil, fmt.Errorf("%w %q (want one of %v)", ErrUnknown, name, Names)
}

// random picks among the available instances in proportion to their
// weights; intN is injectable so tests are deterministic.
type random struct {
	intN func(int) int
}

func (b *random) Pick(p Pool) int {
	n := p.Len()
	total := 0
	for i := range n {
		if p.Available(i) {
			total += weight(p, i)
		}
	}
	if total == 0 {
		return -1
	}
	r := b.intN(total)
	for i := range n {
		if !p.Available(i) {
			continue
		}
		if r -= weight(p, i); r < 0 {
			return i
		}
	}
	return -1 // unreachable while Available is stable during the pick
}

func weight(p Pool, i int) int { return max(p.Weight(i), 1) }

// NewWithSource is New with the random source of random and
// least_request replaced by intN (which returns a number in [0, n)), so
// tests can fix a seed; round_robin ignores it.
func NewWithSource(name string, intN func(n int) int) (Balancer, error) {
	b, err := New(name)
	switch b := b.(type) {
	case *random:
		b.intN = intN
	case *leastRequest:
		b.intN = intN
	}
	return b, err
}

// Uniform is a Pool of n instances that are all available, of equal
// weight and idle: what a caller without per-instance state offers.
type Uniform int

// Len implements Pool.
func (u Uniform) Len() int { return int(u) }

// Available implements Pool.
func (Uniform) Available(int) bool { return true }

// Weight implements Pool.
func (Uniform) Weight(int) int { return 1 }

// InFlight implements Pool.
func (Uniform) InFlight(int) int64 { return 0 }
