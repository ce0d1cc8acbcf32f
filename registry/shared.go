package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/time/rate"
)

// Shared health watches. One blocking query per watched service holds one
// connection per service, and Consul refuses a client address more than
// http_max_conns_per_client (200 by default) of them. Above Health's
// threshold the local datacenter's keys are therefore kept by:
//
//   - one blocking watch on /v1/health/state/any filtered to the checks
//     that are not passing, each with its ModifyIndex: a service whose
//     non-passing checks changed since the previous answer (a flap either
//     way, maintenance on or off, a failing check added or removed), or
//     that has an instance on a node whose non-passing node checks
//     changed, is re-read. Passing checks are left out because a change
//     among them alone (new output, a passing check added or removed)
//     changes no routing decision, and leaving them out keeps the answer,
//     and its decoding, the size of what is failing instead of the size of
//     the catalog: a check going critical is seen at the cost of a short
//     list, not of all 3,000 checks of 1,000 services (1.3 MB);
//   - one blocking watch on /v1/catalog/services, whose index moves on any
//     change of a service registration, including those no check shows (a
//     new instance without checks, new weights, address or tags): any move
//     re-reads every watched service, since the catalog does not say which
//     one changed;
//   - at most sharedWorkers non-blocking /v1/health/service/<name> reads at
//     once, from a queue that holds each key once, so a burst of changes to
//     one service costs one read, and Consul load stays bounded by the pool
//     however fast things change.
//
// Each read publishes the same []Instance snapshot a per-service watch
// would, so nothing above Health can tell the two modes apart.
const (
	// sharedWorkers bounds the concurrent targeted reads. Their
	// connections are the short calls' (ShortCallSlots, client.go), which
	// bound them anyway; the watches have one each, so with the two
	// shared watches, the KV watch and the last-good state watch a
	// gateway holds at most eight connections to its agent.
	sharedWorkers = 4
	// sharedRate caps how often each shared watch calls Consul: under
	// churn one answer of every check every 100 ms, coalescing all the
	// flaps in between. The burst of the watch options still lets the
	// first changes after a quiet spell through at once.
	sharedRate = rate.Limit(10)
	// decodePace spaces the starts of successive check-list calls by
	// this many times the last answer took to decode, so decoding (the
	// cost that grows with the catalog) takes at most about a third of a
	// core however often Consul answers, and less of a busy core. A call
	// after a quiet spell, whose predecessor waited longer than that,
	// starts at once, so the first change after it is not delayed.
	decodePace = 3
	// maxDecodePause bounds that wait.
	maxDecodePause = 2 * time.Second
	// stateMargin is added to the check-list call's deadline margin for
	// moving its answer.
	stateMargin = 10 * time.Second
	// sharedReadTimeout bounds one targeted (non-blocking) read.
	sharedReadTimeout = 10 * time.Second
)

// sharedHealth keeps the keys of a Health in shared mode. Safe for
// concurrent use.
type sharedHealth struct {
	h    *Health
	opts Options // the Health's, with sharedRate as the rate limit
	log  hclog.Logger

	mu      sync.Mutex
	wakeup  *sync.Cond // signalled when the queue grows or on stop
	started bool
	stopped bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup // watches, workers and retry timers
	state   *watch[uint64] // checks; nil until started
	catalog *watch[uint64] // catalog index; nil until started

	entries map[ServiceKey]*sharedEntry
	queue   []ServiceKey // keys to read, each at most once (queued)
	queued  map[ServiceKey]bool

	// readsStarted is set once a targeted read was queued: a shared watch
	// whose first answer comes after that cannot serve as the baseline of
	// those reads, so it re-reads every key.
	readsStarted bool
	checksSeen   bool
	serviceFP    map[string]uint64 // service name -> fingerprint of its checks
	nodeFP       map[string]uint64 // node -> fingerprint of its node checks
	lastDecode   time.Duration     // decoding the last answer took, for decodePace
	lastCall     time.Time         // when the last check-list call started
	catalogSeen  bool
	catalogIndex uint64
}

// sharedEntry is one key's snapshot.
type sharedEntry struct {
	id        uint64 // the key under which its reads report to Status
	insts     []Instance
	ok        bool
	nodes     map[string]bool // nodes of insts, to follow node checks
	failures  int
	ready     chan struct{} // closed after the first read answered or failed
	readyOnce sync.Once
}

func (e *sharedEntry) markReady() { e.readyOnce.Do(func() { close(e.ready) }) }

// checkLite is what the shared watch decodes of each check: the fields
// that tell a change, and none of the definition or output text.
type checkLite struct {
	Node        string
	CheckID     string
	Status      string
	ServiceID   string
	ServiceName string
	ModifyIndex uint64
}

func newSharedHealth(h *Health) *sharedHealth {
	opts := h.opts
	if opts.RateLimit > sharedRate {
		opts.RateLimit = sharedRate
	}
	s := &sharedHealth{h: h, opts: opts, log: h.opts.Logger.Named("health").Named("shared"),
		entries: map[ServiceKey]*sharedEntry{}, queued: map[ServiceKey]bool{}}
	s.wakeup = sync.NewCond(&s.mu)
	return s
}

