package gateway

import (
	"net/http"
	"net/netip"
	"strconv"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
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
			h.Set("Retry-After", retryAfterSeconds(d.RetryAfter))
			exchange.WriteError(w, http.StatusTooManyRequests, msgRateLimited, route)
			return
		}
		next.ServeHTTP(w, r)
	})
}
