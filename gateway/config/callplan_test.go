package config_test

import (
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
)

// TestParseCallPlan: a sequence, a write and a hedged, cached call parse
// into the calls' fields.
func TestParseCallPlan(t *testing.T) {
	src := []byte(strings.Join([]string{
		`aggregate "a" {`,
		`  path = "/a/{id}"`,
		`  call "user" {`,
		`    service     = "users"`,
		`    path        = "/users/{id}"`,
		`    cache       = true`,
		`    hedge_after = "50ms"`,
		`  }`,
		`  call "order" {`,
		`    service = "orders"`,
		`    path    = "/orders?account={user.account.id}"`,
		`    after   = ["user"]`,
		`    method  = "put"`,
		`    body    = "client"`,
		`  }`,
		`}`,
	}, "\n"))
	d, err := config.Parse("k", src, 1)
	if err != nil {
		t.Fatal(err)
	}
	u, o := d.Aggregates[0].Calls[0], d.Aggregates[0].Calls[1]
	if !u.Cache || u.HedgeAfter.Milliseconds() != 50 || u.CallMethod() != "GET" {
		t.Errorf("user %+v", u)
	}
	if len(o.After) != 1 || o.After[0] != "user" || o.Method != "PUT" || o.Body != config.BodyClient {
		t.Errorf("order %+v", o)
	}
}

// TestParseCallPlanErrors: every rule on after, method, body, cache and
// hedge_after, each reported where it is broken.
func TestParseCallPlanErrors(t *testing.T) {
	agg := func(lines ...string) []byte {
		return []byte(strings.Join(append(append([]string{`aggregate "a" {`, `  path = "/a/{id}"`}, lines...), `}`), "\n"))
	}
	call := func(name string, attrs ...string) []string {
		out := []string{`  call "` + name + `" {`, `    service = "s"`}
		for _, a := range attrs {
			out = append(out, "    "+a)
		}
		return append(out, `  }`)
	}
	cases := []struct {
		name string
		src  []byte
		want []string
	}{
		{"cycle", agg(append(append(
			call("x", `path = "/x"`, `after = "z"`),
			call("y", `path = "/y"`, `after = "x"`)...),
			call("z", `path = "/z"`, `after = ["y"]`)...)...),
			[]string{`k:6:13: call after: the calls wait for each other in a cycle: x → z → y → x`}},
		{"unknown", agg(call("x", `path = "/x"`, `after = ["nobody"]`)...),
			[]string{`k:6:14: call after: no call named "nobody"`}},
		{"self", agg(call("x", `path = "/x"`, `after = "x"`)...),
			[]string{`k:6:13: call after: call "x" cannot wait for itself`}},
		{"ref not in after", agg(append(call("x", `path = "/x"`), call("y", `path = "/y/{x.id}"`)...)...),
			[]string{`k:9:12: path: {x.id} uses call "x"'s answer, but "x" is not in the call's after`}},
		{"method", agg(call("x", `path = "/x"`, `method = "TRACE"`)...),
			[]string{`k:6:14: call method must be one of GET, POST, PUT, PATCH, DELETE, got "TRACE"`}},
		{"body on get", agg(call("x", `path = "/x"`, `body = "client"`)...),
			[]string{`k:6:12: call body needs a method that carries a body`}},
		{"body template", agg(call("x", `path = "/x"`, `method = "POST"`, `body = "{}"`)...),
			[]string{`k:7:12: call body must be "client"`}},
		{"two bodies", agg(append(
			call("x", `path = "/x"`, `method = "POST"`, `body = "client"`),
			call("y", `path = "/y"`, `method = "POST"`, `body = "client"`)...)...),
			[]string{`k:13:12: call body: only one call may forward the client's body (call "x" already does)`}},
		{"retried post", agg(call("x", `path = "/x"`, `method = "POST"`, `retries = 1`)...),
			[]string{`k:7:15: call retries: a POST call is never retried`}},
		{"hedged write", agg(call("x", `path = "/x"`, `method = "DELETE"`, `hedge_after = "10ms"`)...),
			[]string{`k:7:19: call hedge_after applies to GET calls only`}},
		{"hedge after timeout", agg(call("x", `path = "/x"`, `timeout = "10ms"`, `hedge_after = "10ms"`)...),
			[]string{`k:7:19: call hedge_after 10ms must be shorter than the call's timeout 10ms`}},
		{"cached write", agg(call("x", `path = "/x"`, `method = "PUT"`, `cache = true`)...),
			[]string{`k:7:13: call cache applies to GET calls only`}},
		{"cached per-user answers", agg(append([]string{`  jwt {`, `    algorithms = ["HS256"]`, `    secret_env = "S"`, `  }`},
			call("x", `path = "/x"`, `cache = true`)...)...),
			[]string{`k:10:13: call cache cannot be used in an aggregate with jwt or forward_auth`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { expectErrors(t, tc.src, tc.want) })
	}
}
