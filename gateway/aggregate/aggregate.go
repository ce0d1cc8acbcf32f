// Package aggregate serves aggregate endpoints: one request fans out to
// several upstream calls concurrently, and their JSON bodies are merged
// into one answer, within a memory budget every aggregate of a gateway
// shares. The table builder makes an Aggregate per table with New; calls
// reach their services through the same upstreams routes use.
package aggregate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/gateway/upstream"
	"github.com/gatewayco/gateway/registry"
)

// Aggregate is an aggregate endpoint of one table: a request is answered by
// calling every call's service concurrently and merging the JSON bodies.
// It is immutable and safe for concurrent use. It serves the request as
// the router hands it over, behind whatever admission policies the table
// builder put in front of it; it reads the path variables with mux.Vars.
type Aggregate struct {
	// Config is the validated aggregate block.
	Config config.Aggregate
	// Calls are the upstream calls in declaration order.
	Calls []*Call

	logger  hclog.Logger
	metrics *metrics.Metrics // nil when metrics are off
	trusted []netip.Prefix   // proxies whose X-Forwarded-* are believed
	budget  *Budget          // gateway-wide bound on buffered bodies

	// Execution (plan.go): the order calls start in, whether any waits
	// for another, and the call forwarding the client's body (-1: none).
	order     []int
	sequenced bool
	bodyCall  int
}

// Deps is what every aggregate of a gateway is built with.
type Deps struct {
	// Logger logs failed required calls at debug level; nil discards.
	Logger hclog.Logger
	// Metrics counts call outcomes; nil counts none.
	Metrics *metrics.Metrics
	// Trusted are the proxies whose X-Forwarded-* headers are believed.
	Trusted []netip.Prefix
	// Budget bounds what all aggregates buffer at once; required.
	Budget *Budget

	// Cache keeps the answers of calls with cache = true; nil caches none.
	Cache *Cache
	// HedgeBudget returns the hedge budget (NewHedgeBudget) of the named
	// call, kept across tables; nil hedges no call.
	HedgeBudget func(call string) *policy.RetryBudget
	// AfterFunc is the hedge timer; nil means time.AfterFunc.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
}

// New returns the aggregate of cfg making calls, which must be in cfg's
// declaration order. It panics on calls waiting for each other in a cycle
// or for an unknown call, which validation refuses.
func New(cfg config.Aggregate, calls []*Call, d Deps) *Aggregate {
	logger := d.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	order, err := plan(calls)
	if err != nil {
		panic(err)
	}
	ag := &Aggregate{Config: cfg, Calls: calls, logger: logger, metrics: d.Metrics, trusted: d.Trusted, budget: d.Budget,
		order: order, bodyCall: -1}
	after := afterFunc(d.AfterFunc)
	if after == nil {
		after = realAfterFunc
	}
	for i, c := range calls {
		ag.sequenced = ag.sequenced || len(c.deps) > 0
		if c.Config.Body == config.BodyClient {
			ag.bodyCall = i
		}
		c.counters = d.Metrics.AggregateCallCounters(cfg.Name, c.Config.Name)
		if c.Config.Cache {
			c.cache = d.Cache
		}
		// A hedge goes to another instance, so a call with one has none.
		if c.Config.HedgeAfter > 0 && d.HedgeBudget != nil && len(c.Instances) > 1 {
			c.hedges, c.after = d.HedgeBudget(c.Config.Name), after
		}
	}
	return ag
}

// Call is one call of an Aggregate with the instances it had when the
// table was built.
type Call struct {
	// Config is the validated call block.
	Config config.Call
	// Service is the health watch the instances come from.
	Service registry.ServiceKey
	// Instances is the snapshot the call is sent to, never mutated: the
	// passing instances, unless Panic says otherwise.
	Instances []registry.Instance
	// Panic is why Instances is not the passing set; empty normally.
	Panic string

	up    *upstream.Upstream
	parts []config.PathPart
	name  []byte // the call name as a JSON string, its key under "errors"
	key   []byte // the member of the merged body as a JSON string: the group
	group string // that member unquoted
	shape *shaper

	// Execution (plan.go, cache.go, hedge.go).
	method   string
	refs     []*ref // aligned with parts; nil when no part names an answer's value
	deps     []int  // the calls this one waits for, by index
	cache    *Cache // nil: answers are not cached
	hedges   *policy.RetryBudget
	after    afterFunc // the hedge timer; set with hedges
	counters metrics.CallCounters
}

