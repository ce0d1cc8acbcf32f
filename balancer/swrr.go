package balancer

import "sync"

// smoothRoundRobin is nginx's smooth weighted round robin: on every pick
// each available instance's current value grows by its weight, the
// largest is chosen and loses the sum of the weights added. Over a cycle
// of W picks (W the sum of the weights) each instance gets exactly its
// weight's picks, interleaved rather than in runs: weights 5:1:1 give
// a a b a c a a, never five in a row. With equal weights it is plain
// round robin in index order.
//
// An unavailable instance (ejected, in maintenance, tried by this
// request) takes no part in a pick: its weight is neither added to the
// sum nor to its value, so its share is spread over the others in
// proportion to their weights, never handed to one neighbour, and its
// value waits, unchanged, for it to come back.
//
// The values belong to the balancer, which the table builder keeps per
// service and policy, so they outlive table swaps that keep the pool's
// length. A pool of another length (an instance came or went, so indexes
// moved) starts a new cycle from zeroed values: values kept by index
// would follow the wrong instances. A changed weight needs no reset; the
// algorithm converges to the new shares by itself.
//
// A pick takes a mutex and visits every instance once; it allocates only
// when the pool grows past every length seen before.
type smoothRoundRobin struct {
	mu      sync.Mutex
	current []int64
}

func (b *smoothRoundRobin) Pick(p Pool) int {
	n := p.Len()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.current) != n {
		if cap(b.current) >= n {
			b.current = b.current[:n]
			clear(b.current)
		} else {
			b.current = make([]int64, n)
		}
	}
	best, total := -1, int64(0)
	for i := range n {
		if !p.Available(i) {
			continue
		}
		w := int64(weight(p, i))
		b.current[i] += w
		total += w
		if best < 0 || b.current[i] > b.current[best] {
			best = i
		}
	}
	if best >= 0 {
		b.current[best] -= total
	}
	return best
}
