package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/consul/api"
)

// Peers follows the passing instances of the gateway's own service (the
// -service-name it registers under), so a limit shared by the fleet can
// be split among the replicas that take traffic. One blocking health
// query, through the watch loop every other watch runs; Count is an
// atomic load, safe on the request path.
type Peers struct {
	client  *api.Client
	service string
	opts    Options // with defaults applied
	notify  func()
	count   atomic.Int64
}

// NewPeers returns a Peers for service; Count answers 1 until Run has
// had a first answer. notify, if non-nil, is called from the watch
// goroutine after each change of the count; it must not block.
func NewPeers(client *api.Client, service string, opts Options, notify func()) *Peers {
	p := &Peers{client: client, service: service, opts: opts.withDefaults(), notify: notify}
	p.count.Store(1)
	return p
}

// Run watches the service until ctx is done. selfID is this gateway's
// service ID: it is counted whether or not Consul lists it as passing
// yet, because a replica that serves takes its share of the traffic
// before its first check passes (and after its check fails, while it is
// still reachable). While Consul is unreachable, or its ACLs hide
// replicas from the token (reported to Status as ErrPermissionDenied),
// the last count is kept.
func (p *Peers) Run(ctx context.Context, selfID string) {
	health := p.client.Health()
	fetch := func(q *api.QueryOptions) ([]string, *api.QueryMeta, error) {
		entries, meta, err := health.Service(p.service, "", true, q)
		// Replicas the token may not see are left out of a 200 answer;
		// counted as absent, each replica would allow more than its share.
		if err = aclChecked(fmt.Sprintf("the replicas of service %q", p.service), "service read and node read", meta, err); err != nil {
			return nil, nil, err
		}
		// A service ID is unique per agent, not per cluster: replicas on
		// two nodes may share one (same host name and port), and each
		// takes its share of traffic, so an instance is its node and ID.
		ids := make([]string, 0, len(entries))
		for _, e := range entries {
			if e != nil && e.Service != nil && e.Node != nil {
				ids = append(ids, e.Node.Node+peerSep+e.Service.ID)
			}
		}
		slices.Sort(ids)
		return slices.Compact(ids), meta, nil
	}
	var w *watch[[]string]
	w = newWatch(fetch, slices.Equal[[]string], func() {
		ids, _ := w.snapshot()
		n := len(ids)
		if !slices.ContainsFunc(ids, func(id string) bool { return strings.HasSuffix(id, peerSep+selfID) }) {
			n++
		}
		if old := p.count.Swap(int64(n)); old != int64(n) {
			p.opts.Logger.Info("gateway replicas passing changed", "service", p.service, "replicas", n, "was", old)
			if p.notify != nil {
				p.notify()
			}
		}
	}, p.opts, p.opts.Logger.Named("peers").With("service", p.service))
	w.run(ctx)
}

// peerSep joins a replica's node and service ID; neither may contain it.
const peerSep = "\x00"

// Count is the number of replicas sharing a cluster-wide limit: the
// passing instances of the service (by node and service ID), plus this gateway when it is not
// among them; at least 1.
func (p *Peers) Count() int {
	if p == nil {
		return 1
	}
	return int(p.count.Load())
}
