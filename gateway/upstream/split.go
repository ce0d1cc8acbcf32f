package upstream

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/metrics"
)

// Destination is one split of a route for one table: its own upstream
// (instances, balancer, breaker, outlier state, as a one-service route
// has) and the proxy handler sending to it.
type Destination struct {
	// Split is the validated split block.
	Split config.Split
	// Up is the destination's upstream.
	Up *Upstream
	// Handler proxies a request to Up with the route's settings.
	Handler http.Handler
	// Metrics counts the destination's requests; nil records nothing.
	Metrics *metrics.SplitDest
	// Served counts the requests sent to the destination under the
	// route's current weights; it outlives tables (the builder keeps it),
	// so observed shares do not restart on every instance change.
	Served *atomic.Uint64
}

// Splitter chooses a route's destination per request: the first split
// whose when_header or when_cookie conditions hold (see matches), else
// one picked by a balancer over the destinations weighted by their split
// weights, among those with a routable instance. A destination without one gets
// no share; its share goes to the others in proportion to their weights.
type Splitter struct {
	dests []Destination
	bal   balancer.Balancer
	now   func() time.Time
}

// NewSplitter returns the splitter over dests (at most config.MaxSplits),
// picking with bal, which must outlive tables like a service's balancer.
func NewSplitter(dests []Destination, bal balancer.Balancer, now func() time.Time) *Splitter {
	if len(dests) > config.MaxSplits {
		// Validation bounds split blocks; reaching this is a bug.
		panic("upstream: more destinations than config.MaxSplits")
	}
	if now == nil {
		now = time.Now
	}
	return &Splitter{dests: dests, bal: bal, now: now}
}

// Destinations are the splitter's destinations in split order.
func (s *Splitter) Destinations() []Destination { return s.dests }

// Available reports whether destination i has an instance its upstream
// would pick without falling back to an ejected one, at now.
func (s *Splitter) Available(i int, now time.Time) bool {
	return s.dests[i].Up.routable(now.UnixNano())
}

// ServeHTTP sends r to its destination's handler. A forced destination
// with no instance at all answers 503 rather than falling back to the
// weighted choice: a tester asking for v2 must never be answered by v1
// and believe v2 works.
func (s *Splitter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := s.forced(r)
	if i >= 0 && len(s.dests[i].Up.hosts) == 0 {
		exchange.WriteError(w, http.StatusServiceUnavailable, exchange.MsgNoInstance, exchange.From(r.Context()).Route)
		return
	}
	if i < 0 {
		i = s.pick()
	}
	if i < 0 {
		exchange.WriteError(w, http.StatusServiceUnavailable, exchange.MsgNoInstance, exchange.From(r.Context()).Route)
		return
	}
	d := &s.dests[i]
	d.Served.Add(1)
	d.Metrics.Sent()
	d.Handler.ServeHTTP(w, r)
}

// forced is the first destination whose conditions r meets, or -1. Only
// a header's first value is compared, exactly, so a client's many
// values cost nothing; a cookie is looked up by name among those the
// server's header limit let in.
func (s *Splitter) forced(r *http.Request) int {
	for i := range s.dests {
		sp := &s.dests[i].Split
		if !sp.Forced() {
			continue
		}
		if matches(r, sp) {
			return i
		}
	}
	return -1
}

// matches reports whether r meets sp's when_header entries (all of them)
// or its when_cookie entries (all of them): a tester can be sent by a
// header from a script or by a cookie from a browser.
func matches(r *http.Request, sp *config.Split) bool {
	return len(sp.WhenHeader) > 0 && headersMatch(r, sp.WhenHeader) ||
		len(sp.WhenCookie) > 0 && cookiesMatch(r, sp.WhenCookie)
}

func headersMatch(r *http.Request, want map[string]string) bool {
	for name, v := range want {
		// Names are canonical, so the map is indexed directly.
		if got := r.Header[name]; len(got) == 0 || got[0] != v {
			return false
		}
	}
	return true
}

func cookiesMatch(r *http.Request, want map[string]string) bool {
	for name, v := range want {
		c, err := r.Cookie(name)
		if err != nil || c.Value != v {
			return false
		}
	}
	return true
}

// pick chooses a weighted destination among the routable ones, counting
// each weighted destination passed over; when none is routable (every
// instance ejected) it picks among those with any instance, as an
// upstream falls back to its ejected instances.
func (s *Splitter) pick() int {
	v := splitViews.Get().(*splitView)
	defer splitViews.Put(v)
	v.s = s
	now := s.now().UnixNano()
	for i := range s.dests {
		d := &s.dests[i]
		v.avail[i] = d.Split.Weight > 0 && d.Up.routable(now)
		if d.Split.Weight > 0 && !v.avail[i] {
			d.Metrics.Unavailable()
		}
	}
	if i := s.bal.Pick(v); i >= 0 {
		return i
	}
	for i := range s.dests {
		v.avail[i] = s.dests[i].Split.Weight > 0 && len(s.dests[i].Up.hosts) > 0
	}
	return s.bal.Pick(v)
}

// splitView is the balancer's Pool over a splitter's destinations for one
// pick; recycled, so the request path does not allocate it.
type splitView struct {
	s     *Splitter
	avail [config.MaxSplits]bool
}

var splitViews = sync.Pool{New: func() any { return new(splitView) }}

func (v *splitView) Len() int             { return len(v.s.dests) }
func (v *splitView) Available(i int) bool { return v.avail[i] }
func (v *splitView) Weight(i int) int     { return v.s.dests[i].Split.Weight }
func (v *splitView) InFlight(int) int64   { return 0 }

// routable reports whether the upstream has an instance not ejected at
// now (Unix nanoseconds).
func (u *Upstream) routable(now int64) bool {
	for i := range u.hosts {
		if u.health == nil || !u.health[i].EjectedAt(now) {
			return true
		}
	}
	return false
}
