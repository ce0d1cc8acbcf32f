package config_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway/config"
)

func TestParseAggregatePolicies(t *testing.T) {
	d, err := config.Parse("k", doc(
		`aggregate "dash" {`,
		`  path = "/d/{id}"`,
		`  rate_limit {`,
		`    requests_per_second = 5`,
		`  }`,
		`  jwt {`,
		`    algorithms = ["HS256"]`,
		`    secret_env = "S"`,
		`  }`,
		`  call "user" {`,
		`    service = "users"`,
		`    path    = "/users/{id}"`,
		`    retries = 2`,
		`    circuit_breaker {`,
		`      failure_ratio = 0.5`,
		`      min_requests  = 5`,
		`      open_timeout  = "10s"`,
		`    }`,
		`  }`,
		`}`), 1)
	if err != nil {
		t.Fatal(err)
	}
	ag := d.Aggregates[0]
	if ag.Policy.RateLimit == nil || ag.Policy.RateLimit.RequestsPerSecond != 5 || ag.Policy.JWT == nil {
		t.Errorf("aggregate admission policy = %+v", ag.Policy)
	}
	c := ag.Calls[0].Policy
	if c.Retries != 2 || c.CircuitBreaker == nil || c.CircuitBreaker.MinRequests != 5 {
		t.Errorf("call upstream policy = %+v", c)
	}
}

