package config_test

import (
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
)

// TestDatacenterErrors lists the datacenter and failover rules with the
// position and start of each message.
func TestDatacenterErrors(t *testing.T) {
	long := strings.Repeat("d", config.MaxDatacenterName+1)
	tests := []struct {
		name string
		src  []byte
		want []string
	}{
		{"upper case", routeWith(`  path = "/x"`, `  service = "s"`, `  datacenter = "DC2"`),
			[]string{`k:4:16: datacenter must be a Consul datacenter name`}},
		{"dot", routeWith(`  path = "/x"`, `  service = "s"`, `  datacenter = "dc2.consul"`),
			[]string{`k:4:16: datacenter must be a Consul datacenter name`}},
		{"empty", routeWith(`  path = "/x"`, `  service = "s"`, `  datacenter = ""`),
			[]string{`k:4:16: datacenter must be a Consul datacenter name`}},
		{"too long", routeWith(`  path = "/x"`, `  service = "s"`, `  datacenter = "`+long+`"`),
			[]string{`k:4:16: datacenter must be a Consul datacenter name`}},
		{"no list", routeWith(`  path = "/x"`, `  service = "s"`, `  failover {}`),
			[]string{`k:4:3: failover needs datacenters`}},
		{"empty list", routeWith(`  path = "/x"`, `  service = "s"`, `  failover {`, `    datacenters = []`, `  }`),
			[]string{`k:5:19: failover datacenters must list at least one`}},
		{"too many", routeWith(`  path = "/x"`, `  service = "s"`, `  failover {`, `    datacenters = ["a", "b", "c", "d"]`, `  }`),
			[]string{`k:5:19: failover datacenters lists 4 datacenters; at most 3`}},
		{"bad name", routeWith(`  path = "/x"`, `  service = "s"`, `  failover {`, `    datacenters = ["a", "B"]`, `  }`),
			[]string{`k:5:25: failover datacenters: "B" is not a Consul datacenter name`}},
		{"twice", routeWith(`  path = "/x"`, `  service = "s"`, `  failover {`, `    datacenters = ["a", "a"]`, `  }`),
			[]string{`k:5:25: failover datacenters: "a" is listed twice`}},
		{"own datacenter", routeWith(`  path = "/x"`, `  service = "s"`, `  datacenter = "a"`, `  failover {`, `    datacenters = ["a"]`, `  }`),
			[]string{`k:6:20: failover datacenters: "a" is the route's own datacenter`}},
		{"with splits", routeWith(`  path = "/x"`, `  datacenter = "a"`, `  split {`, `    service = "s"`, `    weight = 1`, `  }`, `  failover {`, `    datacenters = ["b"]`, `  }`),
			[]string{`k:3:16: datacenter is not supported on a route with split blocks`, `k:8:3: failover is not supported on a route with split blocks`}},
		{"two blocks", routeWith(`  path = "/x"`, `  service = "s"`, `  failover {`, `    datacenters = ["a"]`, `  }`, `  failover {`, `    datacenters = ["b"]`, `  }`),
			[]string{`k:7:3: only one failover block is allowed`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("k", tt.src, 1)
			if err == nil {
				t.Fatal("document accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
	ok := routeWith(`  path = "/x"`, `  service = "s"`, `  datacenter = "dc-2_a"`, `  failover {`, `    datacenters = ["dc1", "dc3"]`, `  }`)
	if _, err := config.Parse("k", ok, 1); err != nil {
		t.Fatalf("valid document rejected: %v", err)
	}
}
