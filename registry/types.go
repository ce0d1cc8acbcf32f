// Package registry talks to Consul: it watches route documents in KV and the
// passing instances of services, and publishes typed snapshots of both. It is
// the only package that calls Consul; nothing on the request path does.
package registry

import (
	"net"
	"strconv"
)

// Instance is one registered instance of a service as Consul reported it.
// Instances are values inside immutable snapshots: never mutate one that has
// been published.
type Instance struct {
	// ID is the Consul service ID, unique per agent node.
	ID string
	// Node is the Consul node the instance is registered on.
	Node string
	// Address is the service address, or the node address when the service
	// registered none (Consul's documented fallback).
	Address string
	// Port is the service port.
	Port int
	// Tags are the instance's Consul tags.
	Tags []string
	// Passing is true when every node and service check of the instance
	// passes: Consul's definition of a healthy instance.
	Passing bool
	// Maintenance is true while the instance's service or its node is in
	// maintenance mode (`consul maint -enable`): an operator's explicit
	// "send no traffic here", which no fallback may override. Such an
	// instance is never Passing either.
	Maintenance bool
	// Warning is true when no check is critical but at least one warns
	// (Consul's aggregated status "warning"). Such an instance is not
	// Passing; a route takes it only with allow_warning.
	Warning bool
	// Weights are the instance's relative shares while passing and while
	// warning, as registered, within the bounds of weightsOf.
	Weights Weights
}

// Weights are an instance's Consul weights (the service's Weights
// field): its share while passing, and while warning (zero: none).
type Weights struct {
	Passing int
	Warning int
}

// MaxWeight is the largest weight kept: Consul refuses more at
// registration (its DNS SRV weight is 16 bits); a larger value in an
// answer is cut to it.
const MaxWeight = 65535

// weightsOf reads Consul's weights with its own defaults: an instance
// registered without weights (the catalog endpoint stores zeros) gets
// {1, 1}, as the agent gives it; a passing weight below 1 (Consul
// refuses it) counts as 1, and a negative warning weight as 0. Both are
// cut to MaxWeight, so sums over a pool stay far from overflowing.
func weightsOf(passing, warning int) Weights {
	if passing <= 0 && warning <= 0 {
		return Weights{Passing: 1, Warning: 1}
	}
	return Weights{Passing: min(max(passing, 1), MaxWeight), Warning: min(max(warning, 0), MaxWeight)}
}

// Weight is the instance's current share: its warning weight while it
// warns, its passing weight otherwise.
func (i Instance) Weight() int {
	if i.Warning {
		return i.Weights.Warning
	}
	return i.Weights.Passing
}

// Passing returns the instances whose checks all pass, in order. It
// returns in itself when all pass, so the common case does not allocate.
func Passing(in []Instance) []Instance {
	n := 0
	for _, i := range in {
		if i.Passing {
			n++
		}
	}
	if n == len(in) {
		return in
	}
	out := make([]Instance, 0, n)
	for _, i := range in {
		if i.Passing {
			out = append(out, i)
		}
	}
	return out
}

// HostPort returns "address:port", bracketing IPv6 addresses.
func (i Instance) HostPort() string {
	return net.JoinHostPort(i.Address, strconv.Itoa(i.Port))
}

// ServiceKey identifies one health watch: a service name, an optional tag
// filter and an optional datacenter. The zero Tag means "any tag"; the
// zero Datacenter means the local agent's.
type ServiceKey struct {
	Name string
	Tag  string
	// Datacenter is sent as the health query's dc parameter: the local
	// agent forwards the query to a server of that datacenter over the WAN.
	Datacenter string
	// Connect reads Consul's Connect-capable instances of the service
	// (/v1/health/connect: its sidecar proxies and Connect-native
	// instances) instead of the service's own registrations.
	Connect bool
}

// String renders the key as "name", "name:tag", with "@dc" appended for
// another datacenter and "+connect" for the mesh, for logs and metrics.
func (k ServiceKey) String() string {
	s := k.Name
	if k.Tag != "" {
		s += ":" + k.Tag
	}
	if k.Datacenter != "" {
		s += "@" + k.Datacenter
	}
	if k.Connect {
		s += "+connect"
	}
	return s
}

// Document is one KV entry under the route prefix: the raw bytes of one route
// document and the Consul index at which it was last modified.
type Document struct {
	Key         string
	Value       []byte
	ModifyIndex uint64
	// CreateIndex is the index at which the key was (re)created: a version
	// older than it belongs to a key that was deleted since. Zero means
	// unknown.
	CreateIndex uint64
}