func TestParseAggregateAppliesDefaultsAndKeepsCallOrder(t *testing.T) {
	src := doc(
		`aggregate "dash" {`,
		`  path    = "/api/dashboard/{id:[0-9]+}"`,
		`  methods = ["get"]`,
		`  timeout = "2s"`,
		`  forward_headers = ["x-tenant"]`,
		`  call "user" {`,
		`    service  = "users"`,
		`    path     = "/users/{id}"`,
		`    required = true`,
		`  }`,
		`  call "orders" {`,
		`    service = "orders"`,
		`    tag     = "v2"`,
		`    path    = "/orders?user={id}&since={query.since}"`,
		`    timeout = "800ms"`,
		`  }`,
		`}`,
	)
	d, err := config.Parse("k", src, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []config.Aggregate{{
		Name: "dash", SourceKey: "k", Pos: config.Pos{Key: "k", Line: 1, Column: 1},
		Path: "/api/dashboard/{id:[0-9]+}", Methods: []string{"GET"}, Timeout: 2 * time.Second,
		TimeoutStatus: 408, MaxConcurrency: 2, MaxResponseBytes: 10 << 20, ForwardHeaders: []string{"X-Tenant"},
		Balancer: "round_robin", BusinessStatus: 200,
		Calls: []config.Call{
			{Name: "user", Service: "users", Path: "/users/{id}", Required: true, Pos: config.Pos{Key: "k", Line: 6, Column: 3},
				Shape: config.Shape{Group: "user"}},
			{Name: "orders", Service: "orders", Tag: "v2", Path: "/orders?user={id}&since={query.since}",
				Timeout: 800 * time.Millisecond, Pos: config.Pos{Key: "k", Line: 11, Column: 3}, Shape: config.Shape{Group: "orders"}},
		},
	}}
	if !reflect.DeepEqual(d.Aggregates, want) {
		t.Fatalf("got  %+v\nwant %+v", d.Aggregates, want)
	}
}

// aggWith wraps lines in an aggregate block on path /d/{id}; the lines
// start on line 3.
func aggWith(lines ...string) []byte {
	return doc(append(append([]string{`aggregate "a" {`, `  path = "/d/{id}"`}, lines...), `}`)...)
}

// okCall is a valid four-line call block.
const okCall = "  call \"c\" {\n    service = \"s\"\n    path = \"/x/{id}\"\n  }"

func TestParseAggregateErrors(t *testing.T) {
	tests := []struct {
		name string
		src  []byte
		want []string
	}{
		{"no calls", aggWith(), []string{`k:1:1: aggregate "a": at least one "call" block is required`}},
		{"missing path", doc(`aggregate "a" {`, okCall, `}`),
			[]string{`k:1:1: aggregate "a": missing required attribute "path"`}},
		{"bad template", doc(`aggregate "a" {`, `  path = "/d/{id"`, okCall, `}`),
			[]string{`k:2:10: path: invalid template "/d/{id"`}},
		{"unknown variable", aggWith(`  call "c" {`, `    service = "s"`, `    path = "/x/{idd}"`, `  }`),
			[]string{`k:5:12: path: {idd} is not a variable of the aggregate's path (have {id}, {query.NAME}`}},
		{"empty query name", aggWith(`  call "c" {`, `    service = "s"`, `    path = "/x?q={query.}"`, `  }`),
			[]string{`k:5:12: path: placeholder {query.} names no query parameter`}},
		{"unclosed placeholder", aggWith(`  call "c" {`, `    service = "s"`, `    path = "/x/{id"`, `  }`),
			[]string{`k:5:12: path: malformed call path: unclosed '{'`}},
		{"regex in call placeholder", aggWith(`  call "c" {`, `    service = "s"`, `    path = "/x/{id:[0-9]+}"`, `  }`),
			[]string{`k:5:12: path: malformed call path: invalid placeholder {id:[0-9]+}`}},
		{"relative call path", aggWith(`  call "c" {`, `    service = "s"`, `    path = "x"`, `  }`),
			[]string{`k:5:12: path must start with "/", got "x"`}},
		{"call without service", aggWith(`  call "c" {`, `    path = "/x"`, `  }`),
			[]string{`k:3:3: call "c": missing required attribute "service"`}},
		{"duplicate call", aggWith(okCall, `  call "c" {`, `    service = "s"`, `    path = "/y"`, `  }`),
			[]string{`k:7:8: call name "c" already defined at 3:3`}},
		{"reserved call name", aggWith(`  call "errors" {`, `    service = "s"`, `    path = "/y"`, `  }`),
			[]string{`k:3:8: call name "errors" is reserved`}},
		{"timeout_status not an error status", aggWith(`  timeout_status = 200`, okCall),
			[]string{`k:3:20: timeout_status must be a 4xx or 5xx status, got 200`}},
		{"timeout_status out of range", aggWith(`  timeout_status = 600`, okCall),
			[]string{`k:3:20: timeout_status must be a 4xx or 5xx status, got 600`}},
		{"call timeout above aggregate timeout", aggWith(`  timeout = "1s"`, `  call "c" {`, `    service = "s"`, `    path = "/x"`, `    timeout = "2s"`, `  }`),
			[]string{`k:7:15: call timeout 2s exceeds the aggregate's timeout 1s`}},
		{"zero max_concurrency", aggWith(`  max_concurrency = 0`, okCall),
			[]string{`k:3:21: max_concurrency must be at least 1, got 0`}},
		{"zero max_response_bytes", aggWith(`  max_response_bytes = 0`, okCall),
			[]string{`k:3:24: max_response_bytes must be at least 1, got 0`}},
		{"bad forward header", aggWith(`  forward_headers = ["X Bad"]`, okCall),
			[]string{`k:3:22: forward_headers: "X Bad" is not a valid header name`}},
		{"required not a bool", aggWith(`  call "c" {`, `    service = "s"`, `    path = "/x"`, `    required = "yes"`, `  }`),
			[]string{`k:6:16: required must be a bool, got string`}},
		{"unknown call attribute", aggWith(`  call "c" {`, `    service = "s"`, `    path = "/x"`, `    weight = 2`, `  }`),
			[]string{`k:6:5: Unsupported argument; An argument named "weight"`}},
		{"admission blocks belong to the aggregate, not its calls", aggWith(`  call "c" {`, `    service = "s"`, `    path = "/x"`, `    jwt {`, `    }`, `  }`),
			[]string{`k:6:5: Unsupported block type; Blocks of type "jwt"`}},
		{"upstream protection belongs to calls, not the aggregate", aggWith(`  retries = 2`, okCall),
			[]string{`k:3:3: Unsupported argument; An argument named "retries"`}},
		{"a call's retries are validated like a route's", aggWith(`  call "c" {`, `    service = "s"`, `    path = "/x"`, `    retries = -1`, `  }`),
			[]string{`k:6:15: retries must be between 0 and`}},
		{"name shared with a route", doc(
			`route "a" {`, `  path = "/r"`, `  service = "s"`, `}`,
			`aggregate "a" {`, `  path = "/d/{id}"`, okCall, `}`),
			[]string{`k:5:11: aggregate name "a" already defined by route at 1:1`}},
		{"same matcher as a route", doc(
			`route "r" {`, `  path = "/d/{id}"`, `  service = "s"`, `}`,
			`aggregate "a" {`, `  path = "/d/{id}"`, okCall, `}`),
			[]string{`k:5:1: aggregate "a" matches the same requests as route "r" at 1:1`}},
		{"same matcher as another aggregate", doc(
			`aggregate "a" {`, `  path = "/d/{id}"`, okCall, `}`,
			`aggregate "b" {`, `  path = "/d/{id}"`, okCall, `}`),
			[]string{`k:8:1: aggregate "b" matches the same requests as aggregate "a" at 1:1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectErrors(t, tt.src, tt.want)
		})
	}
}

func TestParseCallPathMarksQueryPlaceholders(t *testing.T) {
	got, err := config.ParseCallPath("/u/{id}/x?a={id}&b={query.q}")
	if err != nil {
		t.Fatal(err)
	}
	want := []config.PathPart{
		{Literal: "/u/"}, {Var: "id"}, {Literal: "/x?a="}, {Var: "id", InQuery: true},
		{Literal: "&b="}, {Var: "query.q", InQuery: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestResolveAggregateConflictsAcrossKeys(t *testing.T) {
	route := func(key string, idx uint64) *config.Document {
		d, err := config.Parse(key, doc(`route "dash" {`, `  path = "/d/{id}"`, `  service = "s"`, `}`), idx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	agg := func(key string, idx uint64, name string) *config.Document {
		d, err := config.Parse(key, doc(`aggregate "`+name+`" {`, `  path = "/d/{id}"`, okCall, `}`), idx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	tests := []struct {
		name string
		b    *config.Document
		want string
	}{
		{"same name", agg("b", 2, "dash"), `b:1:1: aggregate name "dash" already defined in a at 1:1`},
		{"same matcher", agg("b", 2, "other"), `b:1:1: aggregate "other" matches the same requests as route "dash" in a at 1:1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc, errs := config.Resolve([]config.Candidate{{Key: "a", Current: route("a", 1)}, {Key: "b", Current: tt.b}})
			if acc["a"] == nil || acc["b"] != nil {
				t.Fatalf("accepted %v, want only a", acc)
			}
			if len(errs["b"]) == 0 || errs["b"][0].Error() != tt.want {
				t.Fatalf("errors of b: %v\nwant first %q", errs["b"], tt.want)
			}
		})
	}
}
