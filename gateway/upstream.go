package gateway

import (
	"errors"
	"net/http"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/registry"
)

// errNoInstance is returned when a service has no passing instance; the
// proxy answers it with 503.
var errNoInstance = errors.New("no healthy instance")

// upstream sends requests to one service's instances: it picks one with the
// service's balancer and forwards over the shared transport. It is the one
// place where a request meets an instance, so routes (through
// ReverseProxy) and any other caller share the same selection rules.
type upstream struct {
	service  registry.ServiceKey
	hosts    []string // instances' host:port, in snapshot order; never mutated
	balancer balancer.Balancer
	next     http.RoundTripper
}

// RoundTrip picks an instance and sends req to it. req.URL.Host is
// overwritten; the exchange in req's context, when present, learns which
// instance was picked for the access log.
func (u *upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	i := u.balancer.Pick(len(u.hosts))
	if i < 0 {
		return nil, errNoInstance
	}
	req.URL.Scheme = "http"
	req.URL.Host = u.hosts[i]
	if ex := exchangeFrom(req.Context()); ex != nil {
		ex.upstream = u.hosts[i]
	}
	return u.next.RoundTrip(req)
}

// dispatch is the ReverseProxy's transport: it hands each request to the
// upstream of the route that matched it, found in the request's exchange.
type dispatch struct{}

func (dispatch) RoundTrip(req *http.Request) (*http.Response, error) {
	return exchangeFrom(req.Context()).up.RoundTrip(req)
}
