package config_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway/config"
)

func TestParsePolicies(t *testing.T) {
	src := doc(
		`route "orders" {`,
		`  path_prefix = "/api/orders"`,
		`  service     = "orders"`,
		`  retries     = 2`,
		`  retry_non_idempotent = true`,
		`  rate_limit {`,
		`    requests_per_second = 50`,
		`    burst               = 100`,
		`    key                 = "jwt:sub"`,
		`  }`,
		`  jwt {`,
		`    algorithms     = ["RS256", "ES256", "RS256"]`,
		`    jwks_url       = "http://auth.service.consul/.well-known/jwks.json"`,
		`    issuer         = "https://auth.example.com"`,
		`    audience       = "api"`,
		`    forward_claims = { sub = "x-user-id" }`,
		`  }`,
		`  circuit_breaker {`,
		`    failure_ratio = 0.5`,
		`    open_timeout  = "10s"`,
		`    serve_stale   = false`,
		`    fallback {`,
		`      content_type = "application/json"`,
		`      body         = "{\"orders\": []}"`,
		`    }`,
		`  }`,
		`}`,
		`route "hs" {`,
		`  path = "/hs"`,
		`  service = "hs"`,
		`  rate_limit {`,
		`    requests_per_second = 2.5`,
		`    key = "header:x-api-key"`,
		`  }`,
		`  forward_auth {`,
		`    service = "auth"`,
		`    path = "/verify"`,
		`    copy_headers = ["x-user-id"]`,
		`  }`,
		`}`,
	)
	got, err := config.Parse("k", src, 1)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []config.Policy{
		{
			Retries: 2, RetryNonIdempotent: true,
			RateLimit: &config.RateLimit{RequestsPerSecond: 50, Burst: 100, Key: "jwt:sub", KeyKind: "jwt", KeyName: "sub"},
			JWT: &config.JWT{
				Algorithms: []string{"RS256", "ES256"}, JWKSURL: "http://auth.service.consul/.well-known/jwks.json",
				Issuer: "https://auth.example.com", Audience: "api", ForwardClaims: map[string]string{"sub": "X-User-Id"},
			},
			CircuitBreaker: &config.CircuitBreaker{
				FailureRatio: 0.5, MinRequests: config.DefaultMinRequests, OpenTimeout: 10 * time.Second, ServeStale: false,
				Fallback: &config.Fallback{Status: 200, ContentType: "application/json", Body: `{"orders": []}`},
			},
		},
		{
			RateLimit:   &config.RateLimit{RequestsPerSecond: 2.5, Burst: 3, Key: "header:x-api-key", KeyKind: "header", KeyName: "X-Api-Key"},
			ForwardAuth: &config.ForwardAuth{Service: "auth", Path: "/verify", CopyHeaders: []string{"X-User-Id"}, Timeout: config.DefaultForwardAuthTimeout},
		},
	}
	for i, w := range want {
		if g := got.Routes[i].Policy; !reflect.DeepEqual(g, w) {
			t.Errorf("route %d policy:\n got %s\nwant %s", i, g.Fingerprint(), w.Fingerprint())
		}
	}
}

// TestPolicyFingerprintDetectsChanges is what decides whether limiter and
// breaker state is carried into a new table.
func TestPolicyFingerprintDetectsChanges(t *testing.T) {
	parse := func(rl string) config.Policy {
		t.Helper()
		d, err := config.Parse("k", routeWith(`  path = "/x"`, `  service = "s"`, rl), 1)
		if err != nil {
			t.Fatal(err)
		}
		return d.Routes[0].Policy
	}
	a := parse(`  rate_limit { requests_per_second = 5 }`)
	if b := parse(`  rate_limit { requests_per_second = 5 }`); !a.Equal(b) || a.RateLimit.Fingerprint() != b.RateLimit.Fingerprint() {
		t.Errorf("identical policies differ: %s vs %s", a.Fingerprint(), b.Fingerprint())
	}
	if b := parse(`  rate_limit { requests_per_second = 6 }`); a.Equal(b) || a.RateLimit.Fingerprint() == b.RateLimit.Fingerprint() {
		t.Errorf("changed rate is not detected: %s", b.Fingerprint())
	}
	if b := parse(`  rate_limit {
    requests_per_second = 5
    scope = "cluster"
  }`); a.Equal(b) || !b.RateLimit.Cluster {
		t.Errorf("scope = \"cluster\" is not detected: %s", b.Fingerprint())
	}
	if b := parse(`  rate_limit {
    requests_per_second = 5
    scope = "local"
  }`); !a.Equal(b) {
		t.Errorf("scope = \"local\" differs from the default: %s", b.Fingerprint())
	}
	if (config.Policy{}).Equal(a) {
		t.Error("no policy equals a rate-limited one")
	}
}

