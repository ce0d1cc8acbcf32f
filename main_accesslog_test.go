package main

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// TestAccessLogFlagKeepsItsBooleanValues: -access-log was a boolean, so
// its true and false still mean stdout and off, beside a file path.
func TestAccessLogFlagKeepsItsBooleanValues(t *testing.T) {
	for arg, want := range map[string]string{"": "stdout", "-access-log=true": "stdout", "-access-log=false": "off",
		"-access-log=off": "off", "-access-log=stdout": "stdout", "-access-log=/var/log/gw.log": "/var/log/gw.log"} {
		var f serveFlags
		args := []string{arg}
		if arg == "" {
			args = nil
		}
		if err := newServeFlagSet(&f, io.Discard).Parse(args); err != nil {
			t.Fatal(err)
		}
		if f.accessLog.dest.v != want {
			t.Errorf("%q: -access-log %q, want %q", arg, f.accessLog.dest.v, want)
		}
	}
	for _, args := range [][]string{{"-access-log-format", "apache"}, {"-access-log-sample", "1.5"}, {"-access-log-sample", "-0.1"}} {
		if err := run(args, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}
