package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/internal/devcert"
)

// envOf is a lookup over a fixed environment.
func envOf(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestEnvNameIsDerivedFromTheFlag(t *testing.T) {
	for name, want := range map[string]string{
		"listen":                 "GATEWAY_LISTEN",
		"max-tunnels-per-client": "GATEWAY_MAX_TUNNELS_PER_CLIENT",
		"h2c":                    "GATEWAY_H2C",
	} {
		if got := envName(name); got != want {
			t.Errorf("envName(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestEveryFlagHasItsOwnVariable: variables are derived, so a new flag
// gets one; two flags must never share one.
func TestEveryFlagHasItsOwnVariable(t *testing.T) {
	var f serveFlags
	seen := map[string]string{}
	newServeFlagSet(&f, io.Discard).VisitAll(func(fl *flag.Flag) {
		v := envName(fl.Name)
		if other, dup := seen[v]; dup {
			t.Errorf("-%s and -%s share %s", fl.Name, other, v)
		}
		seen[v] = fl.Name
	})
}

// TestEnvFillsFlagsTheCommandLineWins checks the precedence: command line
// over variable over default, a repeatable flag taking the command line's
// values only, and an empty variable counting as unset.
func TestEnvFillsFlagsTheCommandLineWins(t *testing.T) {
	var f serveFlags
	fs := newServeFlagSet(&f, io.Discard)
	env := envOf(map[string]string{
		"GATEWAY_LISTEN":        "127.0.0.1:9",
		"GATEWAY_ADMIN":         "127.0.0.1:1",
		"GATEWAY_LOG_JSON":      "true",
		"GATEWAY_MAX_CONNS":     "7",
		"GATEWAY_TLS_CERT":      "env.pem",
		"GATEWAY_KV_PREFIX":     "",
		"GATEWAY_DRAIN_TIMEOUT": "3s",
	})
	args := []string{"-admin", "127.0.0.1:2", "-tls-cert", "a.pem", "-tls-key", "a.key", "-max-conns", "9"}
	if err := parseArgs(fs, args, env); err != nil {
		t.Fatal(err)
	}
	if f.listen != "127.0.0.1:9" || !f.logJSON || f.drain.String() != "3s" {
		t.Errorf("from the environment: listen %q log-json %v drain %v", f.listen, f.logJSON, f.drain)
	}
	if f.admin != "127.0.0.1:2" || f.maxConns != 9 {
		t.Errorf("the command line lost: admin %q max-conns %d", f.admin, f.maxConns)
	}
	if got := fs.Lookup("tls-cert").Value.String(); strings.Contains(got, "env.pem") {
		t.Errorf("-tls-cert %s: the variable added to the command line's value", got)
	}
	if f.prefix != "gateway/routes/" {
		t.Errorf("empty GATEWAY_KV_PREFIX changed -kv-prefix to %q", f.prefix)
	}
}

func TestEnvBadValueIsAUsageErrorNamingTheVariable(t *testing.T) {
	var f serveFlags
	err := parseArgs(newServeFlagSet(&f, io.Discard), nil, envOf(map[string]string{"GATEWAY_MAX_CONNS": "many"}))
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "GATEWAY_MAX_CONNS") || !strings.Contains(err.Error(), "-max-conns") || exitCode(err) != 2 {
		t.Fatalf("err %v (exit %d), want a usage error naming GATEWAY_MAX_CONNS and -max-conns", err, exitCode(err))
	}
}

// TestHelpGroupsEveryFlagOnce reads gateway -h: exit 0, on stdout, every
// flag listed once with its variable, under its topic.
func TestHelpGroupsEveryFlagOnce(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run([]string{"-h"}, &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) || exitCode(err) != 0 || stderr.Len() != 0 {
		t.Fatalf("gateway -h: %v (exit %d), stderr %q", err, exitCode(err), stderr.String())
	}
	out := stdout.String()
	var f serveFlags
	newServeFlagSet(&f, io.Discard).VisitAll(func(fl *flag.Flag) {
		if n := strings.Count(out, "\n  -"+fl.Name+" ") + strings.Count(out, "\n  -"+fl.Name+"\n"); n != 1 {
			t.Errorf("-%s listed %d times", fl.Name, n)
		}
		if !strings.Contains(out, "[env "+envName(fl.Name)+"]") {
			t.Errorf("-%s: no %s in the help", fl.Name, envName(fl.Name))
		}
	})
	last := -1
	for _, topic := range []string{"Listeners and limits:", "Consul:", "Routing and policies:", "TLS:", "ACME:", "Connect (service mesh):", "Logging and tracing:"} {
		i := strings.Index(out, "\n"+topic+"\n")
		if i < last {
			t.Errorf("topic %q missing or out of order", topic)
		}
		last = i
	}
	if i, j := strings.Index(out, "\nTLS:\n"), strings.Index(out, "  -tls-listen "); j < i || i < 0 {
		t.Error("-tls-listen is not under TLS")
	}
	if got := topicOf("some-new-flag"); got != "Other" {
		t.Errorf("an unclaimed flag is under %q, want Other", got)
	}
}

// TestSubcommandHelp: help for each command exits 0 and never treats -h
// as a file name.
func TestSubcommandHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"routes", "validate", "-h"}, "Usage: gateway routes validate DIR|FILE..."},
		{[]string{"routes", "validate", "a.hcl", "--help"}, "Usage: gateway routes validate DIR|FILE..."},
		{[]string{"check", "-h"}, "[env GATEWAY_CERT_WARN]"},
		{[]string{"check", "-consul", "x", "--help"}, "Usage: gateway check"},
		{[]string{"health", "-h"}, "[env GATEWAY_ADMIN]"},
		{[]string{"help", "health"}, "Usage: gateway health"},
		{[]string{"routes", "push", "-h"}, "[env GATEWAY_CAS]"},
		{[]string{"routes", "-h"}, "gateway routes COMMAND -h"},
		{[]string{"version", "-h"}, "Usage: gateway version"},
		{[]string{"help"}, "Listeners and limits:"},
		{[]string{"help", "routes", "push"}, "  -kv-prefix string"},
		{[]string{"-help"}, "Listeners and limits:"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(tc.args, &stdout, &stderr)
		if exitCode(err) != 0 || !strings.Contains(stdout.String(), tc.want) || stderr.Len() != 0 {
			t.Errorf("gateway %q: %v (exit %d), stdout %q, stderr %q; want %q", tc.args, err, exitCode(err), stdout.String(), stderr.String(), tc.want)
		}
	}
	if err := run([]string{"help", "bogus"}, io.Discard, io.Discard); !errors.Is(err, errUsage) {
		t.Errorf("gateway help bogus: %v, want a usage error", err)
	}
	if err := run([]string{"-bogus"}, io.Discard, io.Discard); !errors.Is(err, errUsage) || exitCode(err) != 2 {
		t.Errorf("gateway -bogus: %v, want a usage error (exit 2)", err)
	}
}

func TestVersionReadsBuildInfo(t *testing.T) {
	fake := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"},
		}}, true
	}
	b := readBuildInfo(fake)
	if b.Version != "v1.2.3" || b.Revision != "abc123" || !b.Modified || b.GoVersion != "go1.99" || b.revisionLabel() != "abc123-dirty" {
		t.Fatalf("build info %+v, label %q", b, b.revisionLabel())
	}
	var out bytes.Buffer
	b.write(&out)
	if want := "gateway v1.2.3\nrevision abc123-dirty (2026-01-02T03:04:05Z)\ngo1.99 "; !strings.HasPrefix(out.String(), want) {
		t.Errorf("version output %q, want it to start with %q", out.String(), want)
	}
	none := readBuildInfo(func() (*debug.BuildInfo, bool) { return nil, false })
	if none.Version != "(unknown)" || none.revisionLabel() != "" || none.GoVersion == "" {
		t.Errorf("without build info: %+v", none)
	}
	var stdout bytes.Buffer
	for _, arg := range []string{"version", "-version", "--version"} {
		stdout.Reset()
		if err := run([]string{arg}, &stdout, io.Discard); err != nil || !strings.HasPrefix(stdout.String(), "gateway ") {
			t.Errorf("gateway %s: %v, %q", arg, err, stdout.String())
		}
	}
	if err := run([]string{"version", "extra"}, io.Discard, io.Discard); !errors.Is(err, errUsage) {
		t.Errorf("gateway version extra: %v, want a usage error", err)
	}
}

