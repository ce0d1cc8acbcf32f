// Package upstream is where a request meets an instance: an Upstream
// picks one of a service's instances with the service's balancer, over a
// pool view that leaves out ejected instances and those a retry already
// tried, and sends the request over the shared transport, behind the
// route's circuit breaker and with its retries and budget. Routes reach
// it through the shared Proxy; forward auth and aggregate
// calls use it as an http.RoundTripper, so every caller of a service gets
// the same selection and protection.
package upstream

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/registry"
)

// ErrNoInstance is returned when a service has no instance to send to; the
// proxy answers it with 503.
var ErrNoInstance = errors.New("no healthy instance")

// Config is what an Upstream is built from, once per table.
type Config struct {
	// Service is the health watch the instances come from.
	Service registry.ServiceKey
	// Instances is the snapshot to send to, in the order the balancer
	// indexes; never mutated.
	Instances []registry.Instance
	// Balancer picks among them; it outlives tables, so it must be the
	// service's own, shared by every upstream of the service.
	Balancer balancer.Balancer
	// Transport sends to the picked instance; the gateway's shared one
	// for the route's protocol.
	Transport http.RoundTripper
	// Scheme is the URL scheme Transport is asked for: "https" for TLS
	// upstreams; empty means "http" (HTTP/1.1 or h2c, per Transport).
	Scheme string
	// Retry is the protection's retries; the zero value never retries.
	Retry Retry
	// Breaker is the protection's circuit breaker; nil means none.
	Breaker *policy.RouteBreaker
	// Outliers keeps the instances' passive health across tables; nil
	// means no outlier ejection.
	Outliers *balancer.OutlierTracker
	// Loads keeps the instances' in-flight counts across tables (what
	// least_request weighs); nil counts nothing and reports zero.
	Loads *balancer.LoadTracker
	// Metrics records per-instance counters; nil records none.
	Metrics *metrics.Metrics
	// Now is the clock for ejection; nil means time.Now.
	Now func() time.Time
}

// Upstream sends requests to one service's instances. It is immutable and
// safe for concurrent use; the state it shares across tables (balancer,
// passive health, breaker, budget) lives in the objects it points to.
type Upstream struct {
	service  registry.ServiceKey
	insts    []registry.Instance
	hosts    []string // instances' host:port, in snapshot order; never mutated
	balancer balancer.Balancer
	next     http.RoundTripper
	scheme   string
	retry    Retry
	breaker  *policy.RouteBreaker       // nil: no circuit breaker
	health   []*balancer.InstanceHealth // aligned with hosts; nil: no outlier ejection
	outliers *balancer.OutlierTracker
	weights  []int            // the instances' current Consul weights, aligned with hosts
	loads    []*balancer.Load // aligned with hosts; nil: not counted
	now      func() time.Time
	// metrics are the instances' counters in hosts order, resolved when the
	// table was built; nil when metrics are off. noInstance counts requests
	// that found no healthy instance.
	metrics    []metrics.Instance
	noInstance metrics.Instance
	// sticky pins clients to instances by cookie; nil: no pinning (see
	// WithSticky).
	sticky *sticky
	// mirrors copy requests elsewhere; nil: none (see WithMirrors).
	mirrors []*Mirror
}

// New builds the upstream of c.Service for one table. It takes the
// instances' health records from c.Outliers, so it must run on the
// goroutine that builds tables.
func New(c Config) *Upstream {
	hosts := make([]string, len(c.Instances))
	weights := make([]int, len(c.Instances))
	for i, in := range c.Instances {
		hosts[i] = in.HostPort()
		weights[i] = in.Weight()
	}
	u := &Upstream{service: c.Service, insts: c.Instances, hosts: hosts, balancer: c.Balancer, next: c.Transport,
		scheme: c.Scheme, retry: c.Retry, breaker: c.Breaker, outliers: c.Outliers, now: c.Now, weights: weights}
	if u.now == nil {
		u.now = time.Now
	}
	if u.scheme == "" {
		u.scheme = "http"
	}
	if c.Outliers != nil {
		u.health = c.Outliers.ForHosts(c.Service, hosts)
	}
	if c.Loads != nil {
		u.loads = c.Loads.ForHosts(hosts)
	}
	u.metrics, u.noInstance = c.Metrics.Upstream(c.Service, hosts)
	return u
}

// Service is the health watch the upstream's instances come from.
func (u *Upstream) Service() registry.ServiceKey { return u.service }

// Transport is what the upstream sends over: the shared transport of its
// route's protocol and TLS settings.
func (u *Upstream) Transport() http.RoundTripper { return u.next }

// Breaker is the upstream's circuit breaker; nil without one.
func (u *Upstream) Breaker() *policy.RouteBreaker { return u.breaker }

// RoundTrip sends req to an instance. req.URL.Host is overwritten; the
// exchange in req's context, when present, learns which instance was
// picked for the access log.
func (u *Upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if u.mirrors != nil {
		u.mirror(req)
	}
	if u.breaker != nil {
		return u.breaker.RoundTrip(req, u.send)
	}
	return u.send(req)
}

// InstanceState is one instance as operators see it: Consul's record and
// verdict beside the gateway's own (Ejected).
type InstanceState struct {
	registry.Instance
	// Ejected is the gateway's passive verdict: recent requests to the
	// instance failed, so it is out of rotation for a while.
	Ejected bool
}

