package gateway

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/gateway/upstream"
	"github.com/gatewayco/gateway/registry"
)

// Composition of route policies: which middleware runs in which order, and
// the state each keeps from one table to the next. The mechanisms and
// their middlewares live in the policy package.

// policyEnv is what route policies need from the gateway's options.
type policyEnv struct {
	trusted []netip.Prefix
	now     func() time.Time
	logger  hclog.Logger
	getenv  func(string) string
	// jwksClient fetches key sets; nil means a client with a 5s timeout.
	jwksClient *http.Client
	// httpsPort is where https_only redirects point (Options.HTTPSPort).
	httpsPort string
	// replicas shares cluster-scoped rate limits (Options.Replicas).
	replicas func() int
}

// stateKey names one piece of per-route policy state: the route (or
// "aggregate/call", or "" for state shared by every route) and the
// fingerprint of the configuration it was made from, so any change to that
// configuration starts from fresh state.
type stateKey struct {
	route, fingerprint string
}

// keep carries one kind of policy state from one table to the next. Like
// balancers it is owned by the single-goroutine tableBuilder: get during a
// build, then swap, which drops everything the new table did not ask for.
type keep[T any] struct {
	prev, next map[stateKey]T
}

// get returns the state under k, made by mk the first time a build asks.
func (s *keep[T]) get(k stateKey, mk func() T) T {
	if s.next == nil {
		s.next = map[stateKey]T{}
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

func (s *keep[T]) swap() { s.prev, s.next = s.next, nil }

// discard forgets what an abandoned build asked for.
func (s *keep[T]) discard() { s.next = nil }

// policyStates is every kind of state route policies keep across swaps.
type policyStates struct {
	budgets   keep[*policy.RetryBudget]
	breakers  keep[*policy.RouteBreaker]
	limiters  keep[*policy.Limiter]
	verifiers keep[*policy.Verifier]
	jwks      keep[*policy.JWKS] // by jwks_url, shared by every route naming it
	splits    splitStates        // see split.go
	mirrors   keep[*upstream.MirrorSlots]
	hedges    keep[*policy.RetryBudget] // by "aggregate/call"
}

func (s *policyStates) swap() {
	s.budgets.swap()
	s.breakers.swap()
	s.limiters.swap()
	s.verifiers.swap()
	s.jwks.swap()
	s.splits.swap()
	s.mirrors.swap()
	s.hedges.swap()
}

func (s *policyStates) discard() {
	s.budgets.discard()
	s.breakers.discard()
	s.limiters.discard()
	s.verifiers.discard()
	s.jwks.discard()
	s.splits.discard()
	s.mirrors.discard()
	s.hedges.discard()
}

// protection is the retries and circuit breaker pol asks for on the
// service key. name keys their state, which outlives table swaps while the
// policy is unchanged: a route's name, or "aggregate/call" for an
// aggregate's call.
func (b *tableBuilder) protection(name string, pol *config.Policy, key registry.ServiceKey) (upstream.Retry, *policy.RouteBreaker) {
	env := b.deps.env
	var retry upstream.Retry
	if pol.Retries > 0 {
		budget := b.states.budgets.get(stateKey{name, ""}, func() *policy.RetryBudget {
			return policy.NewRetryBudget(policy.DefaultRetryRatio, policy.DefaultMinRetries, env.now)
		})
		retry = upstream.Retry{Retries: pol.Retries, NonIdempotent: pol.RetryNonIdempotent, Budget: budget}
	}
	var breaker *policy.RouteBreaker
	if cb := pol.CircuitBreaker; cb != nil {
		fp := key.String() + "\x00" + cb.Fingerprint()
		breaker = b.states.breakers.get(stateKey{name, fp}, func() *policy.RouteBreaker {
			br := policy.NewBreaker(name+"/"+key.String(), cb, env.logger.Named("breaker"), env.now)
			m := b.deps.metrics
			br.SetOnStateChange(func(s policy.BreakerState) { m.BreakerState(name, s.Level()) })
			return policy.NewRouteBreaker(br, cb)
		})
	}
	return retry, breaker
}

// admission wraps h in the rate limit and auth of pol, for a route or an
// aggregate named name. With a rate limit keyed on a JWT claim or on a
// header auth set, auth runs first, so only verified values become keys.
// authUp is the forward_auth service's upstream.
func (b *tableBuilder) admission(name string, pol *config.Policy, authUp *upstream.Upstream, h http.Handler) http.Handler {
	env := b.deps.env
	var limit func(http.Handler) http.Handler
	if rl := pol.RateLimit; rl != nil {
		lim := b.states.limiters.get(stateKey{name, rl.Fingerprint()}, func() *policy.Limiter {
			opts := policy.LimiterOptions{Now: env.now}
			if rl.Cluster {
				opts.Replicas = env.replicas
				if env.replicas == nil {
					env.logger.Warn(`rate_limit scope = "cluster" without -register: this gateway knows no replicas, so it enforces the whole limit alone`, "route", name)
				}
			}
			return policy.NewLimiter(rl.RequestsPerSecond, rl.Burst, opts)
		})
		limit = func(next http.Handler) http.Handler {
			return policy.RateLimited(name, rl, lim, env.trusted, b.deps.metrics, next)
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
	env := b.deps.env
	var jwks *policy.JWKS
	if cfg.JWKSURL != "" {
		// Asked for on every build, so the set lives as long as any route
		// uses it, whether or not its verifier is rebuilt.
		jwks = b.states.jwks.get(stateKey{"", cfg.JWKSURL}, func() *policy.JWKS {
			return policy.NewJWKS(cfg.JWKSURL, policy.JWKSOptions{Client: env.jwksClient, Now: env.now, Logger: env.logger.Named("jwks")})
		})
	}
	return b.states.verifiers.get(stateKey{route, cfg.Fingerprint()}, func() *policy.Verifier {
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
	})
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
