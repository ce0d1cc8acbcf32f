package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/time/rate"
)

// MaxStateValueBytes bounds one stored last-good entry as it sits in KV
// (JSON with the document base64-encoded). A larger entry is ignored when
// read and refused when written: the state prefix is as untrusted as the
// routes prefix, and the document inside is parsed again with the same
// limits as any route document.
const MaxStateValueBytes = 2 << 20

// maxCASAttempts bounds the read-compare-write rounds of one state write.
// A failed check-and-set means another replica wrote in between; its entry
// is usually as new as ours, which the re-read shows, so more rounds rarely
// help and must never spin.
const maxCASAttempts = 3

// maxWriteFailures is how many times the writer tries one change that
// fails on Consul errors before dropping it. Nothing is lost: the
// controller asks again on its next rebuild while the stored state lags.
const maxWriteFailures = 3

// stateCallTimeout bounds each read or write the state writer makes.
const stateCallTimeout = 10 * time.Second

// ErrStateContention is returned when a state entry changed under every
// check-and-set attempt.
var ErrStateContention = errors.New("registry: last-good entry kept changing under check-and-set")

// ErrStateEntry marks a stored last-good entry that cannot be used (not
// JSON, too large, no source index) or cannot be written.
var ErrStateEntry = errors.New("registry: unusable last-good entry")

// ErrStatePrefix is returned by StatePrefix for a state prefix that
// overlaps the routes prefix: either watch would see the other's keys.
var ErrStatePrefix = errors.New("state prefix overlaps the routes prefix")

// StoredVersion is the last good version of one route document as kept
// under the state prefix, so that every replica, including one started
// after a bad write, falls back to the same version.
type StoredVersion struct {
	// Key is the routes key the version belongs to (not the state key).
	Key string
	// Source is the document's bytes as they were accepted.
	Source []byte
	// SourceIndex is the routes key's ModifyIndex of that version; it
	// orders versions, so the stored entry only ever moves forward.
	SourceIndex uint64
	// AcceptedAt is when a gateway first accepted the version.
	AcceptedAt time.Time
	// StateIndex is the state entry's own ModifyIndex (zero when writing).
	StateIndex uint64
	// Err says why a read entry is unusable (wrapping ErrStateEntry); only
	// Key and StateIndex are then set.
	Err error
}

// storedJSON is the value of a state entry. Source is []byte, so JSON
// carries it base64-encoded and byte-exact.
type storedJSON struct {
	SourceIndex uint64    `json:"source_index"`
	AcceptedAt  time.Time `json:"accepted_at"`
	Source      []byte    `json:"source"`
}

// StatePrefix returns the state prefix to use with routesPrefix: flag when
// set (with a trailing "/" added), else the default, "state/lastgood/"
// beside the routes folder ("gateway/routes/" gives
// "gateway/state/lastgood/"). It fails when the two overlap as Consul
// prefixes, since each watch would then list the other's keys.
func StatePrefix(routesPrefix, flag string) (string, error) {
	prefix := flag
	if prefix == "" {
		parent := strings.TrimSuffix(routesPrefix, "/")
		parent = parent[:strings.LastIndex(parent, "/")+1]
		prefix = parent + "state/lastgood/"
	} else if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if strings.HasPrefix(prefix, routesPrefix) || strings.HasPrefix(routesPrefix, prefix) {
		return "", fmt.Errorf("%w: state %q, routes %q (set -state-prefix)", ErrStatePrefix, prefix, routesPrefix)
	}
	return prefix, nil
}

