// Package admin serves the operator endpoints: /health, /routes, the
// dashboard and the JSON it polls (/api/state), and /metrics. It reads the
// gateway's current table through its public, read-only accessors and
// never changes anything, so it can be mounted on its own listener.
package admin

import (
	"encoding/json"
	"net/http"

	"github.com/gatewayco/gateway/gateway"
	"github.com/gatewayco/gateway/gateway/upstream"
)

// Health reports whether the gateway's view of Consul is current. A nil
// error means every watch's last call succeeded.
type Health interface {
	Err() error
}

// Handler serves the operator endpoints of g. It must be mounted on its
// own listener (loopback by default), never on the public one: /routes
// shows the internal topology. A nil health means Consul is never reported
// unreachable.
// Each extra Mount adds its endpoints (Certs: /certs).
func Handler(g *gateway.Gateway, health Health, extra ...Mount) http.Handler {
	a := &admin{g: g, health: health}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", a.serveHealth)
	mux.HandleFunc("GET /routes", a.serveRoutes)
	mountOperations(mux, g, health)
	for _, m := range extra {
		m(mux)
	}
	return mux
}

type admin struct {
	g      *gateway.Gateway
	health Health
}

type healthBody struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// serveHealth answers 503 only before the first table: once routes are
// loaded the gateway can serve, even if Consul is away, so load balancers
// in front of it must keep sending traffic ("degraded" is still 200).
func (a *admin) serveHealth(w http.ResponseWriter, r *http.Request) {
	if !a.g.Table().Loaded() {
		reason := "no routing table loaded yet"
		if a.health != nil {
			// Why there is none yet, e.g. a token that may not read the
			// route documents: that does not go away by waiting.
			if err := a.health.Err(); err != nil {
				reason += ": " + err.Error()
			}
		}
		writeJSON(w, http.StatusServiceUnavailable, healthBody{Status: "starting", Reason: reason})
		return
	}
	if a.health != nil {
		if err := a.health.Err(); err != nil {
			writeJSON(w, http.StatusOK, healthBody{Status: "degraded", Reason: err.Error() + "; serving last known routes and instances"})
			return
		}
	}
	writeJSON(w, http.StatusOK, healthBody{Status: "ok"})
}

type routesBody struct {
	Routes     []routeView           `json:"routes"`
	Aggregates []aggregateView       `json:"aggregates"`
	Errors     []gateway.ConfigError `json:"errors"`
}

type routeView struct {
	Name       string         `json:"name"`
	SourceKey  string         `json:"source_key"`
	Host       string         `json:"host,omitempty"`
	Path       string         `json:"path,omitempty"`
	PathPrefix string         `json:"path_prefix,omitempty"`
	Methods    []string       `json:"methods,omitempty"`
	Service    string         `json:"service"`
	Tag        string         `json:"tag"`
	Balancer   string         `json:"balancer"`
	Instances  []instanceView `json:"instances"`
	Panic      string         `json:"panic,omitempty"`
	// CircuitBreaker is the breaker's state ("closed", "half_open",
	// "open"); omitted for routes without one.
	CircuitBreaker string `json:"circuit_breaker,omitempty"`
	// CaseInsensitive is set when the path matches in any case.
	CaseInsensitive bool `json:"case_insensitive,omitempty"`
	// Protocol is what the route speaks upstream, as written; omitted
	// when the document leaves it to the default, http.
	Protocol string `json:"protocol,omitempty"`
	// HTTPSOnly and HSTSMaxAge are the route's https_only and
	// hsts_max_age (a Go duration); omitted when unset.
	HTTPSOnly  bool   `json:"https_only,omitempty"`
	HSTSMaxAge string `json:"hsts_max_age,omitempty"`
	// ACME is set when the host's certificate comes from the ACME CA.
	ACME bool `json:"acme,omitempty"`
	// Connect is set when the route goes through the service mesh
	// (connect = true: Connect instances, mTLS, intentions).
	Connect bool `json:"connect,omitempty"`
	// IdleTimeout closes the route's WebSocket tunnels after this long
	// without a byte; Tunnels counts those open now.
	IdleTimeout string `json:"idle_timeout"`
	Tunnels     int    `json:"tunnels"`
	// Datacenter is the Consul datacenter serving the route now;
	// DatacenterReason says why, when a failover one serves or none has
	// a passing instance. Failover lists the route's failover
	// datacenters in order.
	Datacenter       string   `json:"datacenter"`
	DatacenterReason string   `json:"datacenter_reason,omitempty"`
	Failover         []string `json:"failover,omitempty"`
	// Splits are the destinations of a route with split blocks (Service
	// and Tag are then empty); omitted for a one-service route.
	Splits []splitView `json:"splits,omitempty"`
	// StickyCookie names the route's sticky cookie; omitted without one.
	StickyCookie string `json:"sticky_cookie,omitempty"`
	// Mirrors are the route's mirror destinations with their shares.
	Mirrors []mirrorView `json:"mirrors,omitempty"`
	// Settings are the route's effective strip_prefix, timeout, retries
	// and policies, defaults filled in (settings.go).
	Settings settingsView `json:"settings"`
}

