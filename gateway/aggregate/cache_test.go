package aggregate

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
)

func cacheable(cc string) (*http.Request, *http.Response) {
	return &http.Request{Header: http.Header{}}, &http.Response{StatusCode: 200, Header: http.Header{"Cache-Control": {cc}}}
}

// TestCacheEvictsLeastRecentlyUsedWithinBounds: the entry bound and the
// byte bound each evict the least recently used answer first.
func TestCacheEvictsLeastRecentlyUsedWithinBounds(t *testing.T) {
	clock := testkit.NewClock()
	c := NewCache(2, 100, clock.Now)
	req, resp := cacheable("max-age=60")
	c.put("a", req, resp, []byte("1"))
	c.put("b", req, resp, []byte("2"))
	c.get("a", req.Header) // a is now the most recent
	c.put("c", req, resp, []byte("3"))
	if c.get("b", req.Header) != nil || c.get("a", req.Header) == nil || c.get("c", req.Header) == nil {
		t.Error("the entry bound did not evict the least recently used answer")
	}
	// An entry holds its body and its key twice (the key and the variant,
	// here without Vary): 94 + 2×3 bytes fill the bound exactly.
	c.put("big", req, resp, []byte(strings.Repeat("x", 94)))
	if n, bytes := c.Len(); n != 1 || bytes != 100 {
		t.Errorf("after a 100-byte entry: %d entries, %d bytes; want 1, 100", n, bytes)
	}
	c.put("huge", req, resp, []byte(strings.Repeat("x", 95)))
	if c.get("huge", req.Header) != nil {
		t.Error("an answer over the byte bound was kept")
	}
}

// TestCacheLifetime: s-maxage over max-age, Age subtracted, expired
// answers dropped; no-cache and an answer without a lifetime not kept.
func TestCacheLifetime(t *testing.T) {
	clock := testkit.NewClock()
	c := NewCache(0, 0, clock.Now)
	req, resp := cacheable("max-age=100, s-maxage=30")
	resp.Header.Set("Age", "10")
	c.put("k", req, resp, []byte("1"))
	clock.Advance(19 * time.Second)
	if c.get("k", req.Header) == nil {
		t.Error("gone before its lifetime (30s less an Age of 10s)")
	}
	clock.Advance(time.Second)
	if c.get("k", req.Header) != nil {
		t.Error("kept past its lifetime")
	}
	if n, _ := c.Len(); n != 0 {
		t.Errorf("%d expired entries kept", n)
	}
	for _, cc := range []string{"no-cache, max-age=60", "public", `max-age="x"`} {
		req, resp := cacheable(cc)
		c.put(cc, req, resp, []byte("1"))
		if c.get(cc, req.Header) != nil {
			t.Errorf("Cache-Control %q was cached", cc)
		}
	}
}

// TestCacheCountsKeysAndVaryAgainstTheByteBound: a key carries the
// client's query and the values of the headers the answer varies on,
// each as large as a request may be; the byte bound must hold for them
// too, not only for the bodies.
func TestCacheCountsKeysAndVaryAgainstTheByteBound(t *testing.T) {
	const maxBytes = 64 << 10
	c := NewCache(1000, maxBytes, testkit.NewClock().Now)
	long := strings.Repeat("q", 4<<10)
	for i := range 100 {
		req, resp := cacheable("max-age=60")
		resp.Header.Set("Vary", "X-Big")
		req.Header.Set("X-Big", long)
		c.put(fmt.Sprintf("GET svc /items?q=%s&i=%d", long, i), req, resp, []byte("1"))
	}
	n, bytes := c.Len()
	if held := n * 3 * len(long); bytes > maxBytes || held > maxBytes {
		t.Errorf("%d entries holding over %d bytes of keys and Vary values, counted as %d; bound %d", n, held, bytes, maxBytes)
	}
	if n == 0 {
		t.Error("no entry kept at all")
	}
}