// start launches the two watches and the workers; the caller holds s.mu.
func (s *sharedHealth) start() {
	s.started = true
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	// The check list's call also holds the decode pause and moves an
	// answer of up to tens of megabytes: more margin, so a slow transfer
	// is not taken for a half-open connection.
	stateOpts := s.opts
	stateOpts.Margin += maxDecodePause + stateMargin
	s.state = newWatch(s.fetchChecks, func(a, b uint64) bool { return a == b }, nil, stateOpts, s.log.With("query", "health/state/any"))
	s.catalog = newWatch(s.fetchCatalog, func(a, b uint64) bool { return a == b }, nil, s.opts, s.log.With("query", "catalog/services"))
	s.wg.Go(func() { s.state.run(ctx) })
	s.wg.Go(func() { s.catalog.run(ctx) })
	for range sharedWorkers {
		s.wg.Go(func() { s.work(ctx) })
	}
}

// ensure makes the watched keys equal to keys (all shareable, without
// duplicates) and waits until every new one has answered or failed once,
// or ctx is done.
func (s *sharedHealth) ensure(ctx context.Context, keys []ServiceKey) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	if !s.started {
		s.start()
	}
	want := make(map[ServiceKey]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	for k, e := range s.entries {
		if !want[k] {
			delete(s.entries, k)
			s.opts.Status.forget(e.id)
			e.markReady()
		}
	}
	var added []*sharedEntry
	var addedKeys []ServiceKey
	for _, k := range keys {
		if s.entries[k] == nil {
			e := &sharedEntry{id: nextWatchID(), ready: make(chan struct{})}
			s.entries[k] = e
			added = append(added, e)
			addedKeys = append(addedKeys, k)
		}
	}
	state, catalog := s.state, s.catalog
	s.mu.Unlock()
	if len(added) == 0 {
		return
	}
	// Reads that start after both watches answered once are covered by
	// their next answers; reads before would need a full re-read.
	for _, w := range []*watch[uint64]{state, catalog} {
		select {
		case <-w.ready:
		case <-ctx.Done():
		}
	}
	s.mu.Lock()
	s.readsStarted = true
	for _, k := range addedKeys {
		if s.entries[k] != nil {
			s.enqueue(k)
		}
	}
	s.mu.Unlock()
	for _, e := range added {
		select {
		case <-e.ready:
		case <-ctx.Done():
			return
		}
	}
}

// snapshot is k's latest instances; ok is false before its first answer
// and for keys not watched.
func (s *sharedHealth) snapshot(k ServiceKey) ([]Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[k]
	if e == nil || !e.ok {
		return nil, false
	}
	return e.insts, true
}

// stop ends every goroutine and waits for them. It is final.
func (s *sharedHealth) stop() {
	s.mu.Lock()
	s.stopped = true
	cancel := s.cancel
	for k, e := range s.entries {
		s.opts.Status.forget(e.id)
		e.markReady()
		delete(s.entries, k)
	}
	s.wakeup.Broadcast()
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
}

// enqueue queues k for a read unless it is queued already; the caller
// holds s.mu.
func (s *sharedHealth) enqueue(k ServiceKey) {
	if s.queued[k] {
		return
	}
	s.queued[k] = true
	s.queue = append(s.queue, k)
	s.wakeup.Signal()
}

// enqueueAll queues every watched key; the caller holds s.mu.
func (s *sharedHealth) enqueueAll() {
	for k := range s.entries {
		s.enqueue(k)
	}
}

// fetchChecks is the state watch's call: it reads every check and queues
// the keys whose checks changed since the previous answer.
func (s *sharedHealth) fetchChecks(q *api.QueryOptions) (uint64, *api.QueryMeta, error) {
	if q.WaitIndex > 0 {
		s.mu.Lock()
		pause := min(decodePace*s.lastDecode, maxDecodePause) - s.opts.Now().Sub(s.lastCall)
		s.mu.Unlock()
		if err := s.opts.Sleep(q.Context(), pause); err != nil {
			return 0, nil, err
		}
	}
	s.mu.Lock()
	s.lastCall = s.opts.Now()
	s.mu.Unlock()
	// Any server may answer: a targeted read goes to the leader, which
	// is never behind the server that told of the change.
	q.AllowStale = !q.RequireConsistent
	q.Filter = `Status != "passing"` // see the package comment above
	var raw json.RawMessage
	meta, err := s.h.client.Raw().Query("/v1/health/state/any", &raw, q)
	if err != nil {
		return 0, nil, err
	}
	began := time.Now()
	var checks []checkLite
	if err := json.Unmarshal(raw, &checks); err != nil {
		return 0, nil, fmt.Errorf("health/state/any: %w", err)
	}
	raw = nil
	s.onChecks(checks)
	s.mu.Lock()
	s.lastDecode = time.Since(began)
	s.mu.Unlock()
	return meta.LastIndex, meta, nil
}

