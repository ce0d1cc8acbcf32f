package main

import "testing"

func TestSelfEntryAddresses(t *testing.T) {
	host := func() (string, error) { return "box", nil }
	tests := []struct {
		name                string
		flags               selfFlags
		public, admin       string
		wantAddr, wantCheck string
		wantID              string
	}{
		{"loopback defaults", selfFlags{name: "gateway"}, "127.0.0.1:8080", "127.0.0.1:8081",
			"127.0.0.1", "http://127.0.0.1:8081/health", "gateway-box-8080"},
		{"wildcard listen: node address, check on loopback admin", selfFlags{name: "gateway"}, "[::]:8080", "127.0.0.1:8081",
			"", "http://127.0.0.1:8081/health", "gateway-box-8080"},
		{"container: admin on all interfaces, check via advertise", selfFlags{name: "gw", advertise: "gateway"}, "0.0.0.0:8080", "0.0.0.0:8081",
			"gateway", "http://gateway:8081/health", "gw-box-8080"},
		{"nothing concrete: check on loopback", selfFlags{name: "gateway"}, "0.0.0.0:9000", "0.0.0.0:9001",
			"", "http://127.0.0.1:9001/health", "gateway-box-9000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := selfEntry(tc.flags, tc.public, tc.admin, host)
			if err != nil {
				t.Fatal(err)
			}
			if s.Address != tc.wantAddr || s.CheckURL != tc.wantCheck || s.ID != tc.wantID {
				t.Errorf("got address %q check %q id %q; want %q %q %q", s.Address, s.CheckURL, s.ID, tc.wantAddr, tc.wantCheck, tc.wantID)
			}
		})
	}
}
