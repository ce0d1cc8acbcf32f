package config_test

import (
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
)

// TestConnectErrors lists what a connect route refuses, with positions.
func TestConnectErrors(t *testing.T) {
	tests := []struct {
		name string
		src  []byte
		want string
	}{
		{"protocol", routeWith(`  path = "/x"`, `  service = "s"`, `  connect = true`, `  protocol = "h2c"`),
			`k:4:13: connect = true needs protocol = "http"`},
		{"https", routeWith(`  path = "/x"`, `  service = "s"`, `  connect = true`, `  protocol = "https"`),
			`k:4:13: connect = true needs protocol = "http"`},
		{"splits", routeWith(`  path = "/x"`, `  connect = true`, `  split {`, `    service = "s"`, `    weight = 1`, `  }`),
			`k:3:13: connect = true cannot be used with split blocks`},
		{"datacenter", routeWith(`  path = "/x"`, `  service = "s"`, `  connect = true`, `  datacenter = "dc2"`),
			`k:4:13: connect = true reaches the local datacenter only`},
		{"failover", routeWith(`  path = "/x"`, `  service = "s"`, `  connect = true`, `  failover {`, `    datacenters = ["dc2"]`, `  }`),
			`k:4:13: connect = true reaches the local datacenter only`},
		{"not a bool", routeWith(`  path = "/x"`, `  service = "s"`, `  connect = "yes"`), `k:4:13:`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("k", tt.src, 1)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
	d, err := config.Parse("k", routeWith(`  path = "/x"`, `  service = "s"`, `  connect = true`, `  protocol = "http"`), 1)
	if err != nil || !d.Routes[0].Connect {
		t.Fatalf("valid connect route: %v, %+v", err, d)
	}
}
