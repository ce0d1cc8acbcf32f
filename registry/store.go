package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// Errors of a Store. ErrNotFound wraps os.ErrNotExist (fs.ErrNotExist), which
// is what callers such as certmagic test for.
var (
	ErrNotFound    = fmt.Errorf("registry: key not found: %w", os.ErrNotExist)
	ErrTooLarge    = errors.New("registry: value over the store's size bound")
	ErrTooMany     = errors.New("registry: listing over the store's key bound")
	ErrNotLocked   = errors.New("registry: lock not held by this store")
	ErrStoreClosed = errors.New("registry: store closed")
)

// Defaults of StoreOptions.
const (
	// DefaultMaxValueBytes is Consul's own default limit on a KV value
	// (kv_max_value_size); anything larger read back is refused.
	DefaultMaxValueBytes = 512 << 10
	// DefaultMaxListKeys bounds one List: a certificate takes three keys,
	// so this leaves room for thousands of hosts.
	DefaultMaxListKeys = 10_000
	// DefaultSessionTTL is how long a lock outlives a holder that stopped
	// renewing (Consul invalidates between TTL and twice TTL). Consul's
	// minimum is 10s unless the agent's session_ttl_min is lowered.
	DefaultSessionTTL = 15 * time.Second
	// DefaultLockDelay keeps a lock free for this long after its holder's
	// session was invalidated, so a holder that only lost contact has time
	// to notice before another one starts the same work.
	DefaultLockDelay = 5 * time.Second
	// DefaultCallTimeout bounds each Consul call of a Store.
	DefaultCallTimeout = 10 * time.Second
	// DefaultLockPoll is the longest a waiting Lock blocks on the lock key
	// before trying again.
	DefaultLockPoll = 5 * time.Second
)

// StoreOptions tune a Store; the zero value means every default.
type StoreOptions struct {
	// MaxValueBytes bounds a value stored or read back; zero means
	// DefaultMaxValueBytes.
	MaxValueBytes int
	// MaxListKeys bounds the keys one List or Delete of a folder reads;
	// zero means DefaultMaxListKeys.
	MaxListKeys int
	// SessionTTL and LockDelay configure each lock's Consul session; zero
	// means DefaultSessionTTL and DefaultLockDelay.
	SessionTTL time.Duration
	LockDelay  time.Duration
	// CallTimeout bounds each Consul call; zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// LockPoll bounds one blocking wait of Lock on a held lock; zero means
	// DefaultLockPoll.
	LockPoll time.Duration
	// Holder is written into lock keys to say who holds them (for
	// operators reading Consul); empty means the host name.
	Holder string
	// Logger receives lost-lock warnings; nil discards them.
	Logger hclog.Logger
	// Now stamps stored values (see Stat); nil means time.Now.
	Now func() time.Time
}

