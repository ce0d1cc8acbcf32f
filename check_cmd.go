package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/gateway"
	"github.com/gatewayco/gateway/gateway/certs"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// errCheckFailed is returned by `gateway check` when some check failed;
// the failures were printed, one FAIL line each.
var errCheckFailed = errors.New("some checks failed")

// Defaults of `gateway check`'s own flags.
const (
	defaultCertWarn     = 14 * 24 * time.Hour
	defaultCheckTimeout = 30 * time.Second
)

// checkFlags are `gateway check`'s own settings, beside the server's.
type checkFlags struct {
	certWarn time.Duration
	timeout  time.Duration
}

// runCheck is `gateway check [server flags]`: it takes the server's
// flags and GATEWAY_* variables (so an operator passes the very command
// line, or environment,
// the server runs with) and asks Consul, once, what the server would
// meet at start. Each finding is one line, OK, WARN or FAIL; the error
// (exit 1) means some FAIL, i.e. the server would not start healthy.
// WARN lines (a certificate near expiry, a service without passing
// instances, an agent that cannot say what the token may do) leave the
// exit code 0: the server starts healthy with them.
func runCheck(args []string, stdout, stderr io.Writer) error {
	var f serveFlags
	var cf checkFlags
	fs := newServeFlagSet(&f, stderr)
	fs.Init("gateway check", flag.ContinueOnError)
	fs.DurationVar(&cf.certWarn, "cert-warn", defaultCertWarn, "check: warn about a certificate that expires within this")
	fs.DurationVar(&cf.timeout, "check-timeout", defaultCheckTimeout, "check: bound on all of the check's calls to Consul together")
	if wantsHelp(args) {
		printHelp(stdout, "check", fs)
		return flag.ErrHelp
	}
	if err := parseArgs(fs, args, os.LookupEnv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("gateway check [server flags]: unexpected argument %q", fs.Arg(0))
	}
	if _, err := registry.StatePrefix(f.prefix, f.statePrefix); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if err := f.tls.check(f.listen); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	c := &checker{out: stdout, f: f, cf: cf, now: time.Now()}
	c.run(ctx)
	if c.failed {
		return errCheckFailed
	}
	return nil
}

// checker prints one line per finding and remembers whether any failed.
type checker struct {
	out    io.Writer
	f      serveFlags
	cf     checkFlags
	now    time.Time
	failed bool
}

func (c *checker) ok(format string, a ...any)   { c.line("OK  ", format, a...) }
func (c *checker) warn(format string, a ...any) { c.line("WARN", format, a...) }
func (c *checker) fail(format string, a ...any) {
	c.failed = true
	c.line("FAIL", format, a...)
}

func (c *checker) line(mark, format string, a ...any) {
	fmt.Fprintf(c.out, "%s %s\n", mark, fmt.Sprintf(format, a...))
}

// need is one permission the server's settings call for, with what it
// is for in words.
type need struct {
	perm registry.Permission
	what string
}

