package config_test

import (
	"testing"
)

// routeWith wraps attribute lines in a route block that is otherwise valid
// only if the lines make it so; the lines start on line 2.
func routeWith(lines ...string) []byte {
	return doc(append(append([]string{`route "r" {`}, lines...), `}`)...)
}

// TestParseErrors lists every rule with the exact position and the start of
// the message of each error expected, in order.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  []byte
		want []string
	}{
		// Syntax and schema, reported by HCL with our positions.
		{"syntax error", routeWith(`  path = /x`, `  service = "s"`),
			[]string{`k:2:10: Invalid expression`}},
		{"unclosed block", doc(`route "r" {`, `  path = "/x"`),
			[]string{`k:1:11: Unclosed configuration block`}},
		{"unknown attribute", routeWith(`  path = "/x"`, `  service = "s"`, `  retry = 3`),
			[]string{`k:4:3: Unsupported argument; An argument named "retry"`}},
		{"unknown nested block", routeWith(`  path = "/x"`, `  service = "s"`, `  auth {}`),
			[]string{`k:4:3: Unsupported block type; Blocks of type "auth"`}},
		{"unknown top-level block", doc(`listener "x" {}`),
			[]string{`k:1:1: Unsupported block type; Blocks of type "listener"`}},
		{"top-level attribute", doc(`service = "s"`),
			[]string{`k:1:1: Unsupported argument; An argument named "service"`}},
		{"missing label", doc(`route {`, `  path = "/x"`, `  service = "s"`, `}`),
			[]string{`k:1:7: Missing name for route`}},
		{"extra label", doc(`route "a" "b" {`, `  path = "/x"`, `  service = "s"`, `}`),
			[]string{`k:1:11: Extraneous label for route`}},
		{"empty label", doc(`route "" {`, `  path = "/x"`, `  service = "s"`, `}`),
			[]string{`k:1:7: route name must not be empty`}},

		// Constant expressions only.
		{"variable", routeWith(`  path = "/x"`, `  service = var.name`),
			[]string{`k:3:13: Variables not allowed`}},
		{"interpolated variable", routeWith(`  path = "/x"`, `  service = "${name}"`),
			[]string{`k:3:16: Variables not allowed`}},
		{"function call", routeWith(`  path = lower("/X")`, `  service = "s"`),
			[]string{`k:2:10: Function calls not allowed`}},
		{"null", routeWith(`  path = "/x"`, `  service = null`),
			[]string{`k:3:13: service must not be null`}},
		{"wrong type", routeWith(`  path = "/x"`, `  service = 5`),
			[]string{`k:3:13: service must be a string, got number`}},

		// Required attributes.
		{"missing service", routeWith(`  path = "/x"`),
			[]string{`k:1:1: route "r": missing required attribute "service"`}},
		{"empty service", routeWith(`  path = "/x"`, `  service = ""`),
			[]string{`k:3:13: service must not be empty`}},

		// path and path_prefix.
		{"both path and path_prefix", routeWith(`  path = "/a"`, `  path_prefix = "/b"`, `  service = "s"`),
			[]string{`k:3:17: only one of "path" and "path_prefix" may be set`}},
		{"both, prefix first", routeWith(`  path_prefix = "/b"`, `  path = "/a"`, `  service = "s"`),
			[]string{`k:3:10: only one of "path" and "path_prefix" may be set`}},
		{"neither path nor path_prefix", routeWith(`  service = "s"`),
			[]string{`k:1:1: route "r": one of "path" or "path_prefix" is required`}},
		{"relative path", routeWith(`  path = "users"`, `  service = "s"`),
			[]string{`k:2:10: path must start with "/", got "users"`}},
		{"relative path_prefix", routeWith(`  path_prefix = ""`, `  service = "s"`),
			[]string{`k:2:17: path_prefix must start with "/", got ""`}},
		{"unbalanced path template", routeWith(`  path = "/u/{id"`, `  service = "s"`),
			[]string{`k:2:10: path: invalid template "/u/{id": mux: unbalanced braces`}},
		{"bad path regexp", routeWith(`  path = "/u/{id:[0-9}"`, `  service = "s"`),
			[]string{`k:2:10: path: invalid template "/u/{id:[0-9}": error parsing regexp`}},
		{"capturing group in path", routeWith(`  path = "/u/{id:(a|b)}"`, `  service = "s"`),
			[]string{`k:2:10: path: invalid template "/u/{id:(a|b)}": route /u/{id:(a|b)} contains capture groups`}},
		{"capturing group in host", routeWith(`  path = "/x"`, `  host = "{sub:(a|b)}.example.com"`, `  service = "s"`),
			[]string{`k:3:10: host: invalid template "{sub:(a|b)}.example.com": route {sub:(a|b)}.example.com contains capture groups`}},
		{"bad path_prefix template", routeWith(`  path_prefix = "/u/{id"`, `  service = "s"`),
			[]string{`k:2:17: path_prefix: invalid template "/u/{id"`}},

		// host.
		{"bad host template", routeWith(`  path = "/x"`, `  host = "{sub.example.com"`, `  service = "s"`),
			[]string{`k:3:10: host: invalid template "{sub.example.com"`}},
		{"empty host", routeWith(`  path = "/x"`, `  host = ""`, `  service = "s"`),
			[]string{`k:3:10: host must not be empty`}},

		// methods.
		{"invalid method", routeWith(`  path = "/x"`, `  methods = ["GET", "GE T"]`, `  service = "s"`),
			[]string{`k:3:21: methods: "GE T" is not a valid HTTP method`}},
		{"unknown method", routeWith(`  path = "/x"`, `  methods = ["GET", "gte", "PROPFIND"]`, `  service = "s"`),
			[]string{`k:3:21: methods: "gte" is not an HTTP method (known: GET, HEAD`}},
		{"empty method", routeWith(`  path = "/x"`, `  methods = [""]`, `  service = "s"`),
			[]string{`k:3:14: methods: "" is not a valid HTTP method`}},
		{"empty methods", routeWith(`  path = "/x"`, `  methods = []`, `  service = "s"`),
			[]string{`k:3:13: methods must not be empty`}},
		{"methods not a list", routeWith(`  path = "/x"`, `  methods = "GET"`, `  service = "s"`),
			[]string{`k:3:13: methods must be a list of strings, got string`}},
		{"method not a string", routeWith(`  path = "/x"`, `  methods = ["GET", 1]`, `  service = "s"`),
			[]string{`k:3:21: methods must be a list of strings, element 1 is number`}},

		// The rest of the attributes.
		{"empty tag", routeWith(`  path = "/x"`, `  service = "s"`, `  tag = ""`),
			[]string{`k:4:9: tag must not be empty`}},
		{"relative strip_prefix", routeWith(`  path = "/x"`, `  service = "s"`, `  strip_prefix = "api"`),
			[]string{`k:4:18: strip_prefix must start with "/", got "api"`}},
		{"unknown balancer", routeWith(`  path = "/x"`, `  service = "s"`, `  balancer = "least_conn"`),
			[]string{`k:4:14: unknown balancer "least_conn" (want one of round_robin, random, least_request)`}},
		{"unparsable timeout", routeWith(`  path = "/x"`, `  service = "s"`, `  timeout = "5 sec"`),
			[]string{`k:4:13: timeout: invalid duration "5 sec"`}},
		{"zero timeout", routeWith(`  path = "/x"`, `  service = "s"`, `  timeout = "0s"`),
			[]string{`k:4:13: timeout must be positive, got "0s"`}},
		{"negative timeout", routeWith(`  path = "/x"`, `  service = "s"`, `  timeout = "-1s"`),
			[]string{`k:4:13: timeout must be positive, got "-1s"`}},
		{"numeric timeout", routeWith(`  path = "/x"`, `  service = "s"`, `  timeout = 5`),
			[]string{`k:4:13: timeout must be a string, got number`}},
		{"idle timeout over a day", routeWith(`  path = "/x"`, `  service = "s"`, `  idle_timeout = "25h"`),
			[]string{`k:4:18: idle_timeout must be at most 24h0m0s, got 25h0m0s`}},
		{"zero idle timeout", routeWith(`  path = "/x"`, `  service = "s"`, `  idle_timeout = "0s"`),
			[]string{`k:4:18: idle_timeout must be positive, got "0s"`}},

		{"unknown protocol", routeWith(`  path = "/x"`, `  service = "s"`, `  protocol = "grpc"`),
			[]string{`k:4:14: protocol must be one of http, h2c, https, got "grpc"`}},
		{"upstream_tls without https", routeWith(`  path = "/x"`, `  service = "s"`, `  protocol = "h2c"`, `  upstream_tls {`, `    ca_file = "/ca.pem"`, `  }`),
			[]string{`k:5:3: upstream_tls needs protocol = "https"`}},
		{"empty ca_file", routeWith(`  path = "/x"`, `  service = "s"`, `  protocol = "https"`, `  upstream_tls {`, `    ca_file = ""`, `  }`),
			[]string{`k:6:15: ca_file must not be empty`}},
		{"server_name with a port", routeWith(`  path = "/x"`, `  service = "s"`, `  protocol = "https"`, `  upstream_tls {`, `    server_name = "a:443"`, `  }`),
			[]string{`k:6:19: server_name must be a host name, got "a:443"`}},

		{"non-boolean case_insensitive", routeWith(`  path = "/x"`, `  service = "s"`, `  case_insensitive = "yes"`),
			[]string{`k:4:22: case_insensitive must be a bool, got string`}},

		// Rules spanning routes of one document.
		{"duplicate route name", doc(
			`route "r" {`, `  path = "/a"`, `  service = "s"`, `}`,
			`route "r" {`, `  path = "/b"`, `  service = "s"`, `}`),
			[]string{`k:5:7: route name "r" already defined at 1:1`}},
		{"identical matchers", doc(
			`route "a" {`, `  path = "/x"`, `  methods = ["get", "POST"]`, `  service = "s"`, `}`,
			`route "b" {`, `  path = "/x"`, `  methods = ["POST", "GET"]`, `  service = "t"`, `}`),
			[]string{`k:6:1: route "b" matches the same requests as route "a" at 1:1`}},
		{"case-insensitive matchers differing in case", doc(
			`route "a" {`, `  path_prefix = "/Admin/"`, `  case_insensitive = true`, `  service = "s"`, `}`,
			`route "b" {`, `  path_prefix = "/ADMIN/"`, `  case_insensitive = true`, `  service = "t"`, `}`),
			[]string{`k:6:1: route "b" matches the same requests as route "a" at 1:1`}},

		// Every problem is reported, in source order.
		{"several problems", doc(
			`route "a" {`, `  path = "x"`, `  balancer = "fastest"`, `}`,
			`route "b" {`, `  service = "s"`, `}`),
			[]string{
				`k:1:1: route "a": missing required attribute "service"`,
				`k:2:10: path must start with "/"`,
				`k:3:14: unknown balancer "fastest"`,
				`k:5:1: route "b": one of "path" or "path_prefix" is required`,
			}},
		// sticky and mirror.
		{"sticky without cookie", routeWith(`  path = "/x"`, `  service = "s"`, `  sticky {}`),
			[]string{`k:4:3: sticky: missing required attribute "cookie"`}},
		{"sticky bad cookie name", routeWith(`  path = "/x"`, `  service = "s"`, `  sticky { cookie = "a;b" }`),
			[]string{`k:4:21: sticky cookie must be a cookie name`}},
		{"sticky bad path", routeWith(`  path = "/x"`, `  service = "s"`, `  sticky {`, `    cookie = "c"`, `    path = "/a; Domain=x"`, `  }`),
			[]string{`k:6:12: sticky path must start with "/"`}},
		{"sticky bad same_site", routeWith(`  path = "/x"`, `  service = "s"`, `  sticky {`, `    cookie = "c"`, `    same_site = "loose"`, `  }`),
			[]string{`k:6:17: sticky same_site must be one of lax, strict, none`}},
		{"sticky max_age too short", routeWith(`  path = "/x"`, `  service = "s"`, `  sticky {`, `    cookie = "c"`, `    max_age = "10ms"`, `  }`),
			[]string{`k:6:15: sticky max_age must be between 1s`}},
		{"two sticky blocks", routeWith(`  path = "/x"`, `  service = "s"`, `  sticky { cookie = "a" }`, `  sticky { cookie = "b" }`),
			[]string{`k:5:3: only one sticky block is allowed`}},
		{"mirror without service", routeWith(`  path = "/x"`, `  service = "s"`, `  mirror { percent = 5 }`),
			[]string{`k:4:3: mirror: missing required attribute "service"`}},
		{"mirror percent zero", routeWith(`  path = "/x"`, `  service = "s"`, `  mirror {`, `    service = "m"`, `    percent = 0`, `  }`),
			[]string{`k:6:15: mirror percent must be above 0 and at most 100, got 0`}},
		{"mirror percent above 100", routeWith(`  path = "/x"`, `  service = "s"`, `  mirror {`, `    service = "m"`, `    percent = 100.5`, `  }`),
			[]string{`k:6:15: mirror percent must be above 0 and at most 100, got 100.5`}},
		{"mirror max_concurrency", routeWith(`  path = "/x"`, `  service = "s"`, `  mirror {`, `    service = "m"`, `    max_concurrency = 0`, `  }`),
			[]string{`k:6:23: mirror max_concurrency must be between 1 and 1024, got 0`}},
		{"five mirrors", routeWith(`  path = "/x"`, `  service = "s"`, `  mirror { service = "a" }`, `  mirror { service = "b" }`,
			`  mirror { service = "c" }`, `  mirror { service = "d" }`, `  mirror { service = "e" }`),
			[]string{`k:8:3: at most 4 mirror blocks are allowed in a route`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectErrors(t, tt.src, tt.want)
		})
	}
}
