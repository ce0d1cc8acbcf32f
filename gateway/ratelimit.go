package gateway

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/policy"
)

const msgRateLimited = "rate limit exceeded"

// rateLimited takes a token from the client's bucket before next runs;
// without one it answers 429 with Retry-After. Every answer carries
// X-RateLimit-Limit and X-RateLimit-Remaining. A request without the key
// (no such header, no such claim) is limited by client IP instead, so
// leaving the key out never bypasses the limit. JWT and auth-header keys
// are read from what auth verified, so their limiter runs after auth.
func rateLimited(route string, rl *config.RateLimit, lim *policy.Limiter, trusted []netip.Prefix, m *metrics.Metrics, next http.Handler) http.Handler {
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
			if ex := exchangeFrom(r.Context()); ex != nil {
				if v := ex.upHeader.Get(rl.KeyName); v != "" {
					key = "a:" + v
				}
			}
		}
		if key == "" {
			key = "ip:" + clientAddr(r, trusted)
		}
		d := lim.Allow(key)
		h := w.Header()
		h.Set("X-RateLimit-Limit", strconv.Itoa(d.Limit))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
		if !d.Allowed {
			m.RateLimited(route)
			h.Set("Retry-After", retryAfterSeconds(d.RetryAfter))
			writeError(w, http.StatusTooManyRequests, msgRateLimited, route)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// clientAddr is the client's IP: the connection's peer, unless the peer is
// a trusted proxy, in which case X-Forwarded-For is walked from the right
// (the entry the nearest proxy appended) to the first address that is not
// a trusted proxy. Entries further left were written by the client itself
// and are never believed.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer := clientIP(r)
	if len(trusted) == 0 {
		return peer
	}
	addr, err := netip.ParseAddr(peer)
	if err != nil || !isTrusted(addr, trusted) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			// A malformed hop ends what can be believed; the last
			// trusted address is the best we know.
			return addr.String()
		}
		addr = a.Unmap()
		if !isTrusted(addr, trusted) {
			return addr.String()
		}
	}
	return addr.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
