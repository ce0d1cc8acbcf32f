package gateway

import (
	"fmt"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// LocalDatacenter is what /routes and metrics call the local agent's
// datacenter while its name is unknown (see Controller.SetLocalDatacenter).
const LocalDatacenter = "local"

// routeKeys lists the health watches a route reads: its own datacenter's
// first, then each failover datacenter's in the order listed. Failover
// watches run all the time, so that switching is a table build, never a
// query on the request path; validation bounds them per route
// (config.MaxFailoverDatacenters).
func routeKeys(rc *config.Route) []registry.ServiceKey {
	keys := []registry.ServiceKey{{Name: rc.Service, Tag: rc.Tag, Datacenter: rc.Datacenter, Connect: rc.Connect}}
	if rc.Failover != nil {
		for _, dc := range rc.Failover.Datacenters {
			keys = append(keys, registry.ServiceKey{Name: rc.Service, Tag: rc.Tag, Datacenter: dc})
		}
	}
	return keys
}

// MaxFailoverWatches bounds the failover health watches of the whole
// table (distinct service, tag and failover datacenter), beyond the
// per-route bound: every one is a blocking query the local servers keep
// open across the WAN. Past it, routes (in document key order) get no
// further failover watches, and such a datacenter counts as having no
// passing instance; a warning names them.
const MaxFailoverWatches = 256

// failoverKeys lists, in route order, the failover watches not already in
// have, at most MaxFailoverWatches.
func failoverKeys(routes []config.Route, have map[registry.ServiceKey]bool) []registry.ServiceKey {
	seen := map[registry.ServiceKey]bool{}
	var out []registry.ServiceKey
	for i := range routes {
		for _, k := range routeKeys(&routes[i])[1:] {
			if have[k] || seen[k] || len(out) >= MaxFailoverWatches {
				continue
			}
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// logUnwatchedFailovers warns, when their number changes, about failover
// datacenters left unwatched by MaxFailoverWatches.
func (c *Controller) logUnwatchedFailovers(routes []config.Route, keys []registry.ServiceKey) {
	watched := make(map[registry.ServiceKey]bool, len(keys))
	for _, k := range keys {
		watched[k] = true
	}
	var missing []string
	for i := range routes {
		for _, k := range routeKeys(&routes[i])[1:] {
			if !watched[k] {
				missing = append(missing, routes[i].Name+"->"+k.String())
			}
		}
	}
	if len(missing) != c.unwatched {
		c.unwatched = len(missing)
		if len(missing) > 0 {
			c.logger.Warn("failover datacenters not watched: more than the bound", "bound", MaxFailoverWatches, "count", len(missing), "first", missing[0])
		}
	}
}

// dcName is the datacenter a key reads from, by name.
func (b *tableBuilder) dcName(k registry.ServiceKey) string {
	switch {
	case k.Datacenter != "":
		return k.Datacenter
	case b.localDC != "":
		return b.localDC
	}
	return LocalDatacenter
}

// serving picks the health watch a route serves from: its own datacenter
// while that has a passing instance, else the first failover datacenter
// that has one, else its own again (where panic mode and last-known
// instances still apply). The answer comes back as soon as its own
// datacenter has a passing instance again, as Consul's prepared-query
// failover does (each execution tries the local datacenter first); a
// hold-down belongs in the check (success_before_passing), where Consul
// already has one. reason says why a failover datacenter serves.
func (b *tableBuilder) serving(rc *config.Route, instances func(registry.ServiceKey) []registry.Instance) (registry.ServiceKey, string) {
	keys := routeKeys(rc)
	own := keys[0]
	if len(keys) == 1 {
		return own, ""
	}
	if b.routable(own, rc.AllowWarning, instances) {
		return own, ""
	}
	for _, k := range keys[1:] {
		if b.routable(k, rc.AllowWarning, instances) {
			return k, fmt.Sprintf("failover: %s has no passing instance; %s is the first failover datacenter with one", b.dcName(own), b.dcName(k))
		}
	}
	return own, "no datacenter listed has a passing instance; serving the route's own"
}

// routable reports whether k's datacenter has a passing instance, from
// Consul's answer (Controller.publish sets passing) rather than the chosen
// instances: those can be last-known ones Consul no longer lists. For an
// allow_warning route a warning instance it would take counts too:
// failing over away from instances the route serves would send its
// traffic across the WAN for nothing.
func (b *tableBuilder) routable(k registry.ServiceKey, allowWarning bool, instances func(registry.ServiceKey) []registry.Instance) bool {
	if b.passing != nil {
		return b.passing[k] > 0 || allowWarning && b.warning[k] > 0
	}
	in := instances(k)
	return len(registry.Passing(in)) > 0 || allowWarning && countWarningServable(in) > 0
}

// countWarningServable counts the instances an allow_warning route takes
// besides the passing ones (see balancer.Servable).
func countWarningServable(in []registry.Instance) int {
	n := 0
	for i := range in {
		if in[i].Warning && !in[i].Maintenance && in[i].Weights.Warning > 0 {
			n++
		}
	}
	return n
}

// switched logs each route whose serving datacenter changed since the
// last table, and remembers it for the next.
func (b *tableBuilder) switched(rc *config.Route, key registry.ServiceKey, reason string) {
	dc := b.dcName(key)
	b.nextServing[rc.Name] = dc
	before, known := b.servingDCs[rc.Name]
	own := b.dcName(routeKeys(rc)[0])
	switch {
	case known && before == dc:
	case !known && dc == own:
	case dc == own:
		b.deps.logger.Info("route serving datacenter switched back", "route", rc.Name, "from", before, "to", dc)
	default:
		b.deps.logger.Warn("route serving datacenter switched", "route", rc.Name, "from", before, "to", dc, "reason", reason)
	}
}
