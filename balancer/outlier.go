package balancer

import (
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

// InstanceHealth is the gateway's own, passive view of one instance: what
// its recent answers say, before Consul's active check has noticed. It is
// updated by every request to the instance, without locks.
type InstanceHealth struct {
	failures     atomic.Int32
	ejections    atomic.Int32
	ejectedUntil atomic.Int64 // unix nanoseconds; zero when never ejected
}

// Ejected reports whether the instance is out of rotation at now.
func (h *InstanceHealth) Ejected(now time.Time) bool { return h.EjectedAt(now.UnixNano()) }

// EjectedAt is Ejected at now in Unix nanoseconds, for a pool view that
// reads the clock once per pick and must stay small (it is allocated for
// every pick).
func (h *InstanceHealth) EjectedAt(now int64) bool { return now < h.ejectedUntil.Load() }

// EjectUntil takes the instance out of rotation until t, whatever its
// record says; tests use it to set up a pool.
func (h *InstanceHealth) EjectUntil(t time.Time) { h.ejectedUntil.Store(t.UnixNano()) }

// OutlierTracker owns every instance's health across table swaps. State is
// keyed by service and address, so it follows an instance from table to
// table, and is dropped once Consul no longer lists the instance: when its
// check passes again it comes back with a clean record. ForHosts, Swap and
// Discard belong to the single goroutine that builds tables; Record is
// safe from any request.
type OutlierTracker struct {
	failures int32         // consecutive failures that eject; <= 0 disables ejection
	base     time.Duration // first ejection's length
	logger   hclog.Logger
	records  kept[healthKey, InstanceHealth]
}

// healthKey names one instance of one service: a struct rather than a
// joined string, so a table build allocates no key per instance.
type healthKey struct {
	service registry.ServiceKey
	host    string
}

// NewOutlierTracker returns a tracker ejecting an instance after failures
// consecutive failures (zero or less: never) for base times the number of
// its ejections so far. Ejections are logged on logger (nil discards).
func NewOutlierTracker(failures int, base time.Duration, logger hclog.Logger) *OutlierTracker {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &OutlierTracker{failures: int32(failures), base: base, logger: logger,
		records: newKept[healthKey, InstanceHealth]()}
}

// ForHosts returns the health records of a service's instances, aligned
// with hosts; nil when ejection is disabled.
func (o *OutlierTracker) ForHosts(key registry.ServiceKey, hosts []string) []*InstanceHealth {
	if o.failures <= 0 {
		return nil
	}
	out := make([]*InstanceHealth, len(hosts))
	for i, h := range hosts {
		out[i] = o.records.get(healthKey{service: key, host: h})
	}
	return out
}

// Swap keeps the records the finished build used and forgets the others.
func (o *OutlierTracker) Swap() { o.records.swap() }

// Discard forgets what an abandoned build asked for, so the next build
// starts from the records of the last finished one.
func (o *OutlierTracker) Discard() { o.records.discard() }

// Record counts one exchange with the instance h at host. failed is the
// caller's verdict: only a failure that says "this instance cannot serve"
// (no connection, a reset, a timeout, 502/503/504) may count, never a
// client's fault, which the caller knows how to tell and this package does
// not. err, when set, is logged with an ejection.
func (o *OutlierTracker) Record(h *InstanceHealth, host string, failed bool, err error, now time.Time) {
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
