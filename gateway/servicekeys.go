package gateway

import (
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// ServiceKeys lists the distinct services (with tag, datacenter and
// connect flag) whose health the controller would watch for routes and
// aggs: route upstreams, split destinations, mirrors, forward_auth
// services, aggregate calls and failover datacenters. `gateway check`
// asks Consul about exactly these.
func ServiceKeys(routes []config.Route, aggs []config.Aggregate) []registry.ServiceKey {
	return serviceKeys(routes, aggs)
}
