package main

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"

	"github.com/hashicorp/go-hclog"
	"gopkg.in/yaml.v3"
)

// TestComposeCommandsUseRealFlags parses the demo containers' commands in
// the repository's docker-compose.yml with this program's own flag set: no
// Docker runs in CI, so this is what keeps the two in step.
func TestComposeCommandsUseRealFlags(t *testing.T) {
	src, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Build *struct {
				Target string `yaml:"target"`
			} `yaml:"build"`
			Command []string `yaml:"command"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(src, &c); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for name, s := range c.Services {
		if s.Build == nil || s.Build.Target != "demo-service" {
			continue
		}
		var o options
		fs := newFlagSet(&o)
		fs.SetOutput(io.Discard)
		if err := fs.Parse(s.Command); err != nil || fs.NArg() != 0 {
			t.Errorf("%s: command %v: %v (extra args %v)", name, s.Command, err, fs.Args())
			continue
		}
		if _, err := newHandler(o.name, o.id, hclog.NewNullLogger()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if host, port, err := net.SplitHostPort(o.listen); err != nil || host != "0.0.0.0" || port == "0" {
			t.Errorf("%s: -listen %q, want 0.0.0.0 and a fixed port inside a container", name, o.listen)
		}
		// Consul's health check and the gateway reach the container by its
		// compose service name.
		if o.advertise != name {
			t.Errorf("%s: -advertise %q, want the service name %q", name, o.advertise, name)
		}
		if other, dup := ids[o.id]; dup || o.id == "" {
			t.Errorf("%s: -id %q missing or shared with %s", name, o.id, other)
		}
		ids[o.id] = name
		if !o.register {
			t.Errorf("%s: -register is off; the gateway would never find it", name)
		}
	}
	if len(ids) != 4 {
		t.Errorf("%d demo containers, want 4 (users x2, orders, products)", len(ids))
	}
}

func TestAdvertiseHost(t *testing.T) {
	host := func() (string, error) { return "users-1", nil }
	noHost := func() (string, error) { return "", errors.New("no hostname") }
	tests := []struct {
		name, flag string
		listen     string
		hostname   func() (string, error)
		want       string
	}{
		{"flag wins", "10.1.2.3", "0.0.0.0:9000", host, "10.1.2.3"},
		{"concrete listen address", "", "127.0.0.1:9000", host, "127.0.0.1"},
		{"all interfaces: host name (container)", "", "0.0.0.0:9000", host, "users-1"},
		{"IPv6 any: host name", "", "[::]:9000", host, "users-1"},
		{"no host name: loopback", "", "0.0.0.0:9000", noHost, "127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, err := net.ResolveTCPAddr("tcp", tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			if got := advertiseHost(tc.flag, addr, tc.hostname); got != tc.want {
				t.Errorf("advertiseHost(%q, %s) = %q, want %q", tc.flag, tc.listen, got, tc.want)
			}
		})
	}
}
