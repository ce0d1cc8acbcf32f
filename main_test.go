package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"net"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestServeRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-log-level", "loud"}, {"extra"}, {"routes"}, {"routes", "frobnicate"},
		{"-max-conns", "-1"}, {"-idle-timeout", "0"}, {"-body-read-timeout", "0"},
		{"-h2-max-streams", "0"}, {"-h2-max-streams", "1001"},
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

// TestH2CProtocols: -h2c keeps HTTP/1.1 and adds HTTP/2 with prior
// knowledge, and leaves HTTP/2 by ALPN on for TLS; the HTTP/2 bounds
// apply whatever the listener.
func TestH2CProtocols(t *testing.T) {
	p := publicProtocols()
	if !p.HTTP1() || !p.UnencryptedHTTP2() || !p.HTTP2() {
		t.Errorf("-h2c protocols %v", p)
	}
	var f serveFlags
	if err := newServeFlagSet(&f, io.Discard).Parse([]string{"-h2-max-streams", "7", "-max-header-bytes", "4096"}); err != nil {
		t.Fatal(err)
	}
	srv := newServer(nil, hclog.NewNullLogger(), f)
	if srv.HTTP2 == nil || srv.HTTP2.MaxConcurrentStreams != 7 || srv.MaxHeaderBytes != 4096 || srv.HTTP2.SendPingTimeout <= 0 {
		t.Errorf("server HTTP/2 settings %+v, max header bytes %d", srv.HTTP2, srv.MaxHeaderBytes)
	}
}
