package main

import (
	"bytes"
	"errors"
	"testing"
)

func TestServeRejectsBadTLSFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-listen", ""}, // no listener at all
		{"-tls-cert", "a.crt"},
		{"-tls-listen", ":0", "-tls-cert", "a.crt", "-tls-key", "a.key", "-tls-cert", "b.crt"},
		{"-tls-listen", ":0", "-tls-poll-interval", "0"},
		{"-hsts-max-age", "-1s"},
		{"-https-port", "http"},
		{"-https-port", "70000"},
	} {
		if err := run(args, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}