func (s *sharedHealth) onChecks(checks []checkLite) {
	services := make(map[string]uint64)
	nodes := make(map[string]uint64)
	for _, c := range checks {
		// A sum, so the order Consul lists checks in does not matter.
		if c.ServiceName == "" {
			nodes[c.Node] += checkHash(c)
		} else {
			services[c.ServiceName] += checkHash(c)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prevServices, prevNodes, first := s.serviceFP, s.nodeFP, !s.checksSeen
	s.serviceFP, s.nodeFP, s.checksSeen = services, nodes, true
	if first {
		if s.readsStarted {
			s.enqueueAll()
		}
		return
	}
	changedServices, changedNodes := changed(prevServices, services), changed(prevNodes, nodes)
	if len(changedServices) == 0 && len(changedNodes) == 0 {
		return
	}
	for k, e := range s.entries {
		if changedServices[k.Name] {
			s.enqueue(k)
			continue
		}
		for n := range changedNodes {
			if e.nodes[n] {
				s.enqueue(k)
				break
			}
		}
	}
}

// fetchCatalog is the catalog watch's call: only its index matters, so a
// filter no service matches keeps the answer empty ({}) whatever the
// catalog's size; Consul computes the index before filtering.
func (s *sharedHealth) fetchCatalog(q *api.QueryOptions) (uint64, *api.QueryMeta, error) {
	q.AllowStale = !q.RequireConsistent
	q.Filter = `ServiceName == ""`
	_, meta, err := s.h.client.Catalog().Services(q)
	if err != nil {
		return 0, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.catalogSeen:
		s.catalogSeen = true
		if s.readsStarted {
			s.enqueueAll()
		}
	case meta.LastIndex != s.catalogIndex:
		s.enqueueAll()
	}
	s.catalogIndex = meta.LastIndex
	return meta.LastIndex, meta, nil
}

// work reads queued keys until stop.
func (s *sharedHealth) work(ctx context.Context) {
	for {
		k, ok := s.next()
		if !ok {
			return
		}
		s.readOne(ctx, k)
	}
}

func (s *sharedHealth) next() (ServiceKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) == 0 && !s.stopped {
		s.wakeup.Wait()
	}
	if s.stopped {
		return ServiceKey{}, false
	}
	k := s.queue[0]
	s.queue[0] = ServiceKey{}
	s.queue = s.queue[1:]
	delete(s.queued, k)
	return k, true
}

// readOne reads k once and publishes the answer if it changed; a failure
// keeps the last snapshot and queues k again after the watch backoff.
func (s *sharedHealth) readOne(ctx context.Context, k ServiceKey) {
	s.mu.Lock()
	e := s.entries[k]
	s.mu.Unlock()
	if e == nil {
		return
	}
	callCtx, cancel := context.WithTimeout(ctx, sharedReadTimeout)
	insts, _, err := s.h.read(k, (&api.QueryOptions{}).WithContext(callCtx))
	cancel()
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	if s.entries[k] != e {
		s.mu.Unlock() // no longer watched
		return
	}
	if err != nil {
		e.failures++
		delay := s.opts.backoff(e.failures)
		s.mu.Unlock()
		s.opts.Status.report(e.id, s.opts.Now(), err)
		if s.opts.OnError != nil {
			s.opts.OnError()
		}
		s.log.Warn("consul health read failed, keeping last snapshot", "service", k.String(), "error", err, "retry_in", delay)
		e.markReady()
		s.wg.Go(func() {
			if s.opts.Sleep(ctx, delay) != nil {
				return
			}
			s.mu.Lock()
			if s.entries[k] == e {
				s.enqueue(k)
			}
			s.mu.Unlock()
		})
		return
	}
	e.failures = 0
	changed := !e.ok || !equalInstances(e.insts, insts)
	if changed {
		e.insts, e.ok, e.nodes = insts, true, nodesOf(insts)
	}
	s.mu.Unlock()
	s.opts.Status.report(e.id, s.opts.Now(), nil)
	e.markReady()
	if changed && s.h.notify != nil {
		s.h.notify()
	}
}

func nodesOf(insts []Instance) map[string]bool {
	m := make(map[string]bool, 1)
	for _, i := range insts {
		m[i.Node] = true
	}
	return m
}

// changed returns the keys whose values differ between a and b, counting
// a key present in only one of them.
func changed(a, b map[string]uint64) map[string]bool {
	out := map[string]bool{}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out[k] = true
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out[k] = true
		}
	}
	return out
}

// checkHash is FNV-1a over the fields of c that change when the check
// does (Consul bumps ModifyIndex on every status or output change).
func checkHash(c checkLite) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for _, s := range [...]string{c.Node, c.CheckID, c.ServiceID, c.Status} {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * prime
		}
		h = (h ^ 0xff) * prime // a separator (0xff never occurs in UTF-8), so ("ab","c") differs from ("a","bc")
	}
	var buf [20]byte
	for _, b := range strconv.AppendUint(buf[:0], c.ModifyIndex, 10) {
		h = (h ^ uint64(b)) * prime
	}
	return h
}
