package admin

import (
	"time"

	"github.com/gatewayco/gateway/gateway/config"
)

// settingsView is a route's effective behaviour with defaults filled in,
// so an operator reads what the gateway does rather than what the
// document left out. Every field is always present; a policy that is off
// is null.
type settingsView struct {
	StripPrefix string `json:"strip_prefix"`
	// Timeout bounds the upstream exchange, a Go duration; "none" when
	// the route has no timeout.
	Timeout            string       `json:"timeout"`
	Retries            int          `json:"retries"`
	RetryNonIdempotent bool         `json:"retry_non_idempotent"`
	AllowWarning       bool         `json:"allow_warning"`
	Policies           policiesView `json:"policies"`
}

type policiesView struct {
	RateLimit      *rateLimitView      `json:"rate_limit"`
	JWT            *jwtView            `json:"jwt"`
	ForwardAuth    *forwardAuthView    `json:"forward_auth"`
	CircuitBreaker *circuitBreakerView `json:"circuit_breaker"`
}

type rateLimitView struct {
	RequestsPerSecond float64 `json:"requests_per_second"`
	Burst             int     `json:"burst"`
	Key               string  `json:"key"`
	// Scope is "local" or "cluster": whether the figures above are this
	// replica's or the fleet's (each replica then enforces its share).
	Scope string `json:"scope"`
}

// jwtView names where the key comes from, never the key: a secret stays
// in its environment variable.
type jwtView struct {
	Algorithms []string `json:"algorithms"`
	KeySource  string   `json:"key_source"`
	Issuer     string   `json:"issuer,omitempty"`
	Audience   string   `json:"audience,omitempty"`
	// ForwardClaims lists the upstream headers claims are copied into.
	ForwardClaims map[string]string `json:"forward_claims,omitempty"`
}

type forwardAuthView struct {
	Service     string   `json:"service"`
	Path        string   `json:"path"`
	Timeout     string   `json:"timeout"`
	CopyHeaders []string `json:"copy_headers,omitempty"`
}

type circuitBreakerView struct {
	FailureRatio float64 `json:"failure_ratio"`
	MinRequests  int     `json:"min_requests"`
	OpenTimeout  string  `json:"open_timeout"`
	// FallbackStatus is the fixed answer's status while open; 0 without
	// a fallback.
	FallbackStatus int  `json:"fallback_status,omitempty"`
	ServeStale     bool `json:"serve_stale"`
}

func settingsOf(c *config.Route) settingsView {
	s := settingsView{StripPrefix: c.StripPrefix, Timeout: durationOrNone(c.Timeout), Retries: c.Policy.Retries,
		RetryNonIdempotent: c.Policy.RetryNonIdempotent, AllowWarning: c.AllowWarning}
	p := &c.Policy
	if rl := p.RateLimit; rl != nil {
		s.Policies.RateLimit = &rateLimitView{RequestsPerSecond: rl.RequestsPerSecond, Burst: rl.Burst, Key: rl.Key, Scope: config.RateScopeLocal}
		if rl.Cluster {
			s.Policies.RateLimit.Scope = config.RateScopeCluster
		}
	}
	if j := p.JWT; j != nil {
		v := &jwtView{Algorithms: j.Algorithms, Issuer: j.Issuer, Audience: j.Audience, ForwardClaims: j.ForwardClaims}
		switch {
		case j.SecretEnv != "":
			v.KeySource = "secret_env " + j.SecretEnv
		case j.PublicKeyFile != "":
			v.KeySource = "public_key_file " + j.PublicKeyFile
		default:
			v.KeySource = "jwks_url " + j.JWKSURL
		}
		s.Policies.JWT = v
	}
	if fa := p.ForwardAuth; fa != nil {
		timeout := fa.Timeout
		if timeout == 0 {
			timeout = config.DefaultForwardAuthTimeout
		}
		s.Policies.ForwardAuth = &forwardAuthView{Service: fa.Service, Path: fa.Path, Timeout: timeout.String(), CopyHeaders: fa.CopyHeaders}
	}
	if cb := p.CircuitBreaker; cb != nil {
		v := &circuitBreakerView{FailureRatio: cb.FailureRatio, MinRequests: cb.MinRequests, OpenTimeout: cb.OpenTimeout.String(), ServeStale: cb.ServeStale}
		if v.MinRequests == 0 {
			v.MinRequests = config.DefaultMinRequests
		}
		if cb.OpenTimeout == 0 {
			v.OpenTimeout = config.DefaultOpenTimeout.String()
		}
		if cb.Fallback != nil {
			v.FallbackStatus = cb.Fallback.Status
			if v.FallbackStatus == 0 {
				v.FallbackStatus = 200
			}
		}
		s.Policies.CircuitBreaker = v
	}
	return s
}

func durationOrNone(d time.Duration) string {
	if d <= 0 {
		return "none"
	}
	return d.String()
}