func (o StoreOptions) withDefaults() StoreOptions {
	if o.MaxValueBytes <= 0 {
		o.MaxValueBytes = DefaultMaxValueBytes
	}
	if o.MaxListKeys <= 0 {
		o.MaxListKeys = DefaultMaxListKeys
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.LockDelay <= 0 {
		o.LockDelay = DefaultLockDelay
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.LockPoll <= 0 {
		o.LockPoll = DefaultLockPoll
	}
	if o.Holder == "" {
		o.Holder, _ = os.Hostname()
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Store is a small key/value store over one Consul KV prefix, with named
// locks that exclude other Stores on the same prefix (other replicas)
// through Consul sessions. Values live under PREFIX + "data/", locks under
// PREFIX + "locks/". Keys are slash-separated paths; a key that is a prefix
// of others followed by "/" acts as a folder. Methods are safe for
// concurrent use.
type Store struct {
	kv       *api.KV
	sessions *api.Session
	data     string // prefix + "data/"
	locks    string // prefix + "locks/"
	opts     StoreOptions

	mu     sync.Mutex
	held   map[string]*heldLock
	closed bool
}

// heldLock is one lock this Store holds: its session and the goroutine
// renewing it.
type heldLock struct {
	key     string
	session string
	stop    context.CancelFunc
	done    chan struct{}
}

// NewStore returns a Store on prefix, which should end in "/".
func NewStore(client *api.Client, prefix string, opts StoreOptions) *Store {
	return &Store{
		kv:       client.KV(),
		sessions: client.Session(),
		data:     prefix + "data/",
		locks:    prefix + "locks/",
		opts:     opts.withDefaults(),
		held:     map[string]*heldLock{},
	}
}

// clean turns a caller's key into a relative path without leading or
// trailing slashes.
func clean(key string) string { return strings.Trim(key, "/") }

func (s *Store) query(ctx context.Context) (*api.QueryOptions, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	return (&api.QueryOptions{}).WithContext(ctx), cancel
}

func (s *Store) write(ctx context.Context) (*api.WriteOptions, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	return (&api.WriteOptions{}).WithContext(ctx), cancel
}

// Store writes value at key, stamping it with the current time (kept in the
// KV pair's flags, so Stat can report it).
func (s *Store) Store(ctx context.Context, key string, value []byte) error {
	if len(value) > s.opts.MaxValueBytes {
		return fmt.Errorf("%w: %d bytes at %q (bound %d)", ErrTooLarge, len(value), key, s.opts.MaxValueBytes)
	}
	w, cancel := s.write(ctx)
	defer cancel()
	_, err := s.kv.Put(&api.KVPair{Key: s.data + clean(key), Value: value, Flags: uint64(s.opts.Now().UnixNano())}, w)
	if err != nil {
		return fmt.Errorf("registry: store %q: %w", key, err)
	}
	return nil
}

// Load returns the value at key, ErrNotFound if there is none.
func (s *Store) Load(ctx context.Context, key string) ([]byte, error) {
	p, err := s.get(ctx, key)
	if err != nil {
		return nil, err
	}
	return p.Value, nil
}

func (s *Store) get(ctx context.Context, key string) (*api.KVPair, error) {
	q, cancel := s.query(ctx)
	defer cancel()
	p, _, err := s.kv.Get(s.data+clean(key), q)
	if err != nil {
		return nil, fmt.Errorf("registry: load %q: %w", key, err)
	}
	if p == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	if len(p.Value) > s.opts.MaxValueBytes {
		return nil, fmt.Errorf("%w: %d bytes at %q (bound %d)", ErrTooLarge, len(p.Value), key, s.opts.MaxValueBytes)
	}
	return p, nil
}

// Delete removes key and, if it is a folder, every key under it. A key
// that does not exist is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	k := s.data + clean(key)
	w, cancel := s.write(ctx)
	defer cancel()
	if _, err := s.kv.Delete(k, w); err != nil {
		return fmt.Errorf("registry: delete %q: %w", key, err)
	}
	// The folder as its own call: DeleteTree(k) would also take "k2".
	if _, err := s.kv.DeleteTree(k+"/", w); err != nil {
		return fmt.Errorf("registry: delete %q: %w", key, err)
	}
	return nil
}

// KeyInfo describes one key: Terminal is false for a folder (a prefix of
// other keys), whose Modified and Size are zero.
type KeyInfo struct {
	Key      string
	Modified time.Time
	Size     int64
	Terminal bool
}

// Stat describes key, or returns ErrNotFound when it is neither a value
// nor a folder.
func (s *Store) Stat(ctx context.Context, key string) (KeyInfo, error) {
	p, err := s.get(ctx, key)
	switch {
	case err == nil:
		info := KeyInfo{Key: clean(key), Size: int64(len(p.Value)), Terminal: true}
		if p.Flags != 0 {
			info.Modified = time.Unix(0, int64(p.Flags))
		}
		return info, nil
	case !errors.Is(err, ErrNotFound):
		return KeyInfo{}, err
	}
	keys, err := s.keys(ctx, clean(key)+"/", "/")
	if err != nil {
		return KeyInfo{}, err
	}
	if len(keys) == 0 {
		return KeyInfo{}, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	return KeyInfo{Key: clean(key)}, nil
}

// List returns the keys under the folder path (relative to the store, as
// passed to Store). Not recursive, it returns the folder's direct children,
// sub-folders included without their trailing slash; recursive, every value
// below it. More than MaxListKeys keys is an error, not a truncated list.
func (s *Store) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	dir := clean(path)
	if dir != "" {
		dir += "/"
	}
	sep := "/"
	if recursive {
		sep = ""
	}
	keys, err := s.keys(ctx, dir, sep)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		k = strings.TrimSuffix(strings.TrimPrefix(k, s.data), "/")
		if k != "" && k != clean(path) {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, path)
	}
	return out, nil
}

func (s *Store) keys(ctx context.Context, dir, sep string) ([]string, error) {
	q, cancel := s.query(ctx)
	defer cancel()
	keys, _, err := s.kv.Keys(s.data+dir, sep, q)
	if err != nil {
		return nil, fmt.Errorf("registry: list %q: %w", dir, err)
	}
	if len(keys) > s.opts.MaxListKeys {
		return nil, fmt.Errorf("%w: %d keys under %q (bound %d)", ErrTooMany, len(keys), dir, s.opts.MaxListKeys)
	}
	return keys, nil
}

// Lock blocks until this Store holds the lock name, ctx is done, or the
// Store is closed. The lock is a Consul KV key acquired with a session of
// SessionTTL, renewed while held: if this process dies, the lock frees
// itself when the session expires, and stays unavailable for LockDelay
// after that. A name already held by this Store waits too, as another
// Store's would.
func (s *Store) Lock(ctx context.Context, name string) error {
	key := s.locks + clean(name)
	for {
		ok, err := s.tryLock(ctx, name, key)
		if err != nil || ok {
			return err
		}
		if err := s.waitFree(ctx, key); err != nil {
			return err
		}
	}
}

// tryLock makes one attempt at key with a new session.
func (s *Store) tryLock(ctx context.Context, name, key string) (bool, error) {
	s.mu.Lock()
	closed, mine := s.closed, s.held[name] != nil
	s.mu.Unlock()
	if closed {
		return false, ErrStoreClosed
	}
	if mine {
		return false, nil
	}
	w, cancel := s.write(ctx)
	defer cancel()
	id, _, err := s.sessions.CreateNoChecks(&api.SessionEntry{
		Name:      "gateway lock " + name,
		TTL:       s.opts.SessionTTL.String(),
		LockDelay: s.opts.LockDelay,
		Behavior:  api.SessionBehaviorDelete,
	}, w)
	if err != nil {
		return false, fmt.Errorf("registry: lock %q: session: %w", name, err)
	}
	ok, _, err := s.kv.Acquire(&api.KVPair{Key: key, Value: []byte(s.opts.Holder), Session: id}, w)
	if err != nil || !ok {
		// Not ours: the session has no purpose. Destroyed with a fresh
		// bound, since ctx may be what failed.
		dctx, dcancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
		_, _ = s.sessions.Destroy(id, (&api.WriteOptions{}).WithContext(dctx))
		dcancel()
		if err != nil {
			return false, fmt.Errorf("registry: lock %q: %w", name, err)
		}
		return false, nil
	}
	rctx, stop := context.WithCancel(context.Background())
	h := &heldLock{key: key, session: id, stop: stop, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed || s.held[name] != nil {
		s.mu.Unlock()
		stop()
		s.release(h)
		if s.closed {
			return false, ErrStoreClosed
		}
		return false, nil
	}
	s.held[name] = h
	s.mu.Unlock()
	go s.renew(rctx, name, h)
	return true, nil
}

// waitFree blocks until the lock key changes (or LockPoll passes), so a
// waiting Lock tries again when the holder lets go rather than on a timer.
func (s *Store) waitFree(ctx context.Context, key string) error {
	q, cancel := s.query(ctx)
	defer cancel()
	p, meta, err := s.kv.Get(key, q)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return s.pause(ctx, s.opts.LockPoll)
	}
	if p == nil || p.Session == "" {
		// Free but not acquirable: the lock delay of a dead holder's
		// session. A blocking query would wait for a change that is not
		// coming, so wait a slice of the delay instead.
		return s.pause(ctx, min(s.opts.LockDelay, s.opts.LockPoll)/4+time.Millisecond)
	}
	bq := (&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: s.opts.LockPoll}).WithContext(ctx)
	_, _, err = s.kv.Get(key, bq)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return s.pause(ctx, s.opts.LockPoll)
	}
	return nil
}