// State keeps the last good version of each route document in Consul KV,
// one entry per routes key at statePrefix + the key relative to the routes
// prefix. It watches the entries with the package's blocking-query loop and
// writes them from a goroutine of its own, so callers never wait on Consul.
//
// Writes are check-and-set on the entry's ModifyIndex, and an entry is only
// replaced by a version with a higher SourceIndex, so concurrent replicas
// converge on the newest accepted version and the entry never goes back.
type State struct {
	w      *watch[map[string]StoredVersion]
	kv     *api.KV
	routes string // routes prefix
	prefix string // state prefix
	opts   Options
	log    hclog.Logger
	notify func()

	mu      sync.Mutex
	pending map[string]stateOp // by routes key: the latest wish wins
	wake    chan struct{}
	// refused remembers, by routes key, the change Consul refused for good
	// (a 4xx such as 403 or 413, or an entry over MaxStateValueBytes): its
	// SourceIndex for a record, 0 for a forget. The controller asks again
	// on every rebuild while the stored state lags; asking Consul again
	// would only log the same refusal each time.
	refused map[string]uint64
	// writerID is the key under which the writer reports a write the
	// token may not make to opts.Status, so /health names it; the next
	// successful write clears it.
	writerID uint64

	// beforeCAS, when set by tests, runs between each read and its
	// check-and-set, to interleave a competing writer.
	beforeCAS func()
}

// stateOp is one pending change of a state entry.
type stateOp struct {
	record   *StoredVersion // nil: forget the entry
	failures int
}

// NewState returns the last-good store for the documents under
// routesPrefix, kept under statePrefix (see StatePrefix, which must have
// accepted the pair). notify is called like NewKV's: after every change of
// the snapshot, and once when the first read answered or failed. Nothing
// runs until Run.
func NewState(client *api.Client, routesPrefix, statePrefix string, opts Options, notify func()) *State {
	opts = opts.withDefaults()
	if notify == nil {
		notify = func() {}
	}
	s := &State{
		kv: client.KV(), routes: routesPrefix, prefix: statePrefix, opts: opts, notify: notify, writerID: nextWatchID(),
		log:     opts.Logger.Named("state").With("prefix", statePrefix),
		pending: map[string]stateOp{},
		refused: map[string]uint64{},
		wake:    make(chan struct{}, 1),
	}
	fetch := func(q *api.QueryOptions) (map[string]StoredVersion, *api.QueryMeta, error) {
		pairs, meta, err := s.kv.List(statePrefix, q)
		if err := aclChecked(fmt.Sprintf("KV prefix %q", statePrefix), "key_prefix read", meta, err); err != nil {
			return nil, nil, err
		}
		out := make(map[string]StoredVersion, len(pairs))
		for _, p := range pairs {
			if p == nil || strings.HasSuffix(p.Key, "/") {
				continue
			}
			key := routesPrefix + strings.TrimPrefix(p.Key, statePrefix)
			out[key] = decodeStored(key, p)
		}
		return out, meta, nil
	}
	s.w = newWatch(fetch, equalStored, notify, opts, s.log)
	return s
}

// Run watches and writes until ctx is done, and returns only once nothing
// of either is left running. Changes still pending then are dropped; the
// next gateway to accept a version writes it.
func (s *State) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.w.run(ctx) })
	wg.Go(func() { s.write(ctx) })
	// The controller waits for the first read before its first build, so
	// that a new replica starts with the stored versions; a failed read
	// must release it too, or an unreadable prefix would stop all routing.
	wg.Go(func() {
		select {
		case <-s.w.ready:
			s.notify()
		case <-ctx.Done():
		}
	})
	wg.Wait()
}

// Loaded reports whether the first read has answered or failed.
func (s *State) Loaded() bool {
	select {
	case <-s.w.ready:
		return true
	default:
		return false
	}
}

// Stored returns the stored versions by routes key; ok is false until the
// first successful read. The map is shared: callers must not modify it.
func (s *State) Stored() (map[string]StoredVersion, bool) { return s.w.snapshot() }

// Record asks for v to become the stored version of v.Key, unless the
// stored one is as new or newer. It never blocks.
func (s *State) Record(v StoredVersion) { s.enqueue(v.Key, stateOp{record: &v}) }

// Forget asks for the stored version of key to be deleted, which happens
// only if the routes key is gone, or was re-created after that version,
// when the writer looks. It never blocks.
func (s *State) Forget(key string) { s.enqueue(key, stateOp{}) }

