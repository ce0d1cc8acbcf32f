package gateway

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/upstream"
	"github.com/gatewayco/gateway/registry"
)

// Mesh is the gateway's Connect side as the registry keeps it
// (registry.Connect): its identity, read at each handshake, and what the
// intentions say per destination, read per request from a snapshot (never
// a Consul call on the request path).
type Mesh interface {
	upstream.MeshIdentity
	Verdict(service string) (registry.Verdict, bool)
}

// ErrConnectOff is why a connect route answers 502: the gateway runs
// without -connect, so it has no identity in the mesh.
var ErrConnectOff = errors.New("connect = true needs the gateway started with -connect")

// MsgIntentionDenied starts the 403 of a connect route whose service an
// intention closes to the gateway.
const MsgIntentionDenied = "an intention denies the gateway reaching the service"

// connectTransport is the transport of rc, a connect route: one per
// service, kept across swaps (identity and roots are read per handshake,
// so rotations need no new transport).
func (ts *transports) connectTransport(rc *config.Route) (http.RoundTripper, string, error) {
	if ts.mesh == nil {
		return failing{ErrConnectOff}, "https", ErrConnectOff
	}
	return ts.kept.get(stateKey{"", "connect|" + rc.Service}, func() *http.Transport {
		return upstream.NewConnectTransport(ts.maxIdle, ts.dial, ts.mesh, rc.Service, ts.meshMetrics, ts.logger)
	}), "https", nil
}

// connectGate answers 403 while an intention denies the gateway reaching
// the route's service: Consul would make the upstream refuse the
// connection, and a refusal must not read as the instance failing (no
// ejection, no breaker, no retry). It runs before the upstream call, off
// the intentions snapshot.
func connectGate(rc *config.Route, mesh Mesh, m *metrics.Connect, next http.Handler) http.Handler {
	if !rc.Connect || mesh == nil {
		return next
	}
	route, service := rc.Name, rc.Service
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, ok := mesh.Verdict(service); ok && v.Denied {
			m.Denied(route)
			exchange.WriteError(w, http.StatusForbidden, fmt.Sprintf("%s %q (intention %s)", MsgIntentionDenied, service, v.Intention), route)
			return
		}
		next.ServeHTTP(w, r)
	})
}
