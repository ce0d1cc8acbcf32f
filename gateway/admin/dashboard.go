package admin

import (
	_ "embed"
	"net/http"
	"time"

	"github.com/gatewayco/gateway/gateway"
)

// dashboardHTML is the whole dashboard: one page with inline CSS and JS
// that polls /api/state, so it needs no build step and no external assets
// (the admin listener is often on a host without internet access).
//
//go:embed dashboard/index.html
var dashboardHTML []byte

// lastSuccesser is implemented by registry.Status; a Health without it
// shows no last-sync time.
type lastSuccesser interface {
	LastSuccess() time.Time
}

// mountOperations adds the operator views to the admin mux: the dashboard,
// the JSON it polls, and /metrics when the gateway records metrics.
func mountOperations(mux *http.ServeMux, g *gateway.Gateway, health Health) {
	if m := g.Metrics(); m != nil {
		mux.Handle("GET /metrics", m.Handler())
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		// Everything is inline; forbid anything else, so a route name or
		// error message that slipped past escaping still cannot load code.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(dashboardHTML)
	})
	mountSeries(mux, g)
	rates := &rateWindow{}
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, buildState(g, health, rates))
	})
}

// stateBody is what the dashboard renders. Entries is a generic list so
// other kinds (aggregates) can join routes without a new page.
type stateBody struct {
	Now     time.Time             `json:"now"`
	Consul  consulView            `json:"consul"`
	Entries []entryView           `json:"entries"`
	Errors  []gateway.ConfigError `json:"errors"`
	// Unmatched counts the requests no route matched since start: 404
	// (no route for the path) and 405 (a route for the path, not for the
	// method).
	Unmatched unmatchedView `json:"unmatched"`
}

type unmatchedView struct {
	NotFound         uint64 `json:"not_found"`
	MethodNotAllowed uint64 `json:"method_not_allowed"`
}

type consulView struct {
	Status string `json:"status"` // ok, degraded or starting, as /health
	Reason string `json:"reason,omitempty"`
	// LastSync is when Consul last answered; nil when never or unknown.
	LastSync *time.Time `json:"last_sync,omitempty"`
}

// entryView is one row of the dashboard. Requests and Errors (5xx) are
// cumulative since start; Rate is over the last few seconds, nil until two
// polls are far enough apart.
type entryView struct {
	Kind      string   `json:"kind"` // "route"; aggregates add their own
	Name      string   `json:"name"`
	Match     string   `json:"match"`
	Methods   []string `json:"methods,omitempty"`
	SourceKey string   `json:"source_key"`
	Balancer  string   `json:"balancer"`
	Breaker   string   `json:"breaker"` // "closed", "half_open" or "open"; "" without a circuit breaker
	// Mesh is set when the route reaches its service through Consul
	// Connect (connect = true).
	Mesh     bool          `json:"mesh,omitempty"`
	Services []serviceView `json:"services"`
	Requests uint64        `json:"requests"`
	Errors   uint64        `json:"errors"`
	Rate     *Rate         `json:"rate"`
}

type serviceView struct {
	Name      string         `json:"name"`
	Instances []instanceView `json:"instances"`
	// Split is set for a destination of a route with splits.
	Split *dashSplit `json:"split,omitempty"`
}

// dashSplit is what the dashboard shows of a split destination: its
// weight and configured share, the share it was observed to get, its
// conditions, and whether it is available.
type dashSplit struct {
	Weight        int      `json:"weight"`
	Share         float64  `json:"share"`
	ObservedShare float64  `json:"observed_share"`
	Served        uint64   `json:"served"`
	Available     bool     `json:"available"`
	Conditions    []string `json:"conditions,omitempty"`
}

func buildState(g *gateway.Gateway, health Health, rates *rateWindow) stateBody {
	t := g.Table()
	s := stateBody{Now: g.Now(), Entries: []entryView{}, Errors: t.Errors()}
	if s.Errors == nil {
		s.Errors = []gateway.ConfigError{}
	}
	s.Unmatched.NotFound, s.Unmatched.MethodNotAllowed = g.Metrics().Unmatched()
	switch {
	case !t.Loaded():
		s.Consul = consulView{Status: "starting", Reason: "no routing table loaded yet"}
	case health != nil && health.Err() != nil:
		s.Consul = consulView{Status: "degraded", Reason: health.Err().Error()}
	default:
		s.Consul = consulView{Status: "ok"}
	}
	if ls, ok := health.(lastSuccesser); ok {
		if at := ls.LastSuccess(); !at.IsZero() {
			s.Consul.LastSync = &at
		}
	}
	for _, rt := range t.Routes() {
		c := &rt.Config
		match := c.PathPrefix + "*"
		if c.Path != "" {
			match = c.Path
		}
		if c.Host != "" {
			match = c.Host + match
		}
		svcs := []serviceView{{Name: rt.Service.String(), Instances: instanceViews(rt.InstanceStates(s.Now))}}
		if splits := splitViews(rt, s.Now); splits != nil {
			svcs = svcs[:0]
			for _, sp := range splits {
				name := sp.Service
				if sp.Tag != "" {
					name += ":" + sp.Tag
				}
				svcs = append(svcs, serviceView{Name: name, Instances: sp.Instances, Split: &dashSplit{
					Weight: sp.Weight, Share: sp.Share, ObservedShare: sp.ObservedShare, Served: sp.Served, Available: sp.Available,
					Conditions: append(conditionText("header", sp.WhenHeader), conditionText("cookie", sp.WhenCookie)...)}})
			}
		}
		breaker := ""
		if st, ok := rt.Breaker(); ok {
			breaker = st.String()
		}
		total, errs := g.Metrics().Counts(c.Name)
		s.Entries = append(s.Entries, entryView{
			Kind: "route", Name: c.Name, Match: match, Methods: c.Methods, SourceKey: c.SourceKey,
			Balancer: c.Balancer, Services: svcs, Requests: total, Errors: errs,
			Breaker: breaker, Mesh: c.Connect,
		})
	}
	for _, ag := range t.Aggregates() {
		c := &ag.Config
		e := entryView{Kind: "aggregate", Name: c.Name, Match: c.Host + c.Path, Methods: c.Methods,
			SourceKey: c.SourceKey, Balancer: c.Balancer}
		for _, call := range ag.Calls {
			sv := serviceView{Name: call.Config.Name + " → " + call.Service.String(), Instances: instanceViews(call.InstanceStates(s.Now))}
			e.Services = append(e.Services, sv)
		}
		e.Requests, e.Errors = g.Metrics().Counts(c.Name)
		s.Entries = append(s.Entries, e)
	}
	counts := make(map[string][2]uint64, len(s.Entries))
	for _, e := range s.Entries {
		counts[e.Kind+"/"+e.Name] = [2]uint64{e.Requests, e.Errors}
	}
	r := rates.observe(s.Now, counts)
	for i := range s.Entries {
		e := &s.Entries[i]
		e.Rate = r[e.Kind+"/"+e.Name]
	}
	return s
}
