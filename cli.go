package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// The command line's help and environment: every flag also reads a
// GATEWAY_* variable, derived from its name, and -h prints the flags
// grouped by topic. Both work from the flag sets alone, so a flag added
// anywhere gets its variable and its place in the help without more code.

// envPrefix starts every flag's environment variable.
const envPrefix = "GATEWAY_"

// envName is the variable of flag name: GATEWAY_ and the name upper-cased
// with dashes as underscores, -listen → GATEWAY_LISTEN.
func envName(name string) string {
	if scoped, ok := pushScoped[name]; ok {
		name = scoped
	}
	return envPrefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}

// pushScoped renames the variables of routes push's -key and -cas:
// GATEWAY_KEY is the kind of name an unrelated API key is exported under,
// and a stray one must not redirect a push to another key.
var pushScoped = map[string]string{"key": "push-key", "cas": "push-cas"}

// errEnv marks a GATEWAY_* variable whose value its flag refuses.
var errEnv = errors.New("environment")

// parseArgs parses args into fs, then fills every flag not given on the
// command line from its variable, if set and not empty: the command line
// beats the environment, which beats the default. Applying the variables
// after the command line keeps repeatable flags (-tls-cert) from adding
// the variable's value to the ones given.
// A command-line mistake is a usage error (exit 2), naming where the
// help is; fs itself prints nothing.
func parseArgs(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w (gateway -h lists the flags)", errUsage, err)
	}
	return applyEnv(fs, lookup)
}

// applyEnv sets each flag of fs that the command line did not set from
// its GATEWAY_* variable.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		v, ok := lookup(envName(f.Name))
		if !ok || v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("%w: %w: %s=%q (-%s): %w", errUsage, errEnv, envName(f.Name), v, f.Name, serr)
		}
	})
	return err
}

// helpTopic groups flags in -h: those named in names, then those whose
// name starts with one of prefixes.
type helpTopic struct {
	title    string
	names    []string
	prefixes []string
}

// helpTopics is the order of -h. A flag no topic claims is listed under
// "Other", so a new flag always shows.
var helpTopics = []helpTopic{
	{title: "Listeners and limits", names: []string{"listen", "admin", "h2c", "h2-max-streams", "max-conns", "max-header-bytes", "max-body-bytes",
		"read-header-timeout", "body-read-timeout", "idle-timeout", "drain-timeout", "max-tunnels", "max-tunnels-per-client"}},
	{title: "Consul", names: []string{"consul", "kv-prefix", "state-prefix", "register", "service-name", "advertise"}, prefixes: []string{"consul-"}},
	{title: "Routing and policies", names: []string{"panic-threshold", "trusted-proxies", "aggregate-max-bytes", "fabio-tags"}},
	{title: "TLS", names: []string{"cert-prefix", "https-redirect", "hsts-max-age", "https-port"}, prefixes: []string{"tls-"}},
	{title: "ACME", prefixes: []string{"acme-"}},
	{title: "Connect (service mesh)", names: []string{"connect"}, prefixes: []string{"connect-"}},
	{title: "Logging and tracing", names: []string{"log-level", "log-json", "access-log", "tracing"}, prefixes: []string{"log-", "access-log-", "trace-", "tracing-", "otel-"}},
}

// topicOf is the title of the topic flag name is listed under.
func topicOf(name string) string {
	for _, t := range helpTopics {
		if slices.Contains(t.names, name) {
			return t.title
		}
	}
	for _, t := range helpTopics {
		for _, p := range t.prefixes {
			if strings.HasPrefix(name, p) {
				return t.title
			}
		}
	}
	return "Other"
}

// printFlags writes fs's flags grouped by topic (grouped false: one
// list), each with its argument, default and variable.
func printFlags(w io.Writer, fs *flag.FlagSet, grouped bool) {
	byTopic := map[string][]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) {
		t := ""
		if grouped {
			t = topicOf(f.Name)
		}
		byTopic[t] = append(byTopic[t], f)
	})
	titles := []string{""}
	if grouped {
		titles = nil
		for _, t := range helpTopics {
			titles = append(titles, t.title)
		}
		titles = append(titles, "Other")
	}
	for _, t := range titles {
		flags := byTopic[t]
		if len(flags) == 0 {
			continue
		}
		if t != "" {
			fmt.Fprintf(w, "\n%s:\n", t)
		} else {
			fmt.Fprintln(w)
		}
		for _, f := range flags {
			printFlag(w, f)
		}
	}
}

