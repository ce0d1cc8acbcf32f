package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"net"
	"testing"
)

func TestServeRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-log-level", "loud"}, {"extra"}, {"routes"}, {"routes", "frobnicate"},
		{"-max-conns", "-1"}, {"-idle-timeout", "0"}, {"-body-read-timeout", "0"},
		// The last-good state must not sit inside the routes prefix, nor
		// the other way round.
		{"-kv-prefix", "gateway/state/"}, {"-state-prefix", "gateway/routes/lastgood/"}} {
		if err := run(args, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}

// TestAdminListenerDefaultsToLoopback: /routes shows the topology, so out
// of the box only the gateway's own host may reach it.
func TestAdminListenerDefaultsToLoopback(t *testing.T) {
	var f serveFlags
	if err := newServeFlagSet(&f, io.Discard).Parse(nil); err != nil {
		t.Fatal(err)
	}
	host, _, err := net.SplitHostPort(f.admin)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Fatalf("default -admin %q is not a loopback address", f.admin)
	}
}

// TestFlagUsageNamesAreTypes: the flag package takes a back-quoted word
// in a usage string as the flag's argument name, so `-h` would print
// "-acme-ca acme = true" instead of "-acme-ca string".
func TestFlagUsageNamesAreTypes(t *testing.T) {
	var f serveFlags
	newServeFlagSet(&f, io.Discard).VisitAll(func(fl *flag.Flag) {
		name, _ := flag.UnquoteUsage(fl)
		switch name {
		case "", "string", "int", "float", "duration", "value", "uint":
		default:
			t.Errorf("-%s prints its argument as %q in -h", fl.Name, name)
		}
	})
}
