package registry

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"
)

// Health keeps the registered instances of each ServiceKey, every one with
// whether its checks all pass (use Passing to filter) and whether it is in
// maintenance mode. Up to a threshold of keys (ShareAbove) it runs one
// blocking health query per key; above it, the local datacenter's keys move
// to shared watches (shared.go) whose connections to Consul do not grow
// with the number of services. It is safe for concurrent use.
type Health struct {
	client *api.Client
	opts   Options // with defaults applied
	notify func()
	set    *watchSet[ServiceKey, []Instance]
	shared *sharedHealth

	mu        sync.Mutex
	threshold int  // see ShareAbove
	sharing   bool // switched to shared watches; never switches back
}

// DefaultShareAbove is the number of local service keys above which Health
// switches to shared watches: below it, one long poll per service costs
// Consul less than re-reading every check on each change; above it the
// per-service connections approach Consul's default limit of 200 per
// client address (http_max_conns_per_client).
const DefaultShareAbove = 32

// NewHealth returns a Health with no watches; Ensure starts them. notify, if
// non-nil, is called from a watch goroutine after each change of any
// service's snapshot; it must be cheap and must not block.
func NewHealth(client *api.Client, opts Options, notify func()) *Health {
	h := &Health{client: client, opts: opts.withDefaults(), notify: notify, threshold: DefaultShareAbove}
	h.set = newWatchSet(h.watch)
	h.shared = newSharedHealth(h)
	return h
}

// ShareAbove sets the number of local service keys above which Ensure
// switches to shared watches: 0 shares from the first key, a negative n
// never shares. The switch is one-way, so a table hovering around the
// threshold does not flap between the two modes. Call it before the first
// Ensure.
func (h *Health) ShareAbove(n int) {
	h.mu.Lock()
	h.threshold = n
	h.mu.Unlock()
}

// Ensure makes the set of watched keys equal to keys (duplicates are
// ignored): it starts missing watches and stops removed ones, waiting for
// their goroutines. It then blocks until every new key has answered or
// failed once, or ctx is done, so a route published after Ensure returns
// already knows its instances. Safe to call repeatedly and concurrently;
// after Stop it does nothing.
func (h *Health) Ensure(ctx context.Context, keys []ServiceKey) {
	var local, other []ServiceKey
	seen := make(map[ServiceKey]bool, len(keys))
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		if shareable(k) {
			local = append(local, k)
		} else {
			other = append(other, k)
		}
	}
	h.mu.Lock()
	if !h.sharing && h.threshold >= 0 && len(local) > h.threshold {
		h.sharing = true
		h.opts.Logger.Named("health").Info("watching health through shared watches", "services", len(local), "threshold", h.threshold)
	}
	sharing := h.sharing
	h.mu.Unlock()
	if !sharing {
		h.set.ensure(ctx, keys)
		return
	}
	// Shared first: the per-key watches of keys moving over keep
	// answering Instances until the shared reads have.
	h.shared.ensure(ctx, local)
	if ctx.Err() != nil {
		return
	}
	h.set.ensure(ctx, other)
}

// shareable reports whether the shared watches cover k: they read the
// local datacenter's checks, and a Connect key's instances are sidecars
// registered under another name, so both of those keep their own watch.
func shareable(k ServiceKey) bool { return k.Datacenter == "" && !k.Connect }

// read performs one health read of key with q.
func (h *Health) read(key ServiceKey, q *api.QueryOptions) ([]Instance, *api.QueryMeta, error) {
	// Every registered instance, not only passing ones: the gateway's
	// panic threshold needs the registered count to tell "most
	// instances failing" from "the service was scaled down".
	// Another datacenter is the same query with its dc parameter, so
	// every watch runs the one loop of watch.go.
	q.Datacenter = key.Datacenter
	health := h.client.Health()
	read := health.Service
	if key.Connect {
		read = health.Connect
	}
	entries, meta, err := read(key.Name, key.Tag, false, q)
	err = aclChecked("the health of service "+key.Name, "service read and node read", meta, err)
	if err != nil && key.Datacenter != "" {
		// Named, so /health says which datacenter is unreachable.
		return nil, nil, fmt.Errorf("datacenter %s: %w", key.Datacenter, err)
	}
	if err != nil {
		return nil, nil, err
	}
	return toInstances(entries), meta, nil
}

// watch is the health query of key.
func (h *Health) watch(key ServiceKey) *watch[[]Instance] {
	fetch := func(q *api.QueryOptions) ([]Instance, *api.QueryMeta, error) { return h.read(key, q) }
	log := h.opts.Logger.Named("health").With("service", key.String())
	return newWatch(fetch, equalInstances, h.notify, h.opts, log)
}

// Instances returns the latest registered instances of key, each with its
// Passing flag, sorted by ID (then
// node, as IDs are only unique per node); ok is false until the watch's first
// answer and for keys not passed to the last Ensure. While Consul is
// unreachable the last snapshot is kept. The slice is shared: callers must
// not modify it or its values.
func (h *Health) Instances(key ServiceKey) ([]Instance, bool) {
	if shareable(key) {
		if insts, ok := h.shared.snapshot(key); ok {
			return insts, true
		}
	}
	return h.set.snapshot(key)
}

// Stop stops every watch and waits for their goroutines. It is final: later
// Ensure calls start nothing. Safe to call more than once.
func (h *Health) Stop() {
	h.set.stop()
	h.shared.stop()
}

func toInstances(entries []*api.ServiceEntry) []Instance {
	out := make([]Instance, 0, len(entries))
	for _, e := range entries {
		if e == nil || e.Service == nil {
			continue
		}
		status := e.Checks.AggregatedStatus()
		inst := Instance{
			ID:      e.Service.ID,
			Address: e.Service.Address,
			Port:    e.Service.Port,
			Tags:    e.Service.Tags,
			// Consul's own passing filter: every node and service check
			// passing; warning counts as not passing, as it does there.
			Passing:     status == api.HealthPassing,
			Warning:     status == api.HealthWarning,
			Maintenance: inMaintenance(e.Checks),
			Weights:     weightsOf(e.Service.Weights.Passing, e.Service.Weights.Warning),
		}
		if e.Node != nil {
			inst.Node = e.Node.Node
			if inst.Address == "" {
				inst.Address = e.Node.Address
			}
		}
		out = append(out, inst)
	}
	slices.SortStableFunc(out, func(a, b Instance) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Node, b.Node))
	})
	return out
}

// inMaintenance reports whether checks hold one of the checks Consul adds
// for maintenance mode: "_node_maintenance" on the node, or
// "_service_maintenance:<service ID>" on the service. Both are critical,
// so only their IDs tell maintenance from a failing health check.
func inMaintenance(checks api.HealthChecks) bool {
	for _, c := range checks {
		if c != nil && (c.CheckID == api.NodeMaint || strings.HasPrefix(c.CheckID, api.ServiceMaintPrefix)) {
			return true
		}
	}
	return false
}

func equalInstances(a, b []Instance) bool {
	return slices.EqualFunc(a, b, func(x, y Instance) bool {
		return x.ID == y.ID && x.Node == y.Node && x.Address == y.Address &&
			x.Port == y.Port && x.Passing == y.Passing && x.Maintenance == y.Maintenance &&
			x.Warning == y.Warning && x.Weights == y.Weights &&
			slices.Equal(x.Tags, y.Tags)
	})
}