// printFlag is one flag as flag.PrintDefaults writes it, plus its
// variable.
func printFlag(w io.Writer, f *flag.Flag) {
	arg, usage := flag.UnquoteUsage(f)
	line := "  -" + f.Name
	if arg != "" {
		line += " " + arg
	}
	fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
	if d := f.DefValue; d != "" && d != "0" && d != "0s" && d != "false" && d != "[]" {
		if arg == "string" {
			d = fmt.Sprintf("%q", d)
		}
		fmt.Fprintf(w, " (default %s)", d)
	}
	fmt.Fprintf(w, "\n    \t[env %s]\n", envName(f.Name))
}

// serveUsage is the top-level help, gateway -h.
const serveUsage = `Usage:
  gateway [flags]                      serve (flags below)
  gateway version                      print the version and build information (also -version)
  gateway routes validate DIR|FILE...  check route documents, together
  gateway routes push FILE [flags]     validate a document, then write it to Consul KV
  gateway check [flags]                ask Consul what the server would meet at start
  gateway health [flags]               exit 0 when a gateway's admin /health answers 200
  gateway help [COMMAND]               this help, or a command's

Each flag can also be set by its environment variable, shown with it: the
command line wins over the variable, the variable over the default.
`

// helpCommands are the per-command help texts, by the words after
// "gateway"; gateway COMMAND -h prints them.
var helpCommands = map[string]string{
	"version":         "Usage: gateway version\n\nPrints the gateway's module version, VCS revision and time, and Go version (also: gateway -version).\n",
	"routes":          "Usage:\n  gateway routes validate DIR|FILE...\n  gateway routes push FILE [flags]\n\nRun gateway routes COMMAND -h for a command's help.\n",
	"routes validate": "Usage: gateway routes validate DIR|FILE...\n\nParses and validates each route document (a directory: every *.hcl file under\nit), alone and all together as the documents of one KV prefix (unique names,\nno identical matchers), printing one FILE:LINE:COL line per problem. Exits 0\nwhen every document is valid, 1 otherwise. Needs no Consul.\n",
	"check":           "Usage: gateway check [server flags] [-cert-warn D] [-check-timeout D]\n\nTakes the server's flags and variables and asks Consul once what the server\nwould meet at start: reachable with a leader, the token's permissions, every\nroute document valid, each routed service readable, certificates valid and not\nnear expiry. One OK, WARN or FAIL line each; exits 0 when none FAILs, else 1.\n",
	"health":          "Usage: gateway health [-admin ADDR] [-timeout D]\n\nGETs the admin /health of a gateway (a container health check without shell or\ncurl) and exits 0 on 200 (ok, or degraded: still serving), 1 otherwise.\n",
	"routes push":     "Usage: gateway routes push FILE [flags]\n\nValidates FILE, then writes it to Consul KV (under -kv-prefix and the file\nname, or -key).\n",
}

// wantsHelp reports whether args ask for help (-h, -help or --help
// anywhere, as flag itself would take them).
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		switch a {
		case "-h", "-help", "--help", "--h":
			return true
		}
	}
	return false
}

// printHelp writes the help of command (words after "gateway"; "" for
// the server) to w, with the flags of fs if any.
func printHelp(w io.Writer, command string, fs *flag.FlagSet) {
	if command == "" {
		fmt.Fprint(w, serveUsage)
		if fs != nil {
			printFlags(w, fs, true)
		}
		return
	}
	fmt.Fprint(w, helpCommands[command])
	if fs != nil {
		fmt.Fprint(w, "\nFlags:")
		printFlags(w, fs, false)
	}
}

// runHelp is gateway help [COMMAND...].
func runHelp(args []string, stdout io.Writer) error {
	switch cmd := strings.Join(args, " "); {
	case cmd == "":
		var f serveFlags
		printHelp(stdout, "", newServeFlagSet(&f, io.Discard))
	case cmd == "routes push":
		var pf pushFlags
		printHelp(stdout, cmd, newPushFlagSet(&pf, io.Discard))
	case cmd == "check":
		return runCheck([]string{"-h"}, stdout, io.Discard)
	case cmd == "health":
		return runHealth([]string{"-h"}, stdout, io.Discard)
	case helpCommands[cmd] != "":
		printHelp(stdout, cmd, nil)
	default:
		return usageError("no help for %q; commands: version, routes validate, routes push, check, health", cmd)
	}
	return flag.ErrHelp
}

// routesHelp answers gateway routes [COMMAND] -h.
func routesHelp(args []string, stdout io.Writer) error {
	switch args[0] {
	case "validate", "push":
		return runHelp([]string{"routes", args[0]}, stdout)
	}
	return runHelp([]string{"routes"}, stdout)
}
