package gateway

import (
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/registry"
)

// policyEnv is what route policies need from the gateway's options.
type policyEnv struct {
	trusted []netip.Prefix
	now     func() time.Time
	logger  hclog.Logger
	getenv  func(string) string
	// jwksClient fetches key sets; nil means a client with a 5s timeout.
	jwksClient *http.Client
}

// stateKey names one piece of per-route policy state: the route, the kind
// of state and the fingerprint of the configuration it was made from, so
// any change to that configuration starts from fresh state.
type stateKey struct {
	route, kind, fingerprint string
}

// policyStates carries state (limiter buckets, breakers, budgets, caches,
// key sets) from one table to the next. Like balancers it is owned by the
// single-goroutine tableBuilder: get during a build, then swap, which drops
// everything the new table did not ask for.
type policyStates struct {
	prev, next map[stateKey]any
}

func (s *policyStates) get(k stateKey, mk func() any) any {
	if s.next == nil {
		s.next = map[stateKey]any{}
	}
	if v, ok := s.next[k]; ok {
		return v
	}
	v, ok := s.prev[k]
	if !ok {
		v = mk()
	}
	s.next[k] = v
	return v
}

func (s *policyStates) swap() { s.prev, s.next = s.next, nil }

// applyPolicies gives a route its upstream protection and its request
// chain: rate limit, then auth (jwt or forward_auth), then the proxy. authUp
// is the forward_auth service's upstream.
func (b *tableBuilder) applyPolicies(rt *Route, authUp *upstream) {
	name := rt.Config.Name
	b.protect(name, &rt.Config.Policy, rt.up)
	rt.handler = named(name, rt.metrics, b.admission(name, &rt.Config.Policy, authUp, b.proxy.handler(rt)))
}

// protect gives up the retries and circuit breaker of pol. name keys their
// state, which outlives table swaps while the policy is unchanged: a
// route's name, or "aggregate/call" for an aggregate's call.
func (b *tableBuilder) protect(name string, pol *config.Policy, up *upstream) {
	env := b.proxy.env
	if pol.Retries > 0 {
		budget := b.states.get(stateKey{name, "budget", ""}, func() any {
			return policy.NewRetryBudget(policy.DefaultRetryRatio, policy.DefaultMinRetries, env.now)
		}).(*policy.RetryBudget)
		up.retry = retryPolicy{retries: pol.Retries, nonIdempotent: pol.RetryNonIdempotent, budget: budget}
	}
	if cb := pol.CircuitBreaker; cb != nil {
		fp := up.service.String() + "\x00" + cb.Fingerprint()
		up.breaker = b.states.get(stateKey{name, "breaker", fp}, func() any {
			br := policy.NewBreaker(name+"/"+up.service.String(), cb, env.logger.Named("breaker"), env.now)
			m := b.proxy.metrics
			br.SetOnStateChange(func(s policy.BreakerState) { m.BreakerState(name, s.Level()) })
			return policy.NewRouteBreaker(br, cb)
		}).(*policy.RouteBreaker)
	}
}

// admission wraps h in the rate limit and auth of pol, for a route or an
// aggregate named name. With a rate limit keyed on a JWT claim or on a
// header auth set, auth runs first, so only verified values become keys.
func (b *tableBuilder) admission(name string, pol *config.Policy, authUp *upstream, h http.Handler) http.Handler {
	env := b.proxy.env
	var limit func(http.Handler) http.Handler
	if rl := pol.RateLimit; rl != nil {
		lim := b.states.get(stateKey{name, "limiter", rl.Fingerprint()}, func() any {
			return policy.NewLimiter(rl.RequestsPerSecond, rl.Burst, policy.LimiterOptions{Now: env.now})
		}).(*policy.Limiter)
		limit = func(next http.Handler) http.Handler {
			return policy.RateLimited(name, rl, lim, env.trusted, b.proxy.metrics, next)
		}
	}
	verifiedKey := limit != nil && (pol.RateLimit.KeyKind == config.RateKeyJWT || pol.RateLimit.KeyKind == config.RateKeyAuthHeader)
	if verifiedKey {
		h = limit(h)
	}
	switch {
	case pol.JWT != nil:
		h = policy.JWTAuthenticated(name, pol.JWT, b.verifier(name, pol.JWT), h)
	case pol.ForwardAuth != nil:
		h = policy.ForwardAuthenticated(name, pol.ForwardAuth, authUp, env.trusted, env.logger.Named("forward_auth"), h)
	}
	if limit != nil && !verifiedKey {
		h = limit(h)
	}
	return h
}

