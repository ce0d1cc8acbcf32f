package config

import "fmt"

// Shadowed is a route Overlay left out, and the claim that won.
type Shadowed struct {
	Route   Route
	Message string
}

// Overlay adds the routes of lower-precedence documents (routes from
// service tags) to a resolved serving set, route by route: a route whose
// name or matcher (MatchKey) is already claimed by the serving set, or by
// an earlier overlay route, is left out and listed as shadowed, so the
// serving set always wins and one clash costs only that route. The
// overlay documents (routes only; their aggregates are not read) are
// taken in order, and the result stays within
// MaxTableRoutes. The same namespace rules as Resolve apply.
func Overlay(routes []Route, aggs []Aggregate, overlay []*Document) (added []Route, shadowed []Shadowed) {
	base := &Document{Routes: routes, Aggregates: aggs}
	names, keys := map[string]claim{}, map[string]claim{}
	ms := base.matchers()
	for i, m := range ms {
		key := ""
		if i < len(routes) {
			key = routes[i].SourceKey
		} else {
			key = aggs[i-len(routes)].SourceKey
		}
		names[m.name] = claim{key: key, m: m}
		keys[m.key] = claim{key: key, m: m}
	}
	count := len(ms)
	for _, d := range overlay {
		for _, r := range d.Routes {
			m := matcher{kind: routeSpec.typ, name: r.Name, pos: r.Pos, key: r.MatchKey()}
			switch other, dupName := names[m.name]; {
			case dupName:
				shadowed = append(shadowed, Shadowed{Route: r, Message: fmt.Sprintf("route name %q already used by %s %q in %s", m.name, other.m.kind, other.m.name, other.key)})
			case count >= MaxTableRoutes:
				shadowed = append(shadowed, Shadowed{Route: r, Message: fmt.Sprintf("route %q would be past the table's limit of %d routes and aggregates", m.name, MaxTableRoutes)})
			default:
				if other, dup := keys[m.key]; dup {
					shadowed = append(shadowed, Shadowed{Route: r, Message: fmt.Sprintf("route %q shadowed: %s %q in %s matches the same requests", m.name, other.m.kind, other.m.name, other.key)})
					continue
				}
				c := claim{key: d.Key, m: m}
				names[m.name], keys[m.key] = c, c
				count++
				added = append(added, r)
			}
		}
	}
	return added, shadowed
}
