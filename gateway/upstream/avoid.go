package upstream

import (
	"context"
	"net/http"
	"slices"
	"sync"
)

// Picks lets a caller that sends the same request twice (an aggregate's
// hedged call) steer the second copy away from the first: each send
// records the instances it went to, and a send whose context carries
// Avoid treats those as already tried, so the balancer picks among the
// others. It is safe for concurrent use.
type Picks struct {
	mu    sync.Mutex
	hosts []string
}

// Hosts returns the instances (host:port) sends recorded so far.
func (p *Picks) Hosts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.hosts)
}

func (p *Picks) add(host string) {
	p.mu.Lock()
	p.hosts = append(p.hosts, host)
	p.mu.Unlock()
}

type picksKey struct{}

// picksCtx is what a context carries: where to record, what to avoid.
type picksCtx struct {
	record *Picks
	avoid  []string
}

// WithPicks returns ctx whose sends record their instances in p.
func WithPicks(ctx context.Context, p *Picks) context.Context {
	return context.WithValue(ctx, picksKey{}, &picksCtx{record: p})
}

// WithAvoid returns ctx whose sends pick none of hosts while another
// instance is left; with none left they fail with ErrNoInstance.
func WithAvoid(ctx context.Context, hosts []string) context.Context {
	return context.WithValue(ctx, picksKey{}, &picksCtx{avoid: hosts})
}

// avoidPicks marks the instances req's context says to avoid as tried.
func (u *Upstream) avoidPicks(req *http.Request, v *poolView) {
	pc, _ := req.Context().Value(picksKey{}).(*picksCtx)
	if pc == nil {
		return
	}
	for _, h := range pc.avoid {
		if i := slices.Index(u.hosts, h); i >= 0 {
			v.tried = append(v.tried, i)
		}
	}
}

// recordPick notes instance i in req's context's Picks, if any.
func (u *Upstream) recordPick(req *http.Request, i int) {
	if pc, _ := req.Context().Value(picksKey{}).(*picksCtx); pc != nil && pc.record != nil {
		pc.record.add(u.hosts[i])
	}
}