func (c *checker) run(ctx context.Context) {
	client, err := registry.NewClient(c.f.consul)
	if err != nil {
		c.fail("consul client: %v", err)
		c.certFiles()
		return
	}
	addr := consulAddress(c.f.consul)
	leader, err := registry.Leader(ctx, client)
	switch {
	case errors.Is(err, registry.ErrNoLeader):
		c.fail("consul at %s answers but has no leader: no watch can make its first read", addr)
	case err != nil:
		c.fail("consul at %s unreachable: %v", addr, err)
	default:
		c.ok("consul at %s reachable, leader %s", addr, leader)
	}
	if err != nil {
		c.certFiles()
		return
	}
	statePrefix, _ := registry.StatePrefix(c.f.prefix, c.f.statePrefix)
	routes, aggs := c.documents(ctx, client)
	keys := gateway.ServiceKeys(routes, aggs)
	needs := []need{
		{registry.Permission{Resource: "key", Segment: c.f.prefix, Access: "read"}, fmt.Sprintf("read the route documents (key_prefix %q read)", c.f.prefix)},
		{registry.Permission{Resource: "key", Segment: statePrefix, Access: "write"}, fmt.Sprintf("share last good documents (key_prefix %q write)", statePrefix)},
	}
	for _, k := range keys {
		needs = append(needs, need{registry.Permission{Resource: "service", Segment: k.Name, Access: "read"}, fmt.Sprintf("read service %s (service %q read)", k.Name, k.Name)})
	}
	if c.f.self.register {
		needs = append(needs, need{registry.Permission{Resource: "service", Segment: c.f.self.name, Access: "write"}, fmt.Sprintf("register itself (-register: service %q write)", c.f.self.name)})
	}
	if c.f.connect.on {
		name := cmp.Or(c.f.connect.service, c.f.self.name)
		needs = append(needs, need{registry.Permission{Resource: "service", Segment: name, Access: "write"}, fmt.Sprintf("get its Connect leaf certificate (-connect: service %q write)", name)})
	}
	if c.f.tls.listen != "" {
		needs = append(needs, need{registry.Permission{Resource: "key", Segment: c.f.tls.certPrefix, Access: "read"}, fmt.Sprintf("read certificate bundles (-tls-listen: key_prefix %q read)", c.f.tls.certPrefix)})
		if slices.ContainsFunc(routes, func(r config.Route) bool { return r.ACME }) {
			needs = append(needs,
				need{registry.Permission{Resource: "key", Segment: c.f.acme.prefix, Access: "write"}, fmt.Sprintf("keep ACME certificates and locks (acme = true routes: key_prefix %q write)", c.f.acme.prefix)},
				need{registry.Permission{Resource: "session", Segment: "", Access: "write"}, `hold ACME locks (acme = true routes: session_prefix "" write)`})
		}
	}
	c.permissions(ctx, needs)
	c.services(ctx, client, keys)
	c.certFiles()
	c.certBundles(ctx, client)
}

// consulAddress names the agent as the client will dial it.
func consulAddress(flagAddr string) string {
	return registry.Address(flagAddr)
}

// documents reads and validates the route documents as the server would
// at start, by the same rules (each document, then across documents),
// and returns the routes and aggregates it would serve.
func (c *checker) documents(ctx context.Context, client *api.Client) ([]config.Route, []config.Aggregate) {
	docs, err := registry.ListDocuments(ctx, client, c.f.prefix)
	if err != nil {
		if registry.IsPermissionDenied(err) {
			c.fail("the token may not read the route documents under %q (needs key_prefix %q read): %v", c.f.prefix, c.f.prefix, err)
		} else {
			c.fail("reading the route documents under %q: %v", c.f.prefix, err)
		}
		return nil, nil
	}
	if len(docs) == 0 {
		c.warn("no route documents under %q: the gateway would start with no routes and answer 404", c.f.prefix)
		return nil, nil
	}
	var cands []config.Candidate
	bad := 0
	for _, d := range docs {
		doc, err := config.Parse(d.Key, d.Value, d.ModifyIndex)
		if err != nil {
			bad++
			c.failDocument(d.Key, err)
			continue
		}
		cands = append(cands, config.Candidate{Key: d.Key, Current: doc})
	}
	accepted, errs := config.Resolve(cands)
	for _, key := range slices.Sorted(mapKeys(errs)) {
		bad++
		c.failDocument(key, errs[key])
	}
	var routes []config.Route
	var aggs []config.Aggregate
	for _, key := range slices.Sorted(mapKeys(accepted)) {
		routes = append(routes, accepted[key].Routes...)
		aggs = append(aggs, accepted[key].Aggregates...)
	}
	if bad == 0 {
		c.ok("%d route documents under %q valid: %d routes, %d aggregates", len(docs), c.f.prefix, len(routes), len(aggs))
	}
	return routes, aggs
}

