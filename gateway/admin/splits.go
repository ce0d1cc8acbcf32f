package admin

import (
	"maps"
	"slices"
	"time"

	"github.com/gatewayco/gateway/gateway"
)

// splitView is one destination of a route with splits, in /routes.
type splitView struct {
	Service string `json:"service"`
	Tag     string `json:"tag"`
	Weight  int    `json:"weight"`
	// Share is the destination's configured share (its weight over the
	// route's total), 0 to 1.
	Share float64 `json:"share"`
	// WhenHeader and WhenCookie are the conditions forcing a request to
	// the destination; omitted when none.
	WhenHeader map[string]string `json:"when_header,omitempty"`
	WhenCookie map[string]string `json:"when_cookie,omitempty"`
	// Available is false when the destination has no instance to pick;
	// Note then says that its share goes to the others.
	Available bool   `json:"available"`
	Note      string `json:"note,omitempty"`
	// Served is the requests sent to the destination under the current
	// weights, and ObservedShare its part of all the route's requests
	// since then (0 before any).
	Served         uint64         `json:"served"`
	ObservedShare  float64        `json:"observed_share"`
	Instances      []instanceView `json:"instances"`
	Panic          string         `json:"panic,omitempty"`
	CircuitBreaker string         `json:"circuit_breaker,omitempty"`
}

// noteUnavailable is the /routes note of a destination without a
// routable instance.
const noteUnavailable = "no healthy instance: its share goes to the other destinations in proportion to their weights; requests forced to it answer 503"

// splitViews shows rt's destinations; nil for a route without splits.
func splitViews(rt *gateway.Route, now time.Time) []splitView {
	states := rt.SplitStates(now)
	if states == nil {
		return nil
	}
	var weights int
	var served uint64
	for _, s := range states {
		weights += s.Split.Weight
		served += s.Served
	}
	out := make([]splitView, len(states))
	for i, s := range states {
		v := splitView{Service: s.Split.Service, Tag: s.Split.Tag, Weight: s.Split.Weight,
			WhenHeader: s.Split.WhenHeader, WhenCookie: s.Split.WhenCookie,
			Available: s.Available, Served: s.Served, Instances: instanceViews(s.Instances), Panic: s.Panic}
		if weights > 0 {
			v.Share = float64(s.Split.Weight) / float64(weights)
		}
		if served > 0 {
			v.ObservedShare = float64(s.Served) / float64(served)
		}
		if !s.Available {
			v.Note = noteUnavailable
		}
		if s.HasBreaker {
			v.CircuitBreaker = s.Breaker.String()
		}
		out[i] = v
	}
	return out
}

// conditionText renders a split's conditions for the dashboard, in a
// stable order: `header X-Canary=1`.
func conditionText(kind string, m map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, kind+" "+k+"="+m[k])
	}
	return out
}
