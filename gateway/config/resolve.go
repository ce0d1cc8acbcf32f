package config

import (
	"cmp"
	"fmt"
	"slices"
)

// Candidate is one key's input to Resolve.
type Candidate struct {
	// Key is the KV key; keys in one Resolve call must be distinct.
	Key string
	// Current is the newest version of the key that parsed; nil when the
	// newest version failed to parse, in which case only LastGood is tried.
	Current *Document
	// LastGood is the version the previous Resolve accepted for the key; nil
	// when it served nothing. It may be the same Document as Current.
	LastGood *Document
}

// Resolve assembles the serving set from every key's documents, applying the
// rules that span documents: route and aggregate names share one namespace
// unique across all keys, and no two of them have the same MatchKey.
//
// Conflicts are settled by age, the older claim winning, so the outcome
// depends only on the inputs and not on the order in which watches fire:
//
//   - Keys are considered oldest first, by the ModifyIndex of their
//     candidate (Current, or LastGood when Current is nil), ties by key.
//   - A key's candidate is accepted if none of its routes conflicts with a
//     document already accepted, and the table stays within
//     MaxTableRoutes routes and aggregates with it.
//   - Otherwise the key falls back to LastGood, if that is a different
//     version and does not conflict either; a key thus keeps serving its
//     previous routes while its new version is rejected.
//   - Otherwise the key serves nothing.
//
// A consequence worth knowing: a key's LastGood is ordered by its Current's
// index, so a key edited after a conflicting key can lose its LastGood to
// that key too; the conflict errors say which key and route to fix.
//
// accepted maps each key that serves routes to the Document it serves (one
// of the inputs, shared, not copied); a key serving nothing is absent. errs maps each key with a rejected version to
// one *Error per conflicting route, placed at that route and naming the other
// key and route; errors about LastGood say so, since their positions refer to
// that older version. A key whose Current is nil gets no error for that: its
// parse error is the caller's to report. Both maps are non-nil.
func Resolve(cands []Candidate) (accepted map[string]*Document, errs map[string]Errors) {
	order := slices.Clone(cands)
	slices.SortFunc(order, func(a, b Candidate) int {
		return cmp.Or(cmp.Compare(a.index(), b.index()), cmp.Compare(a.Key, b.Key))
	})

	accepted, errs = map[string]*Document{}, map[string]Errors{}
	s := &servingSet{names: map[string]claim{}, matchers: map[string]claim{}}
	for _, c := range order {
		first, fallback := c.Current, c.LastGood
		if first == nil {
			first, fallback = c.LastGood, nil
		}
		if first == nil {
			continue
		}
		if fallback != nil && (fallback == first || fallback.ModifyIndex == first.ModifyIndex) {
			// Same version: it conflicts exactly as first does.
			fallback = nil
		}

		conflicts := s.conflicts(c.Key, first, first != c.Current)
		if len(conflicts) == 0 {
			s.accept(c.Key, first)
			accepted[c.Key] = first
			continue
		}
		errs[c.Key] = conflicts
		if fallback == nil {
			continue
		}
		conflicts = s.conflicts(c.Key, fallback, true)
		if len(conflicts) == 0 {
			s.accept(c.Key, fallback)
			accepted[c.Key] = fallback
			continue
		}
		errs[c.Key] = append(errs[c.Key], conflicts...)
	}
	return accepted, errs
}

// index orders candidates; see Resolve.
func (c Candidate) index() uint64 {
	switch {
	case c.Current != nil:
		return c.Current.ModifyIndex
	case c.LastGood != nil:
		return c.LastGood.ModifyIndex
	}
	return 0
}

// claim is an accepted route or aggregate and the key it came from.
type claim struct {
	key string
	m   matcher
}

// servingSet is what Resolve has accepted so far, indexed by each rule.
type servingSet struct {
	names    map[string]claim
	matchers map[string]claim
	count    int // routes and aggregates accepted
}

// conflicts returns one Error per route of doc that clashes with an accepted
// route, and one at its first route past MaxTableRoutes if doc does not fit.
// lastGood prefixes messages, since their positions refer to an older
// version than the one the user is looking at.
func (s *servingSet) conflicts(key string, doc *Document, lastGood bool) Errors {
	var out Errors
	add := func(m matcher, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if lastGood {
			msg = fmt.Sprintf("last good version (index %d): %s", doc.ModifyIndex, msg)
		}
		at := m.pos
		at.Key = key
		out = append(out, &Error{Pos: at, Message: msg})
	}
	ms := doc.matchers()
	if room := MaxTableRoutes - s.count; len(ms) > room {
		m := ms[room] // accept keeps s.count within the bound
		add(m, "%s %q would be route or aggregate number %d of the table, more than the limit of %d across all documents",
			m.kind, m.name, MaxTableRoutes+1, MaxTableRoutes)
	}
	for _, m := range ms {
		if other, dup := s.names[m.name]; dup {
			add(m, "%s name %q already defined in %s at %d:%d",
				m.kind, m.name, other.key, other.m.pos.Line, other.m.pos.Column)
		}
		if other, dup := s.matchers[m.key]; dup {
			add(m, "%s %q matches the same requests as %s %q in %s at %d:%d",
				m.kind, m.name, other.m.kind, other.m.name, other.key, other.m.pos.Line, other.m.pos.Column)
		}
	}
	return out
}

// accept records every route and aggregate of doc as claimed by key.
func (s *servingSet) accept(key string, doc *Document) {
	ms := doc.matchers()
	s.count += len(ms)
	for _, m := range ms {
		s.names[m.name] = claim{key: key, m: m}
		s.matchers[m.key] = claim{key: key, m: m}
	}
}
