package balancer

import "sync/atomic"

// Load counts the requests one instance is serving: incremented when a
// request is sent to it, decremented when its response body is closed
// (or the send failed), so a streamed or upgraded response counts until
// it ends.
type Load struct{ n atomic.Int64 }

// Inc counts one more request in flight.
func (l *Load) Inc() { l.n.Add(1) }

// Dec counts one request done.
func (l *Load) Dec() { l.n.Add(-1) }

// N is the number of requests in flight.
func (l *Load) N() int64 { return l.n.Load() }

// LoadTracker owns every instance's in-flight count across table swaps.
// Counts are keyed by address alone, not by service: one process serves
// every route, tag and service name that reaches it, and its load is
// what least_request weighs, so two routes over the same instances see
// each other's requests. A request that outlives its table decrements
// the count it incremented, which the next table shares while the
// instance stays listed. ForHosts, Swap and Discard belong to the single
// goroutine that builds tables; a Load is safe from any request.
type LoadTracker struct {
	loads kept[string, Load]
}

// NewLoadTracker returns a tracker with no counts.
func NewLoadTracker() *LoadTracker {
	return &LoadTracker{loads: newKept[string, Load]()}
}

// ForHosts returns the loads of hosts, aligned with them.
func (t *LoadTracker) ForHosts(hosts []string) []*Load {
	out := make([]*Load, len(hosts))
	for i, h := range hosts {
		out[i] = t.loads.get(h)
	}
	return out
}

// Swap keeps the counts the finished build used and forgets the others.
func (t *LoadTracker) Swap() { t.loads.swap() }

// Discard forgets what an abandoned build asked for.
func (t *LoadTracker) Discard() { t.loads.discard() }
