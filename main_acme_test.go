package main

import (
	"bytes"
	"errors"
	"testing"
)

func TestServeRejectsBadACMEFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-acme-max-hosts", "0"}, {"-acme-renew-interval", "0"},
		{"-acme-prefix", "gateway/acme"}, {"-acme-challenges", "dns-01"},
		{"-acme-challenges", "http-01,"},
		// HTTP-01 alone with no plain listener to answer it.
		{"-listen", "", "-tls-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-consul", "127.0.0.1:1", "-acme-challenges", "http-01"},
	} {
		if err := run(args, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}