// NewCall returns the call of cfg, sent through up to the service's
// instances insts (watched as service); panic is why insts is not the
// passing set, empty normally. It fails only on a path template that
// validation would have refused.
func NewCall(cfg config.Call, service registry.ServiceKey, insts []registry.Instance, panic string, up *upstream.Upstream) (*Call, error) {
	parts, err := config.ParseCallPath(cfg.Path)
	if err != nil {
		return nil, err
	}
	name, _ := json.Marshal(cfg.Name)
	key, group := name, cfg.Name
	if g := cfg.Shape.Group; g != "" && g != cfg.Name {
		key, _ = json.Marshal(g)
		group = g
	}
	c := &Call{Config: cfg, Service: service, Instances: insts, Panic: panic, up: up, parts: parts, name: name,
		key: key, group: group, shape: newShaper(cfg.Shape), method: cfg.CallMethod()}
	if refs, any := parseRefs(parts, cfg.After); any {
		c.refs = refs
	}
	return c, nil
}

// InstanceStates lists the call's instances, in Instances order, with the
// gateway's own verdict on each at now.
func (c *Call) InstanceStates(now time.Time) []upstream.InstanceState { return c.up.Instances(now) }

// Breaker is the call's circuit breaker state; ok is false when the call
// has none.
func (c *Call) Breaker() (state policy.BreakerState, ok bool) {
	if br := c.up.Breaker(); br != nil {
		return br.State(), true
	}
	return 0, false
}

// Kinds of call failure, as the merged body's "errors" member names them
// and the gateway_aggregate_calls_total metric counts them (with "ok").
const (
	KindBusiness = "business" // the upstream answered 4xx
	KindSystem   = "system"   // 5xx, connection error, no instance, bad or oversized JSON
	KindTimeout  = "timeout"  // the call's or the aggregate's deadline passed
	// KindMemory labels, in metrics only, a call whose body the gateway's
	// aggregate budget refused; the client sees a 503 for the request.
	KindMemory = "memory"
)

// callResult is what one call produced: a JSON body, or a failure.
type callResult struct {
	body []byte // valid JSON when kind is empty
	err  CallError
	// memory is set when the gateway-wide budget refused the body: the
	// whole request then answers 503, whatever the call's required flag.
	memory bool
}

// CallError is one member of the merged body's "errors" object; a zero
// Kind means the call succeeded.
type CallError struct {
	// Kind is KindBusiness, KindSystem or KindTimeout.
	Kind string `json:"kind"`
	// Status is the upstream's, or the gateway's for a failure without an
	// answer (502, 503, 504).
	Status int `json:"status"`
	// Message says what failed, without upstream detail.
	Message string `json:"message"`
	// Detail is the "error" member of a 2xx answer that carried one (a
	// business error), when at most maxErrorDetail bytes; else empty.
	Detail json.RawMessage `json:"detail,omitempty"`
}

// requiredFailure ends the errgroup on the first failed required call,
// which cancels the calls still running; call is its index.
type requiredFailure struct{ call int }

func (requiredFailure) Error() string { return "required call failed" }

// errBadPathValue rejects a value that would change the call's path
// structure instead of filling one segment.
var errBadPathValue = errors.New("invalid path value")

// defaultForwardHeaders are passed from the client request to every call;
// an aggregate's forward_headers adds to them.
var defaultForwardHeaders = []string{"Authorization", "X-Request-Id", "Traceparent", "Tracestate"}

