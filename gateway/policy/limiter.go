// Package policy holds each route policy's mechanism together with its
// middleware: keyed rate limiting (Limiter, RateLimited), JWT verification
// with a JWKS cache (Verifier, JWKS, JWTAuthenticated), forward auth
// (ForwardAuthenticated), the circuit breaker with its fallback and stale
// cache (Breaker, RouteBreaker, StaleCache) and the retry budget
// (RetryBudget). Nothing here knows about tables: the gateway's table
// builder composes the middlewares per route and keeps their state across
// table swaps.
package policy

import (
	"container/list"
	"hash/maphash"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/metrics"
	"golang.org/x/time/rate"
)

// Limiter is a token bucket per client key with bounded memory: buckets
// idle longer than the idle period are evicted, and at most MaxKeys
// buckets exist at once, the least recently used one making room for a new
// key. A client evicted while active gets a full bucket again; under a
// flood of distinct keys that is the price of bounded memory, and each
// flooding key still gets only one burst.
type Limiter struct {
	limit rate.Limit
	burst int
	idle  time.Duration
	now   func() time.Time
	// replicas is how many gateways share the limit (Replicas option);
	// read on every Allow, so a change applies at once, bucket by bucket.
	replicas func() int
	// Keys are stored as a 128-bit digest under two random seeds, never as
	// the string itself: a key is client input (a header value of up to
	// the header limit), and the memory bound must hold per bucket too.
	seed, seed2 maphash.Seed
	shards      [limiterShards]limiterShard
}

// keyDigest identifies a key; a collision between two live keys needs
// about 2^64 of them.
type keyDigest [2]uint64

// limiterShards spreads keys over independently locked maps so concurrent
// requests for different clients rarely contend.
const limiterShards = 64

type limiterShard struct {
	mu      sync.Mutex
	max     int
	buckets map[keyDigest]*list.Element // of *bucket
	lru     list.List                   // front = most recently used
}

type bucket struct {
	key  keyDigest
	lim  *rate.Limiter
	seen time.Time
	// share is the replica count lim's rate and burst were last set for.
	share int
}

// LimiterOptions tune a Limiter; the zero value is usable.
type LimiterOptions struct {
	// MaxKeys bounds the number of buckets; zero means DefaultMaxKeys.
	MaxKeys int
	// Idle is how long an unused bucket is kept; zero means the time a
	// bucket takes to refill completely, plus a minute, so an evicted
	// bucket would have been full anyway.
	Idle time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Replicas, for a limit the whole fleet shares (scope = "cluster"), is
	// how many gateways share it; each bucket then refills at rps/n and
	// holds max(1, burst/n) tokens. Read on every Allow, so it must be
	// cheap (an atomic load); values below 1 count as 1. A change reaches
	// each bucket on its next request, keeping its tokens (capped at the
	// new size), so a replica joining or leaving never resets a client.
	// Nil means 1: the limit is this gateway's alone.
	Replicas func() int
}

// DefaultMaxKeys bounds a Limiter's buckets; 100k buckets take about
// 24 MiB whatever the keys' length (see TestLimiterMemoryIsBoundedUnderKeyFlood
// and TestLimiterMemoryDoesNotGrowWithKeyLength).
const DefaultMaxKeys = 100_000

// NewLimiter returns a limiter refilling rps tokens per second into
// buckets of size burst.
func NewLimiter(rps float64, burst int, opts LimiterOptions) *Limiter {
	l := &Limiter{limit: rate.Limit(rps), burst: burst, idle: opts.Idle, now: opts.Now, replicas: opts.Replicas, seed: maphash.MakeSeed(), seed2: maphash.MakeSeed()}
	if l.now == nil {
		l.now = time.Now
	}
	if l.replicas == nil {
		l.replicas = func() int { return 1 }
	}
	if l.idle <= 0 {
		l.idle = time.Duration(float64(burst)/rps*float64(time.Second)) + time.Minute
	}
	maxKeys := opts.MaxKeys
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	for i := range l.shards {
		l.shards[i].max = max(1, maxKeys/limiterShards)
		l.shards[i].buckets = map[keyDigest]*list.Element{}
	}
	return l
}

// Decision is the outcome of one Allow.
type Decision struct {
	// Allowed is false when the request must be refused.
	Allowed bool
	// Limit is the bucket size, for X-RateLimit-Limit.
	Limit int
	// Remaining is the whole tokens left after this request.
	Remaining int
	// RetryAfter is how long until a token is available; zero if allowed.
	RetryAfter time.Duration
}