// failDocument prints a document's problems one per line, each
// KEY:LINE:COL: message as config renders them.
func (c *checker) failDocument(key string, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			c.fail("route document %v", e)
		}
		return
	}
	c.fail("route document %s: %v", key, err)
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// permissions asks Consul which of needs the token holds. An agent that
// cannot answer gets one WARN: the reads below still show read access,
// but write access cannot be probed without writing.
func (c *checker) permissions(ctx context.Context, needs []need) {
	for chunk := range slices.Chunk(needs, registry.MaxPermissions) {
		perms := make([]registry.Permission, len(chunk))
		for i, n := range chunk {
			perms[i] = n.perm
		}
		allowed, err := registry.Authorize(ctx, c.f.consul, perms)
		if errors.Is(err, registry.ErrACLDisabled) {
			c.ok("consul runs without ACLs: the token may do anything")
			return
		}
		if errors.Is(err, registry.ErrNoAuthorize) {
			c.warn("consul cannot say what the token may do (%v); write permissions are not checked", err)
			return
		}
		if err != nil {
			c.fail("asking consul what the token may do: %v", err)
			return
		}
		for i, n := range chunk {
			if allowed[i] {
				c.ok("the token may %s", n.what)
			} else {
				c.fail("the token may not %s", n.what)
			}
		}
	}
}

// services reads each service the routes use once, as its health watch
// would.
func (c *checker) services(ctx context.Context, client *api.Client, keys []registry.ServiceKey) {
	for _, k := range keys {
		insts, err := registry.ReadInstances(ctx, client, k)
		switch {
		case registry.IsPermissionDenied(err):
			c.fail("service %s: the token may not read its instances (needs service %q read and node read): %v", k, k.Name, err)
			continue
		case err != nil:
			c.fail("service %s: %v", k, err)
			continue
		}
		passing := len(registry.Passing(insts))
		switch {
		case len(insts) == 0:
			c.warn("service %s: no instances registered; its routes would answer 503", k)
		case passing == 0:
			c.warn("service %s: none of %d instances passing; its routes would answer 503", k, len(insts))
		default:
			c.ok("service %s: %d of %d instances passing", k, passing, len(insts))
		}
	}
}

// certFiles loads the -tls-cert/-tls-key pairs as the server does at
// start, where a bad one stops it.
func (c *checker) certFiles() {
	if c.f.tls.listen == "" || len(c.f.tls.certFiles) == 0 {
		return
	}
	store := certs.NewStore()
	pairs := make([]certs.Pair, len(c.f.tls.certFiles))
	for i := range pairs {
		pairs[i] = certs.Pair{CertFile: c.f.tls.certFiles[i], KeyFile: c.f.tls.keyFiles[i]}
	}
	if err := certs.NewFiles(store, pairs, func() time.Time { return c.now }, nil).Load(); err != nil {
		c.fail("certificate files: %v", err)
		return
	}
	c.certs(store)
}

// certBundles parses the bundles under -cert-prefix as the server's KV
// source does.
func (c *checker) certBundles(ctx context.Context, client *api.Client) {
	if c.f.tls.listen == "" {
		return
	}
	docs, err := registry.ListDocuments(ctx, client, c.f.tls.certPrefix)
	if err != nil {
		c.fail("certificate bundles under %q: %v", c.f.tls.certPrefix, err)
		return
	}
	if len(docs) == 0 {
		return
	}
	store := certs.NewStore()
	certs.NewKVBundles(store, c.f.tls.certPrefix, func() time.Time { return c.now }, nil).Update(docs)
	c.certs(store)
}

// certs reports each certificate of store and each it rejected.
func (c *checker) certs(store *certs.Store) {
	good, rejected := store.Certs()
	for _, r := range rejected {
		c.fail("certificate %s %s: %s", r.Kind, r.Source, r.Error)
	}
	for _, cert := range good {
		left := cert.NotAfter.Sub(c.now)
		if left < c.cf.certWarn {
			c.warn("certificate %s %s (%s) expires in %s, at %s (-cert-warn %s)", cert.Kind, cert.Source, strings.Join(cert.Names, ","), left.Round(time.Minute), cert.NotAfter.Format(time.RFC3339), c.cf.certWarn)
			continue
		}
		c.ok("certificate %s %s (%s) valid until %s", cert.Kind, cert.Source, strings.Join(cert.Names, ","), cert.NotAfter.Format(time.RFC3339))
	}
}
