package config

// matcher is what the shared namespace rules see of a route or an
// aggregate: both are named, both match requests, and neither may repeat
// the other's name or matcher.
type matcher struct {
	kind string // routeSpec.typ or aggregateSpec.typ, for messages
	name string
	pos  Pos
	key  string // MatchKey
}

// matchers lists the document's routes, then its aggregates.
func (d *Document) matchers() []matcher {
	out := make([]matcher, 0, len(d.Routes)+len(d.Aggregates))
	for i := range d.Routes {
		r := &d.Routes[i]
		out = append(out, matcher{kind: routeSpec.typ, name: r.Name, pos: r.Pos, key: r.MatchKey()})
	}
	for i := range d.Aggregates {
		a := &d.Aggregates[i]
		out = append(out, matcher{kind: aggregateSpec.typ, name: a.Name, pos: a.Pos, key: a.MatchKey()})
	}
	return out
}

// validateAggregateNamespace applies the document-level rules to
// aggregates: a name not used by any route or other aggregate, and a
// matcher no valid route or other aggregate already has. Route-to-route
// rules stay in validateDocument.
func validateAggregateNamespace(p *problems, routes []*routeSrc, aggs []*aggregateSrc) {
	names := map[string]matcher{}
	keys := map[string]matcher{}
	for _, r := range routes {
		m := matcher{kind: routeSpec.typ, name: r.Name, pos: r.Pos}
		if _, dup := names[r.Name]; !dup && r.Name != "" {
			names[r.Name] = m
		}
		if r.valid {
			if _, dup := keys[r.MatchKey()]; !dup {
				keys[r.MatchKey()] = m
			}
		}
	}
	for _, a := range aggs {
		m := matcher{kind: aggregateSpec.typ, name: a.Name, pos: a.Pos}
		if a.Name != "" {
			if first, dup := names[a.Name]; dup {
				p.addf(p.pos(a.block.LabelRanges[0]), "%s name %q already defined by %s at %d:%d",
					aggregateSpec.typ, a.Name, first.kind, first.pos.Line, first.pos.Column)
			} else {
				names[a.Name] = m
			}
		}
		if !a.valid {
			continue
		}
		if first, dup := keys[a.MatchKey()]; dup {
			p.addf(a.Pos, "%s %q matches the same requests as %s %q at %d:%d",
				aggregateSpec.typ, a.Name, first.kind, first.name, first.pos.Line, first.pos.Column)
			continue
		}
		keys[a.MatchKey()] = m
	}
}