// verifier returns the route's token verifier, kept across swaps with its
// key cache. Secrets and key files are read once, when the jwt block first
// appears (or changes); one that cannot be read leaves the route failing
// every request with 401, which the log explains. Every route naming the
// same jwks_url shares one key set, so the refresh rate limit holds per
// URL, not per route.
func (b *tableBuilder) verifier(route string, cfg *config.JWT) *policy.Verifier {
	env := b.proxy.env
	var jwks *policy.JWKS
	if cfg.JWKSURL != "" {
		// Asked for on every build, so the set lives as long as any route
		// uses it, whether or not its verifier is rebuilt.
		jwks = b.states.get(stateKey{"", "jwks", cfg.JWKSURL}, func() any {
			return policy.NewJWKS(cfg.JWKSURL, policy.JWKSOptions{Client: env.jwksClient, Now: env.now, Logger: env.logger.Named("jwks")})
		}).(*policy.JWKS)
	}
	return b.states.get(stateKey{route, "jwt", cfg.Fingerprint()}, func() any {
		var keys policy.KeySource
		switch {
		case jwks != nil:
			keys = jwks
		case cfg.PublicKeyFile != "":
			k, err := policy.LoadPublicKey(cfg.PublicKeyFile)
			if err != nil {
				env.logger.Error("jwt public key unusable; the route rejects every request", "route", route, "error", err)
			}
			keys = policy.StaticKey{K: k}
		default:
			secret := env.getenv(cfg.SecretEnv)
			if secret == "" {
				env.logger.Error("jwt secret environment variable empty or unset; the route rejects every request", "route", route, "env", cfg.SecretEnv)
				keys = policy.StaticKey{}
			} else {
				keys = policy.StaticKey{K: []byte(secret)}
			}
		}
		return policy.NewVerifier(cfg, keys, env.now)
	}).(*policy.Verifier)
}

// named records the route in the exchange before any policy runs, so a
// request refused by a policy is logged and answered with its route.
func named(route string, rm *metrics.Route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ex := exchange.From(r.Context()); ex != nil {
			// Set before admission, so a 401 or 429 is counted and
			// logged under its route, not as unmatched.
			ex.Route, ex.Metrics = route, rm
		}
		next.ServeHTTP(w, r)
	})
}

// authServiceKey is the health watch of a forward_auth service.
func authServiceKey(fa *config.ForwardAuth) registry.ServiceKey {
	return registry.ServiceKey{Name: fa.Service}
}

// authUpstream is the forward_auth service's upstream, balanced round
// robin with a balancer shared like a route's; nil without forward_auth.
func (b *tableBuilder) authUpstream(fa *config.ForwardAuth, instances func(registry.ServiceKey) []registry.Instance) *upstream {
	if fa == nil {
		return nil
	}
	key := authServiceKey(fa)
	return b.newUpstream(key, balancer.RoundRobin, instances(key))
}

func defaultGetenv() func(string) string { return os.Getenv }

// Breaker is the route's circuit breaker state; ok is false when the
// route has none.
func (r *Route) Breaker() (state policy.BreakerState, ok bool) {
	if r.up == nil || r.up.breaker == nil {
		return 0, false
	}
	return r.up.breaker.State(), true
}
