package registry

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Health keeps one blocking health query per ServiceKey, returning every
// registered instance with whether its checks all pass (use Passing to
// filter) and whether it is in maintenance mode. It is safe for concurrent use.
type Health struct {
	client *api.Client
	opts   Options // with defaults applied
	notify func()
	set    *watchSet[ServiceKey, []Instance]
}

// NewHealth returns a Health with no watches; Ensure starts them. notify, if
// non-nil, is called from a watch goroutine after each change of any
// service's snapshot; it must be cheap and must not block.
func NewHealth(client *api.Client, opts Options, notify func()) *Health {
	h := &Health{client: client, opts: opts.withDefaults(), notify: notify}
	h.set = newWatchSet(h.watch)
	return h
}

// Ensure makes the set of running watches equal to keys (duplicates are
// ignored): it starts missing watches and stops removed ones, waiting for
// their goroutines. It then blocks until every newly started watch has
// answered or failed once, or ctx is done, so a route published after Ensure
// returns already knows its instances. Safe to call repeatedly and
// concurrently; after Stop it does nothing.
func (h *Health) Ensure(ctx context.Context, keys []ServiceKey) { h.set.ensure(ctx, keys) }

// watch is the health query of key.
func (h *Health) watch(key ServiceKey) *watch[[]Instance] {
	health := h.client.Health()
	fetch := func(q *api.QueryOptions) ([]Instance, *api.QueryMeta, error) {
		// Every registered instance, not only passing ones: the gateway's
		// panic threshold needs the registered count to tell "most
		// instances failing" from "the service was scaled down".
		// Another datacenter is the same query with its dc parameter, so
		// every watch runs the one loop of watch.go.
		q.Datacenter = key.Datacenter
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
	log := h.opts.Logger.Named("health").With("service", key.String())
	return newWatch(fetch, equalInstances, h.notify, h.opts, log)
}

// Instances returns the latest registered instances of key, each with its
// Passing flag, sorted by ID (then
// node, as IDs are only unique per node); ok is false until the watch's first
// answer and for keys not passed to the last Ensure. While Consul is
// unreachable the last snapshot is kept. The slice is shared: callers must
// not modify it or its values.
func (h *Health) Instances(key ServiceKey) ([]Instance, bool) { return h.set.snapshot(key) }

// Stop stops every watch and waits for their goroutines. It is final: later
// Ensure calls start nothing. Safe to call more than once.
func (h *Health) Stop() { h.set.stop() }

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