func (s *State) enqueue(key string, op stateOp) {
	s.mu.Lock()
	if index, ok := s.refused[key]; ok {
		if index == op.index() {
			s.mu.Unlock()
			return
		}
		delete(s.refused, key)
	}
	s.pending[key] = op
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// index identifies the change for refused.
func (op stateOp) index() uint64 {
	if op.record == nil {
		return 0
	}
	return op.record.SourceIndex
}

// refuse remembers a change Consul will not take.
func (s *State) refuse(key string, op stateOp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused[key] = op.index()
}

// permanent reports whether err means Consul will refuse the same write
// again (a client error: no permission, value too large, ...).
func permanent(err error) bool {
	var status api.StatusError
	if errors.As(err, &status) {
		return status.Code >= 400 && status.Code < 500 && status.Code != 429
	}
	return errors.Is(err, ErrStateEntry)
}

// take removes and returns one pending change.
func (s *State) take() (string, stateOp, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, op := range s.pending {
		delete(s.pending, k)
		return k, op, true
	}
	return "", stateOp{}, false
}

// retry puts a failed change back, unless a newer wish replaced it.
func (s *State) retry(key string, op stateOp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, newer := s.pending[key]; !newer {
		s.pending[key] = op
	}
}

// write applies pending changes one at a time, at most RateLimit per
// second, retrying a failing one with the watches' backoff a bounded
// number of times.
func (s *State) write(ctx context.Context) {
	defer s.opts.Status.forget(s.writerID)
	limiter := rate.NewLimiter(s.opts.RateLimit, s.opts.Burst)
	for {
		key, op, ok := s.take()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
			continue
		}
		if s.opts.pace(ctx, limiter) != nil {
			return
		}
		var err error
		if op.record != nil {
			_, err = s.record(ctx, *op.record)
		} else {
			_, err = s.forget(ctx, key)
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			s.opts.Status.report(s.writerID, s.opts.Now(), nil)
			continue
		}
		if IsPermissionDenied(err) {
			// Not only logged: every replica would keep its own last good
			// versions, silently, until someone read the log.
			err = fmt.Errorf("%w: writing the last good version of %s (needs key_prefix %q write): %w", ErrPermissionDenied, key, s.prefix, err)
			s.opts.Status.report(s.writerID, s.opts.Now(), err)
		}
		if permanent(err) {
			s.refuse(key, op)
			s.log.Error("consul refused the last good version entry; not retried for this version", "key", key, "forget", op.record == nil, "error", err)
			continue
		}
		op.failures++
		if op.failures >= maxWriteFailures {
			s.log.Error("last good version entry not written; asked again on the next change", "key", key, "forget", op.record == nil, "error", err)
			continue
		}
		delay := s.opts.backoff(op.failures)
		s.log.Warn("storing last good version failed", "key", key, "error", err, "retry_in", delay)
		s.retry(key, op)
		if s.opts.Sleep(ctx, delay) != nil {
			return
		}
	}
}

// record makes v the stored version of v.Key unless the stored one is as
// new or newer, and reports whether it wrote. On a failed check-and-set it
// re-reads, at most maxCASAttempts times.
func (s *State) record(ctx context.Context, v StoredVersion) (bool, error) {
	stateKey, err := s.stateKey(v.Key)
	if err != nil {
		return false, err
	}
	value, err := json.Marshal(storedJSON{SourceIndex: v.SourceIndex, AcceptedAt: v.AcceptedAt.UTC(), Source: v.Source})
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrStateEntry, err)
	}
	if len(value) > MaxStateValueBytes {
		return false, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrStateEntry, len(value), MaxStateValueBytes)
	}
	for range maxCASAttempts {
		pair, err := s.get(ctx, stateKey)
		if err != nil {
			return false, err
		}
		var index uint64 // 0: create only if still absent
		if pair != nil {
			if cur := decodeStored(v.Key, pair); cur.Err == nil && cur.SourceIndex >= v.SourceIndex {
				return false, nil
			}
			index = pair.ModifyIndex
		}
		if s.beforeCAS != nil {
			s.beforeCAS()
		}
		ok, err := s.call(ctx, func(w *api.WriteOptions) (bool, *api.WriteMeta, error) {
			return s.kv.CAS(&api.KVPair{Key: stateKey, Value: value, ModifyIndex: index}, w)
		})
		if err != nil {
			return false, err
		}
		if ok {
			s.log.Debug("stored last good version", "key", v.Key, "source_index", v.SourceIndex)
			return true, nil
		}
	}
	return false, fmt.Errorf("%w: %s after %d attempts", ErrStateContention, stateKey, maxCASAttempts)
}

