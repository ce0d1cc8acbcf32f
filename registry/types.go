// Package registry talks to Consul: it watches route documents in KV and the
// passing instances of services, and publishes typed snapshots of both. It is
// the only package that calls Consul; nothing on the request path does.
package registry

import (
	"net"
	"strconv"
)

// Instance is one passing instance of a service as Consul reported it.
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
}

// HostPort returns "address:port", bracketing IPv6 addresses.
func (i Instance) HostPort() string {
	return net.JoinHostPort(i.Address, strconv.Itoa(i.Port))
}

// ServiceKey identifies one health watch: a service name and an optional tag
// filter. The zero Tag means "any tag".
type ServiceKey struct {
	Name string
	Tag  string
}

// String renders the key as "name" or "name:tag" for logs and metrics.
func (k ServiceKey) String() string {
	if k.Tag == "" {
		return k.Name
	}
	return k.Name + ":" + k.Tag
}

// Document is one KV entry under the route prefix: the raw bytes of one route
// document and the Consul index at which it was last modified.
type Document struct {
	Key         string
	Value       []byte
	ModifyIndex uint64
}
