package policy

import (
	"bytes"
	"container/list"
	"io"
	"net/http"
	"strings"
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
	// Key is the host and request target the answer was for.
	Key string
	// Status is the upstream's status.
	Status int
	// Header is the upstream's header, less Set-Cookie.
	Header http.Header
	// Body is the whole body as the upstream sent it.
	Body []byte
	// Vary holds, for each request header the answer's Vary names, the
	// value the request that got it sent: the answer is only replayed to
	// a request sending the same values, as a shared cache does.
	Vary map[string]string
}

// matches reports whether req may get e: it sends what e's request sent
// in every header the answer varies on.
func (e *StaleEntry) matches(req *http.Request) bool {
	for name, v := range e.Vary {
		if strings.Join(req.Header.Values(name), ", ") != v {
			return false
		}
	}
	return true
}

// varyOn returns the request's values of the headers resp varies on.
func varyOn(req *http.Request, resp *http.Response) map[string]string {
	var out map[string]string
	for _, v := range resp.Header.Values("Vary") {
		for _, name := range strings.Split(v, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			if out == nil {
				out = map[string]string{}
			}
			out[name] = strings.Join(req.Header.Values(name), ", ")
		}
	}
	return out
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

// lookup returns the entry for req when its Vary headers match, or nil.
func (c *StaleCache) lookup(req *http.Request) *StaleEntry {
	if e := c.Get(staleKey(req)); e != nil && e.matches(req) {
		return e
	}
	return nil
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

// StaleHeader marks a response served from the stale cache.
const StaleHeader = "X-Gateway-Stale"

// record makes resp's body, as it streams to the client, the cached answer
// for req once it is complete. Set-Cookie is never kept.
func (c *StaleCache) record(req *http.Request, resp *http.Response) {
	h := resp.Header.Clone()
	h.Del("Set-Cookie")
	resp.Body = &staleRecorder{rc: resp.Body, cache: c, entry: &StaleEntry{
		Key: staleKey(req), Status: resp.StatusCode, Header: h, Vary: varyOn(req, resp),
	}}
}

// shareable reports whether an answer may be replayed to other clients
// while the breaker is open, by the rules a shared HTTP cache follows: not
// when the request was personal (credentials or cookies) or the response
// says it is (Set-Cookie, Cache-Control private or no-store, Vary: *); an
// answer that varies on other headers is replayed only to requests that
// send the same values (StaleEntry.Vary). Routes with jwt or forward_auth
// cannot serve stale at all (config refuses it): their answers are per
// user, whatever header carries the user.
func shareable(req *http.Request, resp *http.Response) bool {
	if req.Header.Get("Authorization") != "" || req.Header.Get("Cookie") != "" {
		return false
	}
	if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("Vary") == "*" {
		return false
	}
	personal := false
	cacheDirectives(resp.Header, func(name, _ string) {
		personal = personal || name == "private" || name == "no-store"
	})
	return !personal
}

// cacheDirectives calls f with each Cache-Control directive of h, its
// name lower-cased and its argument (if any) as written.
func cacheDirectives(h http.Header, f func(name, arg string)) {
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			f(strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(arg))
		}
	}
}

// staleKey names a cached answer: host and request target, so tenants
// behind one host-template route never see each other's answers.
func staleKey(req *http.Request) string { return req.Host + " " + req.URL.RequestURI() }

// staleRecorder copies a successful body as it streams to the client and
// caches it once complete; bodies over the cache's limit are not kept.
type staleRecorder struct {
	rc    io.ReadCloser
	cache *StaleCache
	entry *StaleEntry
	buf   bytes.Buffer
	over  bool
}

func (s *staleRecorder) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	if !s.over {
		if s.buf.Len()+n > s.cache.MaxBody() {
			s.over = true
			s.buf = bytes.Buffer{}
		} else {
			s.buf.Write(p[:n])
		}
	}
	if err == io.EOF && !s.over {
		s.entry.Body = bytes.Clone(s.buf.Bytes())
		s.cache.Put(s.entry)
		s.over = true // store once
	}
	return n, err
}

func (s *staleRecorder) Close() error { return s.rc.Close() }
