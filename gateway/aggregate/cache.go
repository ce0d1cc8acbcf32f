package aggregate

import (
	"bytes"
	"container/list"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/policy"
)

// Defaults of a Cache: 10000 answers and 64 MiB at most (bodies, keys
// and Vary records), for every cached call of the gateway together; an
// answer larger than DefaultCacheMaxEntryBytes is not kept.
const (
	DefaultCacheEntries       = 10000
	DefaultCacheBytes         = 64 << 20
	DefaultCacheMaxEntryBytes = 1 << 20
)

// Cache keeps aggregate calls' answers (calls with cache = true) for as
// long as their Cache-Control lets a shared cache reuse them. It is one
// per gateway, so it outlives table swaps and one bound covers every
// aggregate; the least recently used answer goes first when either the
// entry or the byte bound would be crossed. It is safe for concurrent use.
type Cache struct {
	maxEntries int
	maxBytes   int64
	maxEntry   int
	now        func() time.Time

	mu      sync.Mutex
	bytes   int64
	entries map[string]*list.Element // of *cached, by variant key
	// varies holds, per cache key, the request headers its latest answer
	// varies on: a request's values of them pick its variant.
	varies map[string]*variants
	lru    list.List
}

// variants is what one cache key's answers vary on, and how many of them
// are stored (the record goes with the last).
type variants struct {
	names []string
	n     int
}

// variantKey is key refined by header's values of names.
func variantKey(key string, names []string, header http.Header) string {
	if len(names) == 0 {
		return key
	}
	var b strings.Builder
	b.WriteString(key)
	for _, name := range names {
		b.WriteString("\x00")
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(strings.Join(header.Values(name), ", "))
	}
	return b.String()
}

// cached is one answer; never mutated once stored, so its body can be
// merged into answers after the lock is released.
type cached struct {
	key     string // the cache key; variant is its variant's
	variant string
	body    []byte
	vary    map[string]string // what the storing request sent in the Vary headers
	expires time.Time
}

// size is what e holds: its body, its keys (which carry the request's
// query and the values of the headers it varies on, each as long as a
// request may make them) and its Vary record.
func (e *cached) size() int64 {
	n := len(e.body) + len(e.key) + len(e.variant)
	for k, v := range e.vary {
		n += len(k) + len(v)
	}
	return int64(n)
}

// NewCache returns a cache bounded by maxEntries answers and maxBytes of
// bodies, keys and Vary records; zeros mean the defaults. now nil means time.Now.
func NewCache(maxEntries int, maxBytes int64, now func() time.Time) *Cache {
	if maxEntries <= 0 {
		maxEntries = DefaultCacheEntries
	}
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	if now == nil {
		now = time.Now
	}
	return &Cache{maxEntries: maxEntries, maxBytes: maxBytes, maxEntry: min(DefaultCacheMaxEntryBytes, int(maxBytes)),
		now: now, entries: map[string]*list.Element{}, varies: map[string]*variants{}}
}

// cacheKey names a call's answer: method, service and request target, so
// two aggregates calling the same URL of the same service share it.
func cacheKey(method string, c *Call, target string) string {
	return method + " " + c.Service.String() + " " + target
}

// get returns the fresh body under key for a request sending header, or
// nil. An expired entry is dropped.
func (c *Cache) get(key string, header http.Header) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.varies[key]
	if !ok {
		return nil
	}
	el, ok := c.entries[variantKey(key, v.names, header)]
	if !ok {
		return nil
	}
	e := el.Value.(*cached)
	if !c.now().Before(e.expires) {
		c.remove(el)
		return nil
	}
	if !policy.VaryMatches(e.vary, header) {
		return nil
	}
	c.lru.MoveToFront(el)
	return e.body
}

// put stores body, req's answer resp, under key when the shared-cache
// rules allow it, for as long as they allow.
func (c *Cache) put(key string, req *http.Request, resp *http.Response, body []byte) {
	if len(body)+len(key) > c.maxEntry || !policy.Shareable(req, resp) {
		return
	}
	fresh, ok := policy.FreshFor(resp)
	if !ok {
		return
	}
	// A clone is exactly as large as the bytes counted; the read buffer
	// may have twice the capacity.
	vary := policy.VaryOn(req, resp)
	names := slices.Sorted(maps.Keys(vary))
	e := &cached{key: key, variant: variantKey(key, names, req.Header), body: bytes.Clone(body), vary: vary, expires: c.now().Add(fresh)}
	size := e.size()
	if size > int64(c.maxEntry) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[e.variant]; ok {
		c.remove(old)
	}
	for c.lru.Len() > 0 && (c.lru.Len() >= c.maxEntries || c.bytes+size > c.maxBytes) {
		c.remove(c.lru.Back())
	}
	v := c.varies[key]
	if v == nil {
		v = &variants{}
		c.varies[key] = v
	}
	// The latest answer says what the resource varies on now; variants
	// stored under other names are no longer found and age out.
	v.names = names
	v.n++
	c.entries[e.variant] = c.lru.PushFront(e)
	c.bytes += size
}

// remove drops el; c.mu is held.
func (c *Cache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cached)
	delete(c.entries, e.variant)
	c.bytes -= e.size()
	if v := c.varies[e.key]; v != nil {
		if v.n--; v.n <= 0 {
			delete(c.varies, e.key)
		}
	}
}

// Len is the number of answers cached and bytes what they hold (bodies,
// keys and Vary records).
func (c *Cache) Len() (n int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.bytes
}

// cached returns the cache key of the call to target with header and,
// when a fresh answer is cached, its body; key is empty when the call is
// not cached at all. A call carrying credentials bypasses the cache: no
// shared cache may store its answer, nor give it one stored for others.
func (c *Call) cached(target string, h http.Header) (key string, body []byte) {
	if c.cache == nil {
		return "", nil
	}
	if h.Get("Authorization") != "" || h.Get("Cookie") != "" {
		metrics.Inc(c.counters.CacheBypass)
		return "", nil
	}
	key = cacheKey(c.method, c, target)
	if body = c.cache.get(key, h); body != nil {
		metrics.Inc(c.counters.CacheHit)
		return key, body
	}
	metrics.Inc(c.counters.CacheMiss)
	return key, nil
}