// ServeHTTP fans the request out to the calls and answers with the merged
// body, or with the failure of a required call, or 503 when the bodies
// would take more memory than the gateway-wide budget has left.
func (ag *Aggregate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := ag.Config.Name
	ex := exchange.From(r.Context()) // the table builder's chain named the route
	vars, query := mux.Vars(r), r.URL.Query()
	targets := make([]string, len(ag.Calls))
	for i, c := range ag.Calls {
		t, err := c.target(vars, query, nil)
		if err != nil {
			exchange.WriteError(w, http.StatusBadRequest, err.Error(), name)
			return
		}
		targets[i] = t
	}
	header := ag.outgoingHeader(r)

	ctx := r.Context()
	if ag.Config.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ag.Config.Timeout)
		defer cancel()
	}
	// The calls run concurrently; the request's exchange records one
	// upstream and must not be written by several goroutines.
	ctx = exchange.NewContext(ctx, nil)

	// Everything the calls buffer is held until the answer is written.
	hold := ag.budget.hold()
	defer hold.close()
	var body []byte
	bodyHeader := header
	if ag.bodyCall >= 0 {
		var ok bool
		if body, ok = ag.clientBody(ctx, w, r, hold); !ok {
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" {
			bodyHeader = header.Clone()
			bodyHeader.Set("Content-Type", ct)
		}
	}
	results := make([]callResult, len(ag.Calls))
	var ans *answers
	if ag.sequenced {
		ans = newAnswers(results)
	}
	failed := -1 // index of the required call that failed the request
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(ag.Config.MaxConcurrency)
	for _, i := range ag.order {
		c := ag.Calls[i]
		g.Go(func() error {
			if ans != nil {
				// Set results[i] before this, on every path: dependents
				// read it once done is closed.
				defer close(ans.done[i])
			}
			if err := gctx.Err(); err != nil {
				// A required call already failed, the client left or the
				// deadline passed while this one waited for a slot. A
				// required call that never ran fails the request too.
				results[i] = transportFailure(gctx, err)
				if c.Config.Required {
					return requiredFailure{call: i}
				}
				return nil
			}
			if target, res, ok := ag.prepare(gctx, c, targets[i], vars, query, ans); !ok {
				results[i] = res
			} else if i == ag.bodyCall {
				results[i] = c.traced(gctx, name, target, bodyHeader, body, ag.Config.MaxResponseBytes, hold)
			} else {
				results[i] = c.traced(gctx, name, target, header, nil, ag.Config.MaxResponseBytes, hold)
			}
			results[i] = businessError(results[i])
			if results[i].memory {
				// Stop the other calls at once: their bodies could not
				// be merged into an answer anyway.
				return errMemory
			}
			if results[i].err.Kind != "" && c.Config.Required {
				ag.logger.Debug("required call failed", "aggregate", name, "call", c.Config.Name, "kind", results[i].err.Kind, "message", results[i].err.Message)
				return requiredFailure{call: i}
			}
			return nil
		})
	}
	var rf requiredFailure
	err := g.Wait()
	if errors.As(err, &rf) {
		failed = rf.call
	}
	if err == nil {
		// Shaped before counting: an answer too large to shape is a
		// system failure of its call.
		var memory bool
		if failed, memory = ag.shapeResults(results, hold); memory {
			err = errMemory
		}
	}
	for i := range results {
		if results[i].err.Kind == KindTimeout {
			results[i].err.Status = ag.Config.TimeoutStatus
		}
	}
	for i, c := range ag.Calls {
		kind := results[i].err.Kind
		switch {
		case results[i].memory:
			kind = KindMemory
		case kind == "":
			kind = "ok"
		}
		ag.metrics.AggregateCall(name, c.Config.Name, kind)
	}
	if r.Context().Err() != nil {
		// The client went away; nobody reads the answer.
		if ex != nil {
			ex.Status = exchange.StatusClientClosed
		}
		return
	}
	switch {
	case errors.Is(err, errMemory):
		ag.writeMemoryLimit(w)
	case failed >= 0:
		ag.writeRequiredFailure(w, failed, results[failed].err)
	default:
		ag.writeMerged(w, results, hold)
	}
}

// writeMemoryLimit answers a request the aggregate budget refused: 503
// with Retry-After, as for any overload of the gateway itself.
func (ag *Aggregate) writeMemoryLimit(w http.ResponseWriter) {
	w.Header().Set("Retry-After", memoryRetryAfter)
	exchange.WriteError(w, http.StatusServiceUnavailable, MsgMemory, ag.Config.Name)
}

// target fills the call's path template. Path values are escaped as one
// segment and query values as one component, so a value can never add
// segments, parameters or a fragment.
//
// A value from another call's answer ({user.account_id}) is escaped the
// same way; ans holds the answers, nil to check the request's values alone
// before any call is made (such values then read as "0").
func (c *Call) target(vars map[string]string, query url.Values, ans *answers) (string, error) {
	var b strings.Builder
	for k, p := range c.parts {
		if p.Var == "" {
			b.WriteString(p.Literal)
			continue
		}
		var v string
		if r := c.refAt(k); r != nil {
			v = "0"
			if ans != nil {
				var err error
				if v, err = ans.value(r); err != nil {
					return "", err
				}
			}
		} else if q, ok := strings.CutPrefix(p.Var, "query."); ok {
			v = query.Get(q)
		} else {
			v = vars[p.Var]
		}
		if p.InQuery {
			b.WriteString(url.QueryEscape(v))
			continue
		}
		// A value in the path must stay inside its segment: an empty one
		// would call the collection ("/users/"), and a slash, even escaped,
		// is decoded by upstreams that normalise paths (this gateway
		// included) into another path.
		if v == "" || strings.Contains(v, "/") {
			return "", fmt.Errorf("%w: {%s} must be a non-empty value without '/'", errBadPathValue, p.Var)
		}
		b.WriteString(url.PathEscape(v))
	}
	// PathEscape leaves dots alone, and a "." or ".." segment, even one
	// built from several values, is resolved by upstreams to another path.
	path, _, _ := strings.Cut(b.String(), "?")
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return "", fmt.Errorf("%w: the call path would contain a %q segment", errBadPathValue, seg)
		}
	}
	return b.String(), nil
}

