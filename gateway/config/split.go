package config

import (
	"fmt"
	"net/textproto"
	"sort"

	"github.com/hashicorp/hcl/v2"
)

// Bounds of a route's split blocks. A document is hostile input, and each
// destination is an upstream with its own pool, balancer and breaker, so
// their number is bounded; the weight bound keeps the sum of a route's
// weights far from overflow while still allowing 0.01 % shares.
const (
	// MaxSplits is the most split blocks one route may have.
	MaxSplits = 8
	// MaxSplitWeight is the largest weight of one split.
	MaxSplitWeight = 10_000
	// MaxSplitConditions is the most when_header and when_cookie entries
	// one split may have, together: every request is checked against them.
	MaxSplitConditions = 4
	// MaxSplitValueBytes bounds a condition's expected value.
	MaxSplitValueBytes = 256
)

// Split is one destination of a route's `split` blocks: a service (and
// tag) that gets Weight parts of the route's traffic, or every request
// matching its conditions.
type Split struct {
	// Service is the Consul service name of the destination.
	Service string
	// Tag filters the service's instances by Consul tag; empty means any.
	Tag string
	// Weight is the destination's relative share; 0 means it gets only
	// the requests its conditions force to it.
	Weight int
	// WhenHeader forces a request to this destination when each header
	// (canonical name) has exactly the value given, as its first value.
	WhenHeader map[string]string
	// WhenCookie forces a request to this destination when each cookie
	// has exactly the value given. Either map matching is enough.
	WhenCookie map[string]string
	// Pos is where the split block starts.
	Pos Pos
}

// Forced reports whether the split has conditions that force requests to
// it.
func (s *Split) Forced() bool { return len(s.WhenHeader) > 0 || len(s.WhenCookie) > 0 }

// decodeSplits reads and validates the split blocks among blocks (others
// are ignored); nil when there are none.
func decodeSplits(p *problems, blocks hcl.Blocks) []Split {
	var out []Split
	seen := map[[2]string]Pos{}
	positive := false
	var first *hcl.Block
	mark := p.mark()
	for _, b := range blocks {
		if b.Type != splitSpec.typ {
			continue
		}
		if first == nil {
			first = b
		}
		if len(out) == MaxSplits {
			p.addf(p.pos(b.DefRange), "at most %d %s blocks are allowed in a route", MaxSplits, splitSpec.typ)
			break
		}
		s := decodeSplit(p, b)
		dest := [2]string{s.Service, s.Tag}
		if at, dup := seen[dest]; dup && s.Service != "" {
			p.addf(s.Pos, "%s: destination %q tag %q already split at %d:%d", splitSpec.typ, s.Service, s.Tag, at.Line, at.Column)
		} else {
			seen[dest] = s.Pos
		}
		positive = positive || s.Weight > 0
		out = append(out, s)
	}
	// Only worth saying when every weight was read cleanly.
	if first != nil && !positive && p.clean(mark) {
		p.addf(p.pos(first.DefRange), "at least one %s must have a positive %s", splitSpec.typ, attrWeight)
	}
	return out
}

// decodeSplit reads one split block.
func decodeSplit(p *problems, b *hcl.Block) Split {
	a, _ := decodeBody(p, b, splitSpec)
	s := Split{Service: a.str(attrService), Tag: a.str(attrTag), Weight: a.integer(attrWeight), Pos: p.pos(b.DefRange)}
	switch {
	case !a.has(attrService):
		missing(p, b, splitSpec, attrService)
	case a.ok(attrService) && s.Service == "":
		p.addf(a.pos(attrService), "%s must not be empty", attrService)
	}
	if a.ok(attrTag) {
		checkTag(p, a, s.Tag)
	}
	if a.has(attrWhenHeader) {
		s.WhenHeader = conditions(p, a, attrWhenHeader, textproto.CanonicalMIMEHeaderKey)
	}
	if a.has(attrWhenCookie) {
		s.WhenCookie = conditions(p, a, attrWhenCookie, func(n string) string { return n })
	}
	if n := len(s.WhenHeader) + len(s.WhenCookie); n > MaxSplitConditions {
		p.addf(s.Pos, "%s: at most %d %s and %s entries are allowed, got %d", splitSpec.typ, MaxSplitConditions, attrWhenHeader, attrWhenCookie, n)
	}
	switch {
	case !a.has(attrWeight):
		missing(p, b, splitSpec, attrWeight)
	case !a.ok(attrWeight):
	case s.Weight < 0 || s.Weight > MaxSplitWeight:
		p.addf(a.pos(attrWeight), "%s must be between 0 and %d, got %d", attrWeight, MaxSplitWeight, s.Weight)
	case s.Weight == 0 && !s.Forced():
		p.addf(a.pos(attrWeight), "%s 0 needs %s or %s: the destination would get no request", attrWeight, attrWhenHeader, attrWhenCookie)
	}
	return s
}

// conditions reads a when_header or when_cookie map: names are tokens
// (canonicalised by canon), values non-empty, at most MaxSplitValueBytes
// and free of control bytes, so they can match what a client sends.
func conditions(p *problems, a *attrs, name attr, canon func(string) string) map[string]string {
	m := a.strMap(name)
	if !a.ok(name) {
		return nil
	}
	if len(m) == 0 {
		p.addf(a.pos(name), "%s must not be empty (omit it instead)", name)
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // messages in a stable order
	out := make(map[string]string, len(m))
	for _, k := range keys {
		v := m[k]
		switch {
		case !isToken(k):
			p.addf(a.pos(name), "%s: %q is not a valid name", name, k)
		case v == "" || len(v) > MaxSplitValueBytes || !printable(v):
			p.addf(a.pos(name), "%s[%q] must be 1 to %d printable bytes", name, k, MaxSplitValueBytes)
		default:
			c := canon(k)
			if _, dup := out[c]; dup {
				p.addf(a.pos(name), "%s: %q is given twice", name, c)
			}
			out[c] = v
		}
	}
	return out
}

// printable reports whether s has no control bytes: a header or cookie
// value with one can never arrive, so the condition could never hold.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// String names the destination as in messages and metrics: "users:v1".
func (s *Split) String() string {
	if s.Tag == "" {
		return s.Service
	}
	return fmt.Sprintf("%s:%s", s.Service, s.Tag)
}