// TestUnknownCommandIsNamed: a mistyped command is called one, with the
// commands listed, not "unexpected argument"; a stray word after flags
// still is one.
func TestUnknownCommandIsNamed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rotues", "validate", "routes.hcl"}, `unknown command "rotues" (commands: version, routes validate`},
		{[]string{"-listen", "127.0.0.1:0", "extra"}, `unexpected argument "extra"`},
	} {
		var stdout, stderr bytes.Buffer
		err := run(tc.args, &stdout, &stderr)
		if exitCode(err) != 2 || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("gateway %v: %v (exit %d), want exit 2 and %q", tc.args, err, exitCode(err), tc.want)
		}
	}
}

// TestTakenListenerNamesItsFlag: "address already in use" names the flag
// and variable that move the listener, for each of the three.
func TestTakenListenerNamesItsFlag(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	taken := busy.Addr().String()
	certPEM, keyPEM, err := devcert.Generate(devcert.Options{Names: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	free := []string{"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-consul", "127.0.0.1:1",
		"-tls-listen", "127.0.0.1:0", "-tls-cert", writeFile(t, "c.pem", string(certPEM)), "-tls-key", writeFile(t, "k.pem", string(keyPEM))}
	for _, name := range []string{"listen", "admin", "tls-listen"} {
		args := slices.Clone(free)
		args[slices.Index(args, "-"+name)+1] = taken
		var stdout, stderr bytes.Buffer
		err := run(args, &stdout, &stderr)
		want := "-" + name + " (" + envName(name) + "): listen tcp " + taken
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("-%s on a taken port: %v, want %q", name, err, want)
		}
	}
}
