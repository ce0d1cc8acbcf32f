package config_test

import (
	"testing"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/config"
)

func TestParseAggregateBalancer(t *testing.T) {
	tests := []struct {
		name    string
		src     []byte
		want    string // Balancer when valid
		wantErr string
	}{
		{"default", aggWith(okCall), balancer.RoundRobin, ""},
		{"random", aggWith(`  balancer = "random"`, okCall), balancer.Random, ""},
		{"round_robin", aggWith(`  balancer = "round_robin"`, okCall), balancer.RoundRobin, ""},
		{"unknown", aggWith(`  balancer = "least_conn"`, okCall), "",
			`k:3:14: unknown balancer "least_conn" (want one of round_robin, random, least_request)`},
		{"not a string", aggWith(`  balancer = 1`, okCall), "", `k:3:14: balancer must be a string, got number`},
		{"not on calls", aggWith(`  call "c" {`, `    service = "s"`, `    path = "/x"`, `    balancer = "random"`, `  }`), "",
			`k:6:5: Unsupported argument; An argument named "balancer" is not expected here.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := config.Parse("k", tt.src, 1)
			switch {
			case tt.wantErr != "":
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case d.Aggregates[0].Balancer != tt.want:
				t.Fatalf("Balancer = %q, want %q", d.Aggregates[0].Balancer, tt.want)
			}
		})
	}
}
