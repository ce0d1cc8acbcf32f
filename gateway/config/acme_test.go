package config_test

import (
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
)

func TestACMERouteNeedsExactHost(t *testing.T) {
	route := func(lines ...string) []byte {
		return doc(append(append([]string{`route "r" {`, `  path_prefix = "/"`, `  service = "s"`}, lines...), `}`)...)
	}
	tests := []struct {
		name string
		src  []byte
		want []string
	}{
		{"no host", route(`  acme = true`), []string{`k:4:10: acme = true needs an exact "host"`}},
		{"template", route(`  acme = true`, `  host = "{sub}.example.com"`),
			[]string{`k:5:10: host "{sub}.example.com": not an exact DNS name an ACME CA can issue for: a template`}},
		{"wildcard", route(`  acme = true`, `  host = "*.example.com"`),
			[]string{`k:5:10: host "*.example.com": not an exact DNS name an ACME CA can issue for: a wildcard`}},
		{"port", route(`  acme = true`, `  host = "example.com:8443"`),
			[]string{`k:5:10: host "example.com:8443": not an exact DNS name an ACME CA can issue for: carries a port`}},
		{"ip", route(`  acme = true`, `  host = "10.0.0.1"`),
			[]string{`k:5:10: host "10.0.0.1": not an exact DNS name an ACME CA can issue for: an IP address`}},
		{"single label", route(`  acme = true`, `  host = "localhost"`),
			[]string{`k:5:10: host "localhost": not an exact DNS name an ACME CA can issue for: a single label`}},
		{"underscore", route(`  acme = true`, `  host = "a_b.example.com"`),
			[]string{`k:5:10: host "a_b.example.com": not an exact DNS name an ACME CA can issue for: "a_b.example.com" holds "_"`}},
		{"not a bool", route(`  acme = "yes"`, `  host = "a.example.com"`), []string{`k:4:10: acme must be a bool, got string`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expectErrors(t, tt.src, tt.want) })
	}
}

func TestACMERouteAccepted(t *testing.T) {
	d, err := config.Parse("k", doc(`route "r" {`, `  path_prefix = "/"`, `  service = "s"`, `  host = "api.example.com"`, `  acme = true`, `}`), 1)
	if err != nil {
		t.Fatal(err)
	}
	if r := d.Routes[0]; !r.ACME || r.Host != "api.example.com" {
		t.Errorf("route = %+v, want ACME for api.example.com", r)
	}
}
