package gateway

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/registry"
)

// Outlier ejection defaults, after Envoy's consecutive_gateway_failure:
// five gateway failures in a row take an instance out of rotation for 30 s
// times the number of times it was ejected (capped at ten), long enough
// for Consul's check to notice.
const (
	DefaultOutlierFailures = 5
	DefaultOutlierEjection = 30 * time.Second
	maxEjectionMultiplier  = 10
)

// instanceHealth is the gateway's own, passive view of one instance: what
// its recent answers say, before Consul's active check has noticed. It is
// updated by every request to the instance, without locks.
type instanceHealth struct {
	failures     atomic.Int32
	ejections    atomic.Int32
	ejectedUntil atomic.Int64 // unix nanoseconds; zero when never ejected
}

func (h *instanceHealth) ejected(now time.Time) bool {
	return now.UnixNano() < h.ejectedUntil.Load()
}

// outlierTracker owns every instance's health across table swaps. State is
// keyed by service and address, so it follows an instance from table to
// table, and is dropped once Consul no longer lists the instance: when its
// check passes again it comes back with a clean record.
type outlierTracker struct {
	failures int32         // consecutive failures that eject; <= 0 disables ejection
	base     time.Duration // first ejection's length
	logger   hclog.Logger
	cur      map[string]*instanceHealth
	next     map[string]*instanceHealth // filled during a build, then swapped in
}

func newOutlierTracker(failures int, base time.Duration, logger hclog.Logger) *outlierTracker {
	return &outlierTracker{failures: int32(failures), base: base, logger: logger,
		cur: map[string]*instanceHealth{}, next: map[string]*instanceHealth{}}
}

// forHosts returns the health records of a service's instances, aligned
// with hosts; nil when ejection is disabled.
func (o *outlierTracker) forHosts(key registry.ServiceKey, hosts []string) []*instanceHealth {
	if o.failures <= 0 {
		return nil
	}
	out := make([]*instanceHealth, len(hosts))
	for i, h := range hosts {
		id := key.String() + "|" + h
		rec := o.next[id]
		if rec == nil {
			rec = o.cur[id]
		}
		if rec == nil {
			rec = &instanceHealth{}
		}
		o.next[id] = rec
		out[i] = rec
	}
	return out
}

// swap keeps the records the finished build used and forgets the others.
func (o *outlierTracker) swap() {
	o.cur, o.next = o.next, make(map[string]*instanceHealth, len(o.next))
}

// record counts one exchange with an instance. Only failures that say
// "this instance cannot serve" count: no connection, a reset, a timeout,
// or 502/503/504. A client's fault (see classify: it went away, or its
// body broke or stalled) or a cancelled aggregate call says nothing about
// the instance.
func (o *outlierTracker) record(h *instanceHealth, host string, req *http.Request, resp *http.Response, err error, now time.Time) {
	failed := false
	switch {
	case err != nil:
		failed = !clientFault(req, err)
	case resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout:
		failed = true
	}
	if !failed {
		if h.failures.Load() != 0 {
			h.failures.Store(0)
		}
		return
	}
	if h.failures.Add(1) < o.failures {
		return
	}
	h.failures.Store(0)
	n := min(h.ejections.Add(1), maxEjectionMultiplier)
	d := o.base * time.Duration(n)
	h.ejectedUntil.Store(now.Add(d).UnixNano())
	o.logger.Warn("instance ejected", "upstream", host, "for", d, "consecutive_failures", o.failures, "error", err)
}

// isEjected reports whether instance i of u is out of rotation at now.
func (u *upstream) isEjected(i int, now time.Time) bool {
	return u.health != nil && i < len(u.health) && u.health[i].ejected(now)
}