// outgoingHeader is the header set every call carries. X-Forwarded-* are
// the gateway's own, as for routes: a client can neither forge nor remove
// them.
func (ag *Aggregate) outgoingHeader(r *http.Request) http.Header {
	h := make(http.Header, len(defaultForwardHeaders)+len(ag.Config.ForwardHeaders)+3)
	for _, list := range [][]string{defaultForwardHeaders, ag.Config.ForwardHeaders} {
		for _, k := range list {
			if v := r.Header.Values(k); len(v) > 0 {
				h[k] = append([]string(nil), v...)
			}
		}
	}
	xff, host, proto, trusted := exchange.Forwarded(r, ag.trusted)
	exchange.DropSpoofable(h, trusted)
	if ex := exchange.From(r.Context()); ex != nil {
		// The request ID and what auth verified reach every call, as
		// they reach a route's upstream; set after the spoofable headers
		// are dropped, so the gateway's own values always arrive.
		ex.ApplyUpstreamHeaders(h)
	}
	h.Set("X-Forwarded-For", xff)
	h.Set("X-Forwarded-Host", host)
	h.Set("X-Forwarded-Proto", proto)
	return h
}

// do makes one call and classifies the outcome. A successful body stays
// reserved in hold; any other is given back at once.
//
// body, when not nil, is sent as the request body (the client's). A
// cached answer, when the call has one fresh, is returned without a call.
func (c *Call) do(ctx context.Context, target string, header http.Header, body []byte, limit int64, hold *share) callResult {
	if c.Config.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Config.Timeout)
		defer cancel()
	}
	u, err := url.Parse(target)
	if err != nil {
		return failure(KindSystem, http.StatusBadGateway, "invalid call target")
	}
	u.Scheme = "http"
	req := (&http.Request{Method: c.method, URL: u, Header: header.Clone(),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}).WithContext(ctx)
	if body != nil {
		withBody(req, body)
	}
	key, cached := c.cached(target, req.Header)
	if cached != nil {
		return callResult{body: cached}
	}
	resp, done, err := c.roundTrip(req)
	defer done()
	if err != nil {
		return transportFailure(ctx, err)
	}
	defer resp.Body.Close()
	body, held, err := readBody(resp.Body, resp.ContentLength, limit, hold)
	switch {
	case errors.Is(err, errMemory), errors.Is(err, errResponseTooLarge):
		return bodyFailure(err, limit)
	case err != nil:
		return transportFailure(ctx, err)
	}
	kept := false
	defer func() {
		if !kept {
			hold.give(held)
		}
	}()
	switch s := resp.StatusCode; {
	case s == http.StatusNoContent, s >= 200 && s < 300 && len(body) == 0 && c.method != http.MethodGet:
		// A write may answer 201 or 200 without a body.
		return callResult{body: []byte("null")}
	case s >= 200 && s < 300:
		// JSON must be UTF-8 (RFC 8259); json.Valid does not check it, and
		// one bad byte would make the whole merged body unreadable.
		if !json.Valid(body) || !utf8.Valid(body) {
			return failure(KindSystem, http.StatusBadGateway, "upstream answered invalid JSON")
		}
		kept = true
		// Encoders end bodies with a newline; inside the merged object it
		// would only be noise.
		body = bytes.TrimSpace(body)
		if key != "" {
			c.cache.put(key, req, resp, body)
		}
		return callResult{body: body}
	case s >= 400 && s < 500:
		return failure(KindBusiness, s, "upstream answered "+resp.Status)
	default:
		return failure(KindSystem, s, "upstream answered "+resp.Status)
	}
}

// transportFailure classifies an error from sending or reading: the
// deadline is a timeout, anything else a system failure.
func transportFailure(ctx context.Context, err error) callResult {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return failure(KindTimeout, http.StatusGatewayTimeout, exchange.MsgUpstreamTimeout)
	case errors.Is(ctx.Err(), context.Canceled):
		return failure(KindSystem, http.StatusBadGateway, "cancelled")
	case errors.Is(err, upstream.ErrNoInstance):
		return failure(KindSystem, http.StatusServiceUnavailable, exchange.MsgNoInstance)
	}
	return failure(KindSystem, http.StatusBadGateway, exchange.MsgUpstreamDown)
}

func failure(kind string, status int, msg string) callResult {
	return callResult{err: CallError{Kind: kind, Status: status, Message: msg}}
}