func (s *Store) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// renew keeps h's session alive every third of its TTL until stopped. A
// session Consul no longer knows means the lock is lost (Consul was away
// longer than the TTL); that is logged, and the holder's work may overlap
// another's from then on, which is what the lock delay and certmagic's
// re-checks after locking make harmless.
func (s *Store) renew(ctx context.Context, name string, h *heldLock) {
	defer close(h.done)
	every := s.opts.SessionTTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wctx, cancel := context.WithTimeout(ctx, every)
		entry, _, err := s.sessions.Renew(h.session, (&api.WriteOptions{}).WithContext(wctx))
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.opts.Logger.Warn("renewing lock session failed", "lock", name, "error", err)
		case entry == nil:
			s.opts.Logger.Warn("lock lost: its session expired", "lock", name)
			return
		}
	}
}

// Unlock releases the lock name held by this Store.
func (s *Store) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("%w: %q", ErrNotLocked, name)
	}
	h.stop()
	<-h.done
	return s.release(h)
}

// release lets go of h's key without the lock delay a destroyed session
// imposes, removes the key if nobody took it meanwhile (compare-and-swap on
// its index), then destroys the session.
func (s *Store) release(h *heldLock) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
	defer cancel()
	w := (&api.WriteOptions{}).WithContext(ctx)
	_, _, err := s.kv.Release(&api.KVPair{Key: h.key, Session: h.session}, w)
	if err == nil {
		if p, _, gerr := s.kv.Get(h.key, (&api.QueryOptions{}).WithContext(ctx)); gerr == nil && p != nil && p.Session == "" {
			_, _, _ = s.kv.DeleteCAS(&api.KVPair{Key: h.key, ModifyIndex: p.ModifyIndex}, w)
		}
	}
	if _, derr := s.sessions.Destroy(h.session, w); err == nil && derr != nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("registry: unlock %q: %w", strings.TrimPrefix(h.key, s.locks), err)
	}
	return nil
}

// Close releases every lock still held and makes later Locks fail. It does
// not wait for Locks blocked meanwhile; their contexts end those.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	held := s.held
	s.held = map[string]*heldLock{}
	s.mu.Unlock()
	var errs []error
	for _, h := range held {
		h.stop()
		<-h.done
		errs = append(errs, s.release(h))
	}
	return errors.Join(errs...)
}