// Instances lists the upstream's instances as they stand at now.
func (u *Upstream) Instances(now time.Time) []InstanceState {
	out := make([]InstanceState, len(u.insts))
	for i, in := range u.insts {
		out[i] = InstanceState{Instance: in, Ejected: u.ejected(i, now)}
	}
	return out
}

// ejected reports whether instance i is out of rotation at now.
func (u *Upstream) ejected(i int, now time.Time) bool {
	return u.health != nil && i < len(u.health) && u.health[i].Ejected(now)
}

// pick asks the balancer for an instance among those the pool view v calls
// available: not tried by an earlier attempt of this request (a retry
// never lands on the instance that just failed) and not ejected. An
// ejected instance is still used when nothing else is left: trying it
// beats refusing the request.
func (u *Upstream) pick(v *poolView) int {
	if len(u.hosts) == 0 {
		return -1
	}
	v.keepEjected = false
	if u.health != nil {
		v.now = u.now().UnixNano()
	}
	if p := v.pinned - 1; p >= 0 {
		// Only the first attempt goes to the pinned instance: a retry
		// goes elsewhere, and its answer re-pins the client.
		v.pinned = 0
		if u.stickyOK(v, p) {
			return p
		}
	}
	if i := u.balancer.Pick(v); i >= 0 {
		return i
	}
	v.keepEjected = true
	return u.balancer.Pick(v)
}

// poolView is the balancer's view of an upstream for one request's picks.
type poolView struct {
	u           *Upstream
	tried       []int  // instances this request tried, in buf while it fits
	buf         [4]int // room for the usual attempts
	now         int64  // Unix nanoseconds, for ejection; zero without outlier ejection
	keepEjected bool   // last resort: ejected instances count as available
	pinned      int    // the sticky cookie's instance plus one; zero: none
}

// views recycles pool views. The balancer takes its pool as an interface,
// so a view (and the tried list inside it) cannot live on the stack; from
// a pool, the request path allocates neither.
var views = sync.Pool{New: func() any { return new(poolView) }}

func (u *Upstream) newView() *poolView {
	v := views.Get().(*poolView)
	v.u, v.tried = u, v.buf[:0]
	return v
}

func releaseView(v *poolView) {
	*v = poolView{}
	views.Put(v)
}

func (p *poolView) Len() int { return len(p.u.hosts) }

func (p *poolView) Available(i int) bool {
	if slices.Contains(p.tried, i) {
		return false
	}
	return p.keepEjected || p.u.health == nil || !p.u.health[i].EjectedAt(p.now)
}

// Weight is the instance's Consul weight; an upstream built without
// weights (tests) weighs every instance 1.
func (p *poolView) Weight(i int) int {
	if i >= len(p.u.weights) {
		return 1
	}
	return p.u.weights[i]
}

func (p *poolView) InFlight(i int) int64 {
	if p.u.loads == nil {
		return 0
	}
	return p.u.loads[i].N()
}

// to sends r to instance i: the one place where an attempt at an
// instance starts and ends, whichever caller (route, forward auth,
// aggregate call, retry) made it.
func (u *Upstream) to(r *http.Request, i int) (*http.Response, error) {
	r.URL.Scheme = u.scheme
	r.URL.Host = u.hosts[i]
	u.recordPick(r, i)
	if ex := exchange.From(r.Context()); ex != nil {
		ex.Instance, ex.Service = u.hosts[i], u.service.Name
	}
	var load *balancer.Load
	if u.loads != nil {
		load = u.loads[i]
		load.Inc()
	}
	resp, err := u.next.RoundTrip(r)
	if load != nil {
		if err != nil || resp.Body == nil {
			load.Dec()
		} else {
			resp.Body = counted(resp.Body, load)
		}
	}
	if u.sticky != nil && resp != nil {
		u.sticky.answer(r, resp, i)
	}
	if u.health != nil {
		u.outliers.Record(u.health[i], u.hosts[i], instanceFailed(r, resp, err), err, u.now())
	}
	if u.metrics != nil {
		// A client that hung up is not the instance's fault; a route
		// timeout (DeadlineExceeded) is.
		u.metrics[i].Record(err != nil && !exchange.ClientFault(r, err))
	}
	return resp, err
}

// countedBody ends an instance's in-flight request when the response body
// is closed, which the proxy (or any other caller) does once it is done
// with it, so a streamed or upgraded response counts until it ends.
type countedBody struct {
	io.ReadCloser
	load *balancer.Load
	once sync.Once
}

func (b *countedBody) Close() error {
	b.once.Do(b.load.Dec)
	return b.ReadCloser.Close()
}

// countedConn is countedBody for a 101 answer, whose body is the
// connection itself: the proxy needs it to stay an io.ReadWriteCloser.
type countedConn struct {
	countedBody
	w io.Writer
}

func (c *countedConn) Write(p []byte) (int, error) { return c.w.Write(p) }

func counted(body io.ReadCloser, load *balancer.Load) io.ReadCloser {
	if rwc, ok := body.(io.ReadWriteCloser); ok {
		return &countedConn{countedBody: countedBody{ReadCloser: rwc, load: load}, w: rwc}
	}
	return &countedBody{ReadCloser: body, load: load}
}