// Allow takes one token from key's bucket.
func (l *Limiter) Allow(key string) Decision {
	now := l.now()
	n := max(1, l.replicas())
	k := keyDigest{maphash.String(l.seed, key), maphash.String(l.seed2, key)}
	s := &l.shards[k[0]%limiterShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.touch(k, now, n, l)
	if b.share != n {
		b.lim.SetLimitAt(now, l.limit/rate.Limit(n))
		b.lim.SetBurstAt(now, l.shareBurst(n))
		b.share = n
	}
	d := Decision{Limit: l.shareBurst(n)}
	r := b.lim.ReserveN(now, 1)
	if delay := r.DelayFrom(now); !r.OK() || delay > 0 {
		r.CancelAt(now)
		d.RetryAfter = delay
		if !r.OK() {
			d.RetryAfter = time.Duration(math.MaxInt64)
		}
	} else {
		d.Allowed = true
	}
	d.Remaining = max(0, int(b.lim.TokensAt(now)))
	return d
}

// touch returns key's bucket, creating it and evicting idle or least
// recently used buckets as needed. Called with s.mu held.
func (s *limiterShard) touch(key keyDigest, now time.Time, n int, l *Limiter) *bucket {
	if e, ok := s.buckets[key]; ok {
		b := e.Value.(*bucket)
		b.seen = now
		s.lru.MoveToFront(e)
		return b
	}
	// The back of the list is the longest unused: drop what is idle, then
	// make room if the shard is still full.
	for e := s.lru.Back(); e != nil; e = s.lru.Back() {
		b := e.Value.(*bucket)
		if now.Sub(b.seen) < l.idle && len(s.buckets) < s.max {
			break
		}
		s.lru.Remove(e)
		delete(s.buckets, b.key)
	}
	b := &bucket{key: key, lim: rate.NewLimiter(l.limit/rate.Limit(n), l.shareBurst(n)), seen: now, share: n}
	s.buckets[key] = s.lru.PushFront(b)
	return b
}

// shareBurst is one replica's bucket size when n share the limit: rounded
// down, so the fleet's burst stays within the configured one, but at least
// one token, or a replica could admit nothing at all.
func (l *Limiter) shareBurst(n int) int { return max(1, l.burst/n) }

// Len is the number of buckets held.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// MsgRateLimited is the error a refused request gets.
const MsgRateLimited = "rate limit exceeded"

// RateLimited takes a token from the client's bucket in lim before next
// runs; without one it answers 429 with Retry-After, and counts the
// refusal in m (nil counts nothing). Every answer carries
// X-RateLimit-Limit and X-RateLimit-Remaining. A request without the key
// (no such header, no such claim) is limited by client IP instead, so
// leaving the key out never bypasses the limit. JWT and auth-header keys
// are read from what auth verified, so their limiter must run after auth.
func RateLimited(route string, rl *config.RateLimit, lim *Limiter, trusted []netip.Prefix, m *metrics.Metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := ""
		switch rl.KeyKind {
		case config.RateKeyHeader:
			if v := r.Header.Get(rl.KeyName); v != "" {
				key = "h:" + v
			}
		case config.RateKeyJWT:
			if v, ok := claimsFrom(r.Context())[rl.KeyName]; ok {
				key = "j:" + claimString(v)
			}
		case config.RateKeyAuthHeader:
			if ex := exchange.From(r.Context()); ex != nil {
				if v := ex.UpstreamHeader(rl.KeyName); v != "" {
					key = "a:" + v
				}
			}
		}
		if key == "" {
			key = "ip:" + exchange.ClientAddr(r, trusted)
		}
		d := lim.Allow(key)
		h := w.Header()
		h.Set("X-RateLimit-Limit", strconv.Itoa(d.Limit))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
		if !d.Allowed {
			m.RateLimited(route)
			h.Set("Retry-After", RetryAfterSeconds(d.RetryAfter))
			exchange.WriteError(w, http.StatusTooManyRequests, MsgRateLimited, route)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RetryAfterSeconds renders d for Retry-After: whole seconds, rounded up,
// at least 1.
func RetryAfterSeconds(d time.Duration) string {
	s := max(int64((d+time.Second-1)/time.Second), 1)
	return strconv.FormatInt(s, 10)
}
