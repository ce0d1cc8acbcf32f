package policy

import (
	"container/list"
	"net/http"
	"sync"
)

// StaleCache keeps the last successful response per URL so an open
// circuit breaker can answer GETs with it. It is bounded in entries and in
// the size of each body; larger responses are not cached.
type StaleCache struct {
	maxEntries int
	maxBody    int
	mu         sync.Mutex
	entries    map[string]*list.Element // of *StaleEntry
	lru        list.List
}

// StaleEntry is one cached response; never mutated once stored.
type StaleEntry struct {
	Key    string
	Status int
	Header http.Header
	Body   []byte
}

// Defaults of a StaleCache: up to 1000 responses of up to 256 KiB, i.e. at
// most about 256 MiB in the worst case, typically far less.
const (
	DefaultStaleEntries = 1000
	DefaultStaleBody    = 256 << 10
)

// NewStaleCache returns a cache of at most maxEntries responses with
// bodies of at most maxBody bytes; zeros mean the defaults.
func NewStaleCache(maxEntries, maxBody int) *StaleCache {
	if maxEntries <= 0 {
		maxEntries = DefaultStaleEntries
	}
	if maxBody <= 0 {
		maxBody = DefaultStaleBody
	}
	return &StaleCache{maxEntries: maxEntries, maxBody: maxBody, entries: map[string]*list.Element{}}
}

// MaxBody is the largest body Put accepts.
func (c *StaleCache) MaxBody() int { return c.maxBody }

// Put stores e, replacing the entry for the same key and evicting the
// least recently used one when full.
func (c *StaleCache) Put(e *StaleEntry) {
	if len(e.Body) > c.maxBody {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[e.Key]; ok {
		old.Value = e
		c.lru.MoveToFront(old)
		return
	}
	if c.lru.Len() >= c.maxEntries {
		back := c.lru.Back()
		c.lru.Remove(back)
		delete(c.entries, back.Value.(*StaleEntry).Key)
	}
	c.entries[e.Key] = c.lru.PushFront(e)
}

// Get returns the entry for key, or nil.
func (c *StaleCache) Get(key string) *StaleEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*StaleEntry)
}

// Len is the number of cached responses.
func (c *StaleCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
