package config

import (
	"slices"

	"github.com/hashicorp/hcl/v2"
)

// MaxDatacenterName bounds a datacenter name. Consul puts the name in DNS
// names (web.service.dc2.consul), so a longer one could never be a
// datacenter's: it is one DNS label.
const MaxDatacenterName = 63

// MaxFailoverDatacenters bounds a failover block's list. Each listed
// datacenter is one more health watch kept running for the route (so that
// switching needs no query on the request path): a document must not be
// able to open hundreds of blocking queries across the WAN.
const MaxFailoverDatacenters = 3

// Failover is a route's `failover` block: where to serve from when the
// route's own datacenter has no routable instance.
type Failover struct {
	// Datacenters are tried in order; the first with a routable instance
	// serves. Distinct, never the route's own datacenter, at most
	// MaxFailoverDatacenters.
	Datacenters []string
	// Pos is where the block starts.
	Pos Pos
}

// decodeFailover reads a failover block, with the position of each
// listed datacenter for validation.
func decodeFailover(p *problems, b *hcl.Block) (*Failover, []Pos) {
	a, _ := decodeBody(p, b, failoverSpec)
	f := &Failover{Pos: p.pos(b.DefRange)}
	var at []Pos
	f.Datacenters, at = a.strList(attrDatacenters)
	if !a.has(attrDatacenters) {
		p.addf(f.Pos, "%s needs %s", failoverSpec.typ, attrDatacenters)
		return f, at
	}
	if !a.ok(attrDatacenters) {
		return f, at
	}
	switch n := len(f.Datacenters); {
	case n == 0:
		p.addf(a.pos(attrDatacenters), "%s must list at least one datacenter (omit the failover block for none)", failoverSpec.ref(attrDatacenters))
	case n > MaxFailoverDatacenters:
		p.addf(a.pos(attrDatacenters), "%s lists %d datacenters; at most %d", failoverSpec.ref(attrDatacenters), n, MaxFailoverDatacenters)
	}
	return f, at
}

// ValidDatacenter reports whether name is a datacenter name Consul
// accepts: lower-case letters, digits, '-' and '_' (the agent refuses any
// other), and at most MaxDatacenterName bytes.
func ValidDatacenter(name string) bool {
	if name == "" || len(name) > MaxDatacenterName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkDatacenters validates a route's datacenter and its failover list:
// valid names, no datacenter twice, the route's own not among its
// failovers (serving from it again would be no failover).
func checkDatacenters(p *problems, r *routeSrc) {
	a := r.attrs
	if a.ok(attrDatacenter) && !ValidDatacenter(r.Datacenter) {
		p.addf(a.pos(attrDatacenter), "%s must be a Consul datacenter name (lower-case letters, digits, '-' or '_', at most %d), got %q", attrDatacenter, MaxDatacenterName, r.Datacenter)
	}
	if r.Splits != nil {
		// Split destinations are read from the local datacenter; taking
		// the route's datacenter silently for some would mislead.
		if a.has(attrDatacenter) {
			p.addf(a.pos(attrDatacenter), "%s is not supported on a route with %s blocks", attrDatacenter, splitSpec.typ)
		}
		if r.Failover != nil {
			p.addf(r.Failover.Pos, "%s is not supported on a route with %s blocks", failoverSpec.typ, splitSpec.typ)
		}
		return
	}
	f := r.Failover
	if f == nil {
		return
	}
	for i, dc := range f.Datacenters {
		switch {
		case !ValidDatacenter(dc):
			p.addf(r.failoverAt[i], "%s: %q is not a Consul datacenter name (lower-case letters, digits, '-' or '_', at most %d)", failoverSpec.ref(attrDatacenters), dc, MaxDatacenterName)
		case dc == r.Datacenter:
			p.addf(r.failoverAt[i], "%s: %q is the route's own %s", failoverSpec.ref(attrDatacenters), dc, attrDatacenter)
		case slices.Index(f.Datacenters, dc) < i:
			p.addf(r.failoverAt[i], "%s: %q is listed twice", failoverSpec.ref(attrDatacenters), dc)
		}
	}
}