// forget deletes the stored version of key if it no longer belongs to a
// live version of the routes key, and reports whether it deleted. The
// state entry is read before the routes key, and deleted with
// check-and-set on what was read: a replica recording a re-created key's
// version either wrote before that read (and the routes key is seen) or
// after it (and the delete fails), so a live entry is never removed.
func (s *State) forget(ctx context.Context, key string) (bool, error) {
	stateKey, err := s.stateKey(key)
	if err != nil {
		return false, err
	}
	for range maxCASAttempts {
		pair, err := s.get(ctx, stateKey)
		if err != nil || pair == nil {
			return false, err
		}
		src, err := s.get(ctx, key)
		if err != nil {
			return false, err
		}
		if src != nil {
			cur := decodeStored(key, pair)
			if cur.Err != nil || cur.SourceIndex >= src.CreateIndex {
				// The key's current incarnation: keep it (an unusable entry
				// is replaced by the next record).
				return false, nil
			}
		}
		if s.beforeCAS != nil {
			s.beforeCAS()
		}
		ok, err := s.call(ctx, func(w *api.WriteOptions) (bool, *api.WriteMeta, error) {
			return s.kv.DeleteCAS(&api.KVPair{Key: stateKey, ModifyIndex: pair.ModifyIndex}, w)
		})
		if err != nil {
			return false, err
		}
		if ok {
			s.log.Debug("forgot last good version of a removed key", "key", key)
			return true, nil
		}
	}
	return false, fmt.Errorf("%w: %s after %d attempts", ErrStateContention, stateKey, maxCASAttempts)
}

// stateKey maps a routes key to its state entry.
func (s *State) stateKey(key string) (string, error) {
	rel, ok := strings.CutPrefix(key, s.routes)
	if !ok || rel == "" {
		return "", fmt.Errorf("%w: key %q is not under the routes prefix %q", ErrStateEntry, key, s.routes)
	}
	return s.prefix + rel, nil
}

// get is one consistent read, so that a check-and-set decision is never
// made on a lagging server's answer.
func (s *State) get(ctx context.Context, key string) (*api.KVPair, error) {
	ctx, cancel := context.WithTimeout(ctx, stateCallTimeout)
	defer cancel()
	pair, _, err := s.kv.Get(key, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	return pair, err
}

// call runs one write bounded by stateCallTimeout.
func (s *State) call(ctx context.Context, write func(*api.WriteOptions) (bool, *api.WriteMeta, error)) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, stateCallTimeout)
	defer cancel()
	ok, _, err := write((&api.WriteOptions{}).WithContext(ctx))
	return ok, err
}

// decodeStored reads one state entry; a problem is reported in Err rather
// than dropping the entry, so the gateway can say why it ignores it.
func decodeStored(key string, p *api.KVPair) StoredVersion {
	v := StoredVersion{Key: key, StateIndex: p.ModifyIndex}
	if len(p.Value) > MaxStateValueBytes {
		v.Err = fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrStateEntry, len(p.Value), MaxStateValueBytes)
		return v
	}
	var j storedJSON
	if err := json.Unmarshal(p.Value, &j); err != nil {
		v.Err = fmt.Errorf("%w: %w", ErrStateEntry, err)
		return v
	}
	if j.SourceIndex == 0 {
		v.Err = fmt.Errorf("%w: no source_index", ErrStateEntry)
		return v
	}
	v.Source, v.SourceIndex, v.AcceptedAt = j.Source, j.SourceIndex, j.AcceptedAt
	return v
}

// equalStored compares snapshots by each entry's ModifyIndex, which moves
// on every write of the entry.
func equalStored(a, b map[string]StoredVersion) bool {
	return maps.EqualFunc(a, b, func(x, y StoredVersion) bool { return x.StateIndex == y.StateIndex })
}