// mirrorView is one mirror block as /routes shows it.
type mirrorView struct {
	Service        string  `json:"service"`
	Percent        float64 `json:"percent"`
	MaxConcurrency int     `json:"max_concurrency"`
}

type instanceView struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Passing bool   `json:"passing"`
	// Ejected is the gateway's passive verdict: recent requests to the
	// instance failed, so it is out of rotation for a while.
	Ejected bool `json:"ejected,omitempty"`
	// Warning: Consul's checks warn, and the route lets such instances
	// in (allow_warning); Weight is then its warning weight.
	Warning bool `json:"warning,omitempty"`
	// Weight is the instance's share under the route's balancer: its
	// Consul weight for its current state.
	Weight int `json:"weight"`
}

func (a *admin) serveRoutes(w http.ResponseWriter, r *http.Request) {
	t := a.g.Table()
	now := a.g.Now()
	body := routesBody{Routes: []routeView{}, Aggregates: aggregateViews(t, now), Errors: t.Errors()}
	if body.Errors == nil {
		body.Errors = []gateway.ConfigError{}
	}
	for _, rt := range t.Routes() {
		c := &rt.Config
		v := routeView{
			Name: c.Name, SourceKey: c.SourceKey, Host: c.Host, Path: c.Path, PathPrefix: c.PathPrefix,
			Methods: c.Methods, Service: c.Service, Tag: c.Tag, Balancer: c.Balancer,
			Instances: instanceViews(rt.InstanceStates(now)), Panic: rt.Panic,
		}
		if st, ok := rt.Breaker(); ok {
			v.CircuitBreaker = st.String()
		}
		v.CaseInsensitive = c.CaseInsensitive
		v.Datacenter, v.DatacenterReason = rt.Datacenter, rt.DatacenterReason
		if c.Failover != nil {
			v.Failover = c.Failover.Datacenters
		}
		v.Protocol = c.Protocol
		v.HTTPSOnly = c.HTTPSOnly
		if c.HSTSMaxAge > 0 {
			v.HSTSMaxAge = c.HSTSMaxAge.String()
		}
		v.ACME = c.ACME
		v.Connect = c.Connect
		v.IdleTimeout = c.TunnelIdleTimeout().String()
		v.Tunnels = a.g.Tunnels().Open(c.Name)
		v.Splits = splitViews(rt, now)
		if c.Sticky != nil {
			v.StickyCookie = c.Sticky.Cookie
		}
		for _, m := range c.Mirrors {
			dest := m.Service
			if m.Tag != "" {
				dest += ":" + m.Tag
			}
			v.Mirrors = append(v.Mirrors, mirrorView{Service: dest, Percent: m.Percent, MaxConcurrency: m.MaxConcurrency})
		}
		v.Settings = settingsOf(c)
		body.Routes = append(body.Routes, v)
	}
	writeJSON(w, http.StatusOK, body)
}

// instanceViews shows an upstream's instances as every view lists them:
// Consul's verdict (passing) beside the gateway's own (ejected).
func instanceViews(insts []upstream.InstanceState) []instanceView {
	out := make([]instanceView, len(insts))
	for i, in := range insts {
		out[i] = instanceView{ID: in.ID, Address: in.Address, Port: in.Port, Passing: in.Passing, Ejected: in.Ejected,
			Warning: in.Warning, Weight: in.Weight()}
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