func TestParsePolicyErrors(t *testing.T) {
	base := []string{`  path = "/x"`, `  service = "s"`}
	with := func(lines ...string) []byte { return routeWith(append(append([]string{}, base...), lines...)...) }
	tests := []struct {
		name string
		src  []byte
		want []string
	}{
		{"alg none", with(`  jwt {`, `    algorithms = ["none"]`, `    secret_env = "S"`, `  }`),
			[]string{`k:5:19: algorithm "none" is never accepted`}},
		{"unknown alg", with(`  jwt {`, `    algorithms = ["RS256", "XS1"]`, `    jwks_url = "https://a/j"`, `  }`),
			[]string{`k:5:28: unknown algorithm "XS1"`}},
		{"HS without secret", with(`  jwt {`, `    algorithms = ["HS256"]`, `  }`),
			[]string{`k:4:3: jwt: HS* algorithms need secret_env`}},
		{"RS without key source", with(`  jwt {`, `    algorithms = ["RS256"]`, `  }`),
			[]string{`k:4:3: jwt: RS256 needs jwks_url or public_key_file`}},
		{"mixed families", with(`  jwt {`, `    algorithms = ["RS256", "HS256"]`, `    jwks_url = "https://a/j"`, `  }`),
			[]string{`k:5:18: algorithms must not mix HMAC`}},
		{"secret for RS", with(`  jwt {`, `    algorithms = ["RS256"]`, `    secret_env = "S"`, `  }`),
			[]string{`k:6:18: secret_env is only for HS*`}},
		{"two key sources", with(`  jwt {`, `    algorithms = ["ES256"]`, `    jwks_url = "https://a/j"`, `    public_key_file = "k.pem"`, `  }`),
			[]string{`k:6:16: only one of "jwks_url" and "public_key_file"`}},
		{"relative jwks url", with(`  jwt {`, `    algorithms = ["ES256"]`, `    jwks_url = "/jwks"`, `  }`),
			[]string{`k:6:16: jwks_url must be an absolute http or https URL`}},
		{"missing algorithms", with(`  jwt {`, `    secret_env = "S"`, `  }`),
			[]string{`k:4:3: jwt: missing required attribute "algorithms"`}},
		{"jwt and forward_auth", with(`  jwt {`, `    algorithms = ["HS256"]`, `    secret_env = "S"`, `  }`,
			`  forward_auth {`, `    service = "auth"`, `    path = "/v"`, `  }`),
			[]string{`k:8:3: only one of "jwt" and "forward_auth" may be set`}},
		{"two rate limits", with(`  rate_limit { requests_per_second = 1 }`, `  rate_limit { requests_per_second = 2 }`),
			[]string{`k:5:3: only one rate_limit block is allowed (first at 4:3)`}},
		{"zero rate", with(`  rate_limit { requests_per_second = 0 }`),
			[]string{`k:4:38: requests_per_second must be positive`}},
		{"bad burst", with(`  rate_limit {`, `    requests_per_second = 1`, `    burst = 0`, `  }`),
			[]string{`k:6:13: burst must be at least 1`}},
		{"bad scope", with(`  rate_limit {`, `    requests_per_second = 1`, `    scope = "global"`, `  }`),
			[]string{`k:6:13: rate_limit scope "global": want "local" or "cluster"`}},
		{"bad key", with(`  rate_limit {`, `    requests_per_second = 1`, `    key = "cookie:x"`, `  }`),
			[]string{`k:6:11: rate_limit key "cookie:x"`}},
		{"jwt key without jwt", with(`  rate_limit {`, `    requests_per_second = 1`, `    key = "jwt:sub"`, `  }`),
			[]string{`k:6:11: rate_limit key "jwt:sub" needs a jwt block`}},
		{"forward_auth without service", with(`  forward_auth { path = "/v" }`),
			[]string{`k:4:3: forward_auth: missing required attribute "service"`}},
		{"forward_auth relative path", with(`  forward_auth {`, `    service = "a"`, `    path = "v"`, `  }`),
			[]string{`k:6:12: path must start with "/"`}},
		{"ratio zero", with(`  circuit_breaker { failure_ratio = 0 }`),
			[]string{`k:4:37: failure_ratio must be in (0, 1]`}},
		{"ratio above one", with(`  circuit_breaker { failure_ratio = 1.5 }`),
			[]string{`k:4:37: failure_ratio must be in (0, 1]`}},
		{"missing ratio", with(`  circuit_breaker { min_requests = 3 }`),
			[]string{`k:4:3: circuit_breaker: missing required attribute "failure_ratio"`}},
		{"bad fallback status", with(`  circuit_breaker {`, `    failure_ratio = 1`, `    fallback { status = 99 }`, `  }`),
			[]string{`k:6:25: status must be between 200 and 599`}},
		{"negative retries", with(`  retries = -1`),
			[]string{`k:4:13: retries must be between 0 and 10`}},
		{"retries wrong type", with(`  retries = "2"`),
			[]string{`k:4:13: retries must be a number`}},
		{"unknown policy attribute", with(`  rate_limit {`, `    requests_per_second = 1`, `    per = "ip"`, `  }`),
			[]string{`k:6:5: Unsupported argument; An argument named "per"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectErrors(t, tt.src, tt.want)
		})
	}
}

// TestServeStaleRefusedBehindAuth: behind jwt or forward_auth answers are
// per user, whatever header carries the user, so replaying one client's
// answer to the next is refused, on a route and on an aggregate's call.
func TestServeStaleRefusedBehindAuth(t *testing.T) {
	for name, src := range map[string]string{
		"route with forward_auth": `route "r" {
  path_prefix = "/r"
  service     = "r"
  forward_auth {
    service = "auth"
    path    = "/verify"
  }
  circuit_breaker {
    failure_ratio = 0.5
    serve_stale   = true
  }
}
`,
		"aggregate call under jwt": `aggregate "a" {
  path = "/a/{id}"
  jwt {
    algorithms = ["HS256"]
    secret_env = "S"
  }
  call "c" {
    service = "c"
    path    = "/c/{id}"
    circuit_breaker {
      failure_ratio = 0.5
      serve_stale   = true
    }
  }
}
`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Parse("k", []byte(src), 1)
			if err == nil || !strings.Contains(err.Error(), "serve_stale cannot be used with jwt or forward_auth") {
				t.Fatalf("err = %v, want serve_stale refused behind auth", err)
			}
			if !strings.Contains(err.Error(), "k:10:21:") && !strings.Contains(err.Error(), "k:12:23:") {
				t.Errorf("err = %v, want it at serve_stale's value", err)
			}
		})
	}
}
