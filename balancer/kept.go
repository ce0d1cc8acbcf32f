package balancer

// kept is per-instance state that outlives table swaps: a build asks for
// the record of every instance it lists (get), and once the build is
// published (swap) the records it did not ask for are forgotten, so an
// instance Consul stopped listing comes back with a clean record. An
// abandoned build (discard) leaves the last published records as they
// were. It belongs to the single goroutine that builds tables; the
// records themselves are shared with requests.
type kept[K comparable, V any] struct {
	cur, next map[K]*V // next is filled during a build, then swapped in
}

func newKept[K comparable, V any]() kept[K, V] {
	return kept[K, V]{cur: map[K]*V{}, next: map[K]*V{}}
}

// get is k's record: the one this build already took, else the last
// published one, else a new zero record.
func (s *kept[K, V]) get(k K) *V {
	v := s.next[k]
	if v == nil {
		v = s.cur[k]
	}
	if v == nil {
		v = new(V)
	}
	s.next[k] = v
	return v
}

func (s *kept[K, V]) swap() { s.cur, s.next = s.next, make(map[K]*V, len(s.next)) }

func (s *kept[K, V]) discard() { s.next = make(map[K]*V, len(s.cur)) }
