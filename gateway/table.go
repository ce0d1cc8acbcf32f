package gateway

import (
	"net/http"
	"time"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/gateway/router"
	"github.com/gatewayco/gateway/gateway/upstream"
	"github.com/gatewayco/gateway/registry"
)

// Table is one immutable routing state: the matcher, the routes with the
// instances they had when the table was built, and the configuration errors
// of that moment. A new Table is built for every change and swapped in
// whole; a request loads one Table and uses it to the end, so it never sees
// half of an update.
type Table struct {
	router     http.Handler
	routes     []*Route
	aggregates []*Aggregate
	errors     []ConfigError
	loaded     bool
	// services is what every upstream of the table (routes, aggregate
	// calls, forward auth) was built with, for metrics.
	services map[registry.ServiceKey][]registry.Instance
}

// Route is a route of one Table: its validated configuration, the service
// instances it proxies to, and the per-service balancer that outlives the
// table.
type Route struct {
	// Config is the validated route block.
	Config config.Route
	// Service is the health watch the instances come from.
	Service registry.ServiceKey
	// Instances is the snapshot the route sends traffic to, never mutated:
	// the passing instances, unless Panic says otherwise.
	Instances []registry.Instance
	// Panic is why Instances is not the passing set (panic threshold or an
	// empty list from Consul); empty in normal operation.
	Panic string
	// Datacenter is the Consul datacenter Instances come from, by name;
	// DatacenterReason says why, when it is a failover datacenter.
	Datacenter       string
	DatacenterReason string

	up *upstream.Upstream // nil for a route with splits
	// splitter chooses the destination of a route with splits; nil
	// otherwise. splitPanics is each destination's Panic, in split order.
	splitter    *upstream.Splitter
	splitPanics []string
	handler     http.Handler   // the route's policy chain ending in the proxy
	metrics     *metrics.Route // nil when metrics are off
}

// ConfigError is a rejected route document, as listed by /routes.
type ConfigError struct {
	// Key is the KV key of the document.
	Key string `json:"key"`
	// Message says what is wrong, with the position in the document.
	Message string `json:"message"`
	// Serving is what the key serves meanwhile: "last_good" (an older
	// version, LastGoodIndex, accepted at LastGoodSince) or "nothing".
	Serving string `json:"serving,omitempty"`
	// LastGoodIndex is the ModifyIndex of the version served instead.
	LastGoodIndex uint64 `json:"last_good_index,omitempty"`
	// LastGoodSince is when the first replica accepted that version.
	LastGoodSince time.Time `json:"last_good_since,omitzero"`
}

// Routes returns the table's routes sorted by name. The slice is shared:
// do not modify it.
func (t *Table) Routes() []*Route { return t.routes }

// Errors returns the configuration errors the table was built with.
func (t *Table) Errors() []ConfigError { return t.errors }

// Loaded reports whether the table came from Consul; only the placeholder
// table a gateway starts with is not loaded.
func (t *Table) Loaded() bool { return t.loaded }

// emptyTable answers 404 to everything; a Gateway serves it until the first
// real table arrives, so the table pointer is never nil.
func emptyTable() *Table {
	return &Table{router: router.New(nil)}
}

// metricsView is what the metrics record of t when it is published.
func (t *Table) metricsView() metrics.TableView {
	v := metrics.TableView{Rejected: len(t.errors), Services: t.services, Breakers: map[string]int{}, Datacenters: map[string]string{}}
	for _, rt := range t.routes {
		v.Routes = append(v.Routes, rt.Config.Name)
		v.Datacenters[rt.Config.Name] = rt.Datacenter
		if st, ok := rt.Breaker(); ok {
			v.Breakers[rt.Config.Name] = st.Level()
		}
		for _, ss := range rt.SplitStates(time.Time{}) {
			if v.Splits == nil {
				v.Splits = map[string][]string{}
			}
			v.Splits[rt.Config.Name] = append(v.Splits[rt.Config.Name], ss.Split.String())
			if ss.HasBreaker {
				v.Breakers[rt.Config.Name+"/"+ss.Split.String()] = ss.Breaker.Level()
			}
		}
	}
	for _, ag := range t.aggregates {
		v.Routes = append(v.Routes, ag.Config.Name)
		for _, c := range ag.Calls {
			if st, ok := c.Breaker(); ok {
				v.Breakers[ag.Config.Name+"/"+c.Config.Name] = st.Level()
			}
		}
	}
	return v
}

// Breaker is the route's circuit breaker state; ok is false when the
// route has none.
func (r *Route) Breaker() (state policy.BreakerState, ok bool) {
	if r.up == nil {
		return 0, false
	}
	if br := r.up.Breaker(); br != nil {
		return br.State(), true
	}
	return 0, false
}

// InstanceStates lists the route's instances, in Instances order, with
// the gateway's own verdict on each at now.
// A route with splits lists its destinations' instances in
// SplitStates instead, and none here.
func (r *Route) InstanceStates(now time.Time) []upstream.InstanceState {
	if r.up == nil {
		return nil
	}
	return r.up.Instances(now)
}
