package config_test

import (
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
)

func TestRateLimitKeyOnAHeaderTheAuthPolicySets(t *testing.T) {
	for _, auth := range [][]string{
		{`  forward_auth {`, `    service = "auth"`, `    path = "/v"`, `    copy_headers = ["x-user-id"]`, `  }`},
		{`  jwt {`, `    algorithms = ["HS256"]`, `    secret_env = "S"`, `    forward_claims = { sub = "x-user-id" }`, `  }`},
	} {
		src := routeWith(append([]string{`  path = "/x"`, `  service = "s"`,
			`  rate_limit {`, `    requests_per_second = 1`, `    key = "auth_header:x-user-id"`, `  }`}, auth...)...)
		d, err := config.Parse("k", src, 1)
		if err != nil {
			t.Fatalf("%s: %v", auth[0], err)
		}
		rl := d.Routes[0].Policy.RateLimit
		if rl.KeyKind != "auth_header" || rl.KeyName != "X-User-Id" {
			t.Errorf("%s: key parsed as %+v", auth[0], rl)
		}
	}
}

func TestAuthHeaderErrors(t *testing.T) {
	base := []string{`  path = "/x"`, `  service = "s"`}
	with := func(lines ...string) []byte { return routeWith(append(append([]string{}, base...), lines...)...) }
	key := func(k string) []string {
		return []string{`  rate_limit {`, `    requests_per_second = 1`, `    key = "` + k + `"`, `  }`}
	}
	fa := func(copy string) []string {
		return []string{`  forward_auth {`, `    service = "auth"`, `    path = "/v"`, `    copy_headers = [` + copy + `]`, `  }`}
	}
	jwtWith := func(claims string) []string {
		return []string{`  jwt {`, `    algorithms = ["HS256"]`, `    secret_env = "S"`, `    forward_claims = ` + claims, `  }`}
	}
	cat := func(parts ...[]string) []byte {
		var all []string
		for _, p := range parts {
			all = append(all, p...)
		}
		return with(all...)
	}
	tests := []struct {
		name string
		src  []byte
		want []string
	}{
		{"auth_header without auth", cat(key("auth_header:X-User-Id")),
			[]string{`k:6:11: rate_limit key "auth_header:X-User-Id" needs a jwt forward_claims or forward_auth copy_headers entry for X-User-Id`}},
		{"auth_header not copied", cat(key("auth_header:X-User-Id"), fa(`"X-Other"`)),
			[]string{`k:6:11: rate_limit key "auth_header:X-User-Id" needs a jwt forward_claims or forward_auth copy_headers entry for X-User-Id`}},
		{"auth_header not a forwarded claim", cat(key("auth_header:X-User-Id"), jwtWith(`{ sub = "X-Sub" }`)),
			[]string{`k:6:11: rate_limit key "auth_header:X-User-Id" needs a jwt forward_claims or forward_auth copy_headers entry for X-User-Id`}},
		{"auth_header without a name", cat(key("auth_header:")),
			[]string{`k:6:11: rate_limit key "auth_header:"`}},
		{"claim into a hop-by-hop header", cat(jwtWith(`{ sub = "Connection" }`)),
			[]string{`k:7:22: forward_claims["sub"]: "Connection" is set by the gateway or the connection`}},
		{"claim into the request ID", cat(jwtWith(`{ sub = "x-request-id" }`)),
			[]string{`k:7:22: forward_claims["sub"]: "X-Request-Id" is set by the gateway or the connection`}},
		{"copy of X-Forwarded-For", cat(fa(`"X-Forwarded-For"`)),
			[]string{`k:7:21: copy_headers: "X-Forwarded-For" is set by the gateway or the connection`}},
		{"copy of Transfer-Encoding", cat(fa(`"transfer-encoding"`)),
			[]string{`k:7:21: copy_headers: "Transfer-Encoding" is set by the gateway or the connection`}},
		{"copy of Host", cat(fa(`"Host"`)),
			[]string{`k:7:21: copy_headers: "Host" is set by the gateway or the connection`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectErrors(t, tt.src, tt.want)
		})
	}
}

// TestJWKSURLErrorsNeverShowItsPassword: validation errors reach logs,
// /routes and the dashboard, so a URL they quote is redacted.
func TestJWKSURLErrorsNeverShowItsPassword(t *testing.T) {
	for _, u := range []string{"ftp://user:s3cr3t@keys.example.com/jwks", "https://user:s3cr3t@/jwks", "http://user:s3cr3t@host:badport/jwks"} {
		_, err := config.Parse("k", routeWith(`  path = "/x"`, `  service = "s"`,
			`  jwt {`, `    algorithms = ["RS256"]`, `    jwks_url = "`+u+`"`, `  }`), 1)
		if err == nil || !strings.Contains(err.Error(), "jwks_url must be an absolute http or https URL") {
			t.Fatalf("%s: %v", u, err)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
