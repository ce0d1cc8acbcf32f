// Command gateway is an HTTP API gateway for services registered in Consul.
// Routes come from HCL documents in Consul KV, instances from Consul health
// checks; both are followed live and swapped in atomically.
//
//	gateway [flags]                     serve
//	gateway version                     print version and build information
//	gateway routes validate DIR|FILE... check route documents
//	gateway routes push FILE [-key K]   validate, then write to Consul KV
//	gateway check [flags]               what the server would meet in Consul
//	gateway health [-admin ADDR]        exit 0 when the admin /health is ok
//	gateway help [COMMAND]              help, grouped by topic (also -h)
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway"
	"github.com/gatewayco/gateway/gateway/accesslog"
	"github.com/gatewayco/gateway/gateway/admin"
	"github.com/gatewayco/gateway/gateway/aggregate"
	"github.com/gatewayco/gateway/gateway/certs"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/tunnel"
	"github.com/gatewayco/gateway/registry"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gateway:", err)
		}
		os.Exit(exitCode(err))
	}
}

// errUsage marks command-line mistakes, which exit 2 like flag does.
var errUsage = errors.New("usage")

// exitCode is the process's exit status for run's error: help asked for
// (flag.ErrHelp) is a success.
func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	return 1
}

// commandList names the commands run dispatches, for the message about an
// unknown one.
const commandList = "version, routes validate, routes push, check, health, help"

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "routes":
			return runRoutes(args[1:], stdout, stderr)
		case "version", "-version", "--version":
			return runVersion(args[1:], stdout)
		case "help":
			return runHelp(args[1:], stdout)
		case "check":
			return runCheck(args[1:], stdout, stderr)
		case "health":
			return runHealth(args[1:], stdout, stderr)
		}
	}
	return serve(args, stdout, stderr)
}

// serveFlags are the server's settings; kept in one struct so tests can
// check every flag the docs and compose file mention exists.
type serveFlags struct {
	listen, admin, prefix, consul, logLevel string
	statePrefix                             string
	logJSON                                 bool
	accessLog                               accessLogFlags
	tracing                                 tracingFlags
	drain, readHeaderTimeout                time.Duration
	idleTimeout, bodyReadTimeout            time.Duration
	maxConns                                int
	maxTunnels, maxTunnelsPerClient         int
	panicThreshold                          float64
	maxBodyBytes                            int64
	aggregateMaxBytes                       int64
	maxHeaderBytes                          int
	trustedProxies                          string
	self                                    selfFlags
	h2c                                     bool
	h2MaxStreams                            int
	tls                                     tlsFlags
	acme                                    acmeFlags
	fabioTags                               bool
	connect                                 connectFlags
	scale                                   scaleFlags
}

func newServeFlagSet(f *serveFlags, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.listen, "listen", ":8080", "public listener address (plain HTTP; \"\" disables it, with -tls-listen)")
	fs.StringVar(&f.admin, "admin", "127.0.0.1:8081", "admin listener address (/health, /routes); keep it private")
	fs.StringVar(&f.prefix, "kv-prefix", "gateway/routes/", "Consul KV prefix holding route documents")
	fs.StringVar(&f.statePrefix, "state-prefix", "", "Consul KV prefix where gateways share each route document's last good version (default: state/lastgood/ beside -kv-prefix)")
	fs.StringVar(&f.consul, "consul", "", "Consul HTTP address (default: CONSUL_HTTP_ADDR or 127.0.0.1:8500)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.BoolVar(&f.logJSON, "log-json", false, "log as JSON lines")
	addAccessLogFlags(fs, &f.accessLog)
	addTracingFlags(fs, &f.tracing)
	fs.DurationVar(&f.drain, "drain-timeout", 15*time.Second, "how long in-flight requests may run after SIGTERM")
	fs.DurationVar(&f.readHeaderTimeout, "read-header-timeout", 10*time.Second, "time a client has to send its request headers (cuts off slowloris clients)")
	fs.DurationVar(&f.bodyReadTimeout, "body-read-timeout", gateway.DefaultBodyReadTimeout, "longest pause allowed while a client sends its request body, 408 beyond")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive client connection stays open")
	fs.IntVar(&f.maxConns, "max-conns", gateway.DefaultMaxConns, "most client connections open at once; more wait to be accepted (0: no limit)")
	fs.IntVar(&f.maxTunnels, "max-tunnels", tunnel.DefaultMax, "most WebSocket tunnels open at once, 503 beyond (0: no limit); below -max-conns, so tunnels cannot take every connection slot")
	fs.IntVar(&f.maxTunnelsPerClient, "max-tunnels-per-client", tunnel.DefaultMaxPerClient, "most WebSocket tunnels one client address holds at once, 503 beyond (0: no limit)")
	fs.Int64Var(&f.maxBodyBytes, "max-body-bytes", gateway.DefaultMaxBodyBytes, "request body limit in bytes, 413 beyond (negative: no limit)")
	fs.Int64Var(&f.aggregateMaxBytes, "aggregate-max-bytes", aggregate.DefaultMaxBytes, "bytes all aggregate requests together may buffer at once, 503 beyond (negative: no limit)")
	fs.IntVar(&f.maxHeaderBytes, "max-header-bytes", 1<<20, "request header limit in bytes, 431 beyond")
	fs.Float64Var(&f.panicThreshold, "panic-threshold", balancer.DefaultPanicThreshold, "opt-in panic mode: below this share of passing known-good instances a service routes to all of them (0, the default, disables; instances in maintenance never get traffic)")
	fs.StringVar(&f.trustedProxies, "trusted-proxies", "", "comma-separated CIDRs of proxies whose X-Forwarded-For is believed (default: none)")
	fs.BoolVar(&f.h2c, "h2c", false, "serve HTTP/2 cleartext (prior knowledge, as gRPC clients without TLS speak) beside HTTP/1.1 on -listen")
	fs.IntVar(&f.h2MaxStreams, "h2-max-streams", defaultH2MaxStreams, "concurrent HTTP/2 streams a client connection may open")
	addSelfFlags(fs, &f.self)
	addTLSFlags(fs, &f.tls)
	addACMEFlags(fs, &f.acme)
	addFabioFlags(fs, &f.fabioTags)
	addConnectFlags(fs, &f.connect)
	addScaleFlags(fs, &f.scale)
	return fs
}

func newLogger(level string, json bool, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "gateway",
		Level:      hclog.LevelFromString(level),
		JSONFormat: json,
		Output:     w,
	})
}

func serve(args []string, stdout, stderr io.Writer) error {
	var f serveFlags
	fs := newServeFlagSet(&f, stderr)
	if wantsHelp(args) {
		printHelp(stdout, "", fs)
		return flag.ErrHelp
	}
	if err := parseArgs(fs, args, os.LookupEnv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		if fs.NArg() == len(args) {
			// The first word is no flag: a mistyped or unknown command
			// ("gateway rotues validate"), not a stray argument.
			return fmt.Errorf("%w: unknown command %q (commands: %s; gateway -h)", errUsage, fs.Arg(0), commandList)
		}
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if f.panicThreshold < 0 || f.panicThreshold > 1 {
		return fmt.Errorf("%w: -panic-threshold must be between 0 and 1", errUsage)
	}
	if f.bodyReadTimeout <= 0 || f.idleTimeout <= 0 {
		return fmt.Errorf("%w: -body-read-timeout and -idle-timeout must be positive", errUsage)
	}
	if f.h2MaxStreams < 1 || f.h2MaxStreams > maxH2MaxStreams {
		return fmt.Errorf("%w: -h2-max-streams must be between 1 and %d", errUsage, maxH2MaxStreams)
	}
	if f.maxConns < 0 {
		return fmt.Errorf("%w: -max-conns must not be negative", errUsage)
	}
	if f.maxTunnels < 0 || f.maxTunnelsPerClient < 0 {
		return fmt.Errorf("%w: -max-tunnels and -max-tunnels-per-client must not be negative", errUsage)
	}
	if hclog.LevelFromString(f.logLevel) == hclog.NoLevel {
		return fmt.Errorf("%w: unknown log level %q", errUsage, f.logLevel)
	}
	if _, err := parseCIDRs(f.trustedProxies); err != nil {
		return fmt.Errorf("%w: -trusted-proxies: %w", errUsage, err)
	}
	if _, err := registry.StatePrefix(f.prefix, f.statePrefix); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if err := f.tls.check(f.listen); err != nil {
		return err
	}
	if err := f.acme.check(); err != nil {
		return err
	}
	if err := f.accessLog.check(); err != nil {
		return err
	}
	if err := f.tracing.check(); err != nil {
		return err
	}
	logger := newLogger(f.logLevel, f.logJSON, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := startApp(f, logger)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down (a second signal exits at once)", "drain_timeout", f.drain)
		err = nil
	case err = <-a.failed:
		logger.Error("listener failed", "error", err)
	}
	// Restore default signal handling: an operator's second Ctrl-C or
	// SIGTERM must be able to cut a drain short.
	stop()
	if serr := a.shutdown(f.drain); err == nil {
		err = serr
	}
	if err == nil {
		logger.Info("stopped")
	}
	return err
}

// app is a running gateway: listeners, watches and the controller.
type app struct {
	gw          *gateway.Gateway
	status      *registry.Status
	health      *registry.Health
	public      *http.Server // nil with -listen ""
	admin       *http.Server
	tls         *http.Server // nil without -tls-listen
	publicAddr  string
	adminAddr   string
	tlsAddr     string
	certs       *certs.Store
	acme        acmeSide
	stopWatches context.CancelFunc
	watches     sync.WaitGroup
	failed      chan error
	self        *selfRegistration // nil unless -register
	accessLog   *accesslog.Logger // nil with -access-log off
	stopHUP     func()
	stopTracing func() // flushes the spans still queued
	logger      hclog.Logger
}

// listenError names the flag and variable of a listener that could not
// open: "address already in use" alone does not say which of the
// gateway's three listeners to move.
func listenError(flagName string, err error) error {
	return fmt.Errorf("-%s (%s): %w", flagName, envName(flagName), err)
}

// registerTimeout bounds the self-registration call at start.
const registerTimeout = 10 * time.Second

func startApp(f serveFlags, logger hclog.Logger) (*app, error) {
	// -register adds a watch loop (the replica count), which takes one of
	// the short calls' slots: with shared health watches the gateway keeps
	// 8 connections to Consul either way.
	slots := registry.ShortCallSlots
	if f.self.register {
		slots--
	}
	client, err := registry.NewClientSlots(f.consul, f.scale.consulMaxAnswerBytes, slots)
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	statePrefix, err := registry.StatePrefix(f.prefix, f.statePrefix)
	if err != nil {
		return nil, err
	}
	a := &app{status: &registry.Status{}, failed: make(chan error, 3), logger: logger, certs: certs.NewStore()}
	tlsHooks := a.acme.hooks(f.acme)
	tside, certFiles, err := listenTLS(f.tls, a.certs, tlsHooks, logger)
	if err != nil {
		return nil, err
	}
	var publicLn net.Listener
	closeAll := func() {
		for _, l := range []net.Listener{publicLn, tside.ln} {
			if l != nil {
				l.Close()
			}
		}
	}
	if f.listen != "" {
		if publicLn, err = net.Listen("tcp", f.listen); err != nil {
			closeAll()
			return nil, listenError("listen", err)
		}
		a.publicAddr = publicLn.Addr().String()
	}
	adminLn, err := net.Listen("tcp", f.admin)
	if err != nil {
		closeAll()
		return nil, listenError("admin", err)
	}
	a.adminAddr, a.tlsAddr = adminLn.Addr().String(), tside.addr
	if err := a.acme.start(f.acme, client, a.publicAddr, a.tlsAddr, a.certs, logger.Named("acme")); err != nil {
		closeAll()
		adminLn.Close()
		return nil, err
	}
	trusted, err := parseCIDRs(f.trustedProxies)
	if err != nil {
		closeAll()
		adminLn.Close()
		a.acme.stop()
		return nil, err
	}
	https := f.tls.httpsPolicy(a.tlsAddr, trusted)
	m := metrics.New(metrics.Options{LastSync: a.status.LastSuccess})
	// The Go runtime's series (go_goroutines, go_memstats_*, and the live
	// heap as of the last GC, go_gc_heap_live_bytes) are what shows a leak
	// in production, and what the end-to-end tests read to check that the
	// running binary leaks no goroutines or memory. Registered here, not in
	// metrics.New, because they describe the process rather than a gateway.
	m.Registry().MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)})))
	m.Registry().MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	build := readBuildInfo(debug.ReadBuildInfo)
	m.Registry().MustRegister(metrics.BuildInfo(build.Version, build.revisionLabel(), build.GoVersion))
	m.Registry().MustRegister(certs.NewCollector(a.certs, nil))
	opts := registry.Options{Logger: logger.Named("registry"), Status: a.status, OnError: m.WatchError}
	mesh, meshSide := newMesh(f.connect, f.self, client, opts)
	if a.accessLog, a.stopHUP, err = openAccessLog(f.accessLog, os.Stdout, logger.Named("access"), m.Registry()); err != nil {
		closeAll()
		adminLn.Close()
		a.acme.stop()
		return nil, err
	}
	if a.stopTracing, err = startTracing(f.tracing, logger.Named("tracing")); err != nil {
		closeAll()
		adminLn.Close()
		a.acme.stop()
		a.stopHUP()
		closeAccessLog(a.accessLog, logger)
		return nil, err
	}
	cluster := newClusterSide(f.self, client, opts, m)
	a.gw = gateway.New(gateway.Options{Mesh: meshSide, Logger: logger, AccessLog: a.accessLog, MaxBodyBytes: f.maxBodyBytes, BodyReadTimeout: f.bodyReadTimeout,
		TrustedProxies: trusted, Metrics: m, AggregateMaxBytes: f.aggregateMaxBytes, HTTPSPort: https.Port,
		Tunnels:  tunnel.New(tunnel.Options{Max: cmp.Or(f.maxTunnels, -1), MaxPerClient: cmp.Or(f.maxTunnelsPerClient, -1), Metrics: m}),
		Replicas: cluster.replicas()})
	ctl := gateway.NewController(a.gw, logger.Named("controller"))
	ctl.SetPanicThreshold(f.panicThreshold)
	nameLocalDatacenter(ctl, client, logger)
	ctl.OnPublish(a.acme.onPublish(logger.Named("acme")))
	kv := registry.NewKV(client, f.prefix, opts, ctl.Notify)
	a.health = registry.NewHealth(client, opts, ctl.Notify)
	a.health.ShareAbove(f.scale.healthWatchThreshold)
	state := registry.NewState(client, f.prefix, statePrefix, opts, ctl.Notify)
	ctl.SetLastGoodStore(state)

	var watchCtx context.Context
	watchCtx, a.stopWatches = context.WithCancel(context.Background())
	a.watches.Go(func() { kv.Run(watchCtx) })
	a.watches.Go(func() { state.Run(watchCtx) })
	runFabioTags(watchCtx, f.fabioTags, client, opts, ctl, &a.watches)
	runMesh(watchCtx, mesh, &a.watches, func(withMesh *registry.Connect) {
		var insts gateway.Instances = a.health
		if withMesh != nil {
			insts = meshInstances{a.health, withMesh}
		}
		ctl.Run(watchCtx, kv, insts)
	})
	a.runCertSources(watchCtx, f.tls, certFiles, client, opts, a.certs)

	a.admin = newServer(admin.Handler(a.gw, a.status, admin.Certs(a.certs, nil)), logger, f)
	// Only the public side is limited: the admin listener stays reachable
	// for /health and /metrics when clients fill every slot. The plain
	// and TLS listeners share the one limit.
	limited := gateway.LimitListeners(f.maxConns, m, publicLn, tside.ln)
	if publicLn != nil {
		a.public = newServer(a.acme.handler(https.Middleware(a.gw)), logger, f)
		if f.h2c {
			a.public.Protocols = publicProtocols()
		}
		go func() { a.failed <- a.public.Serve(limited[0]) }()
	}
	if tside.ln != nil {
		a.tls = newServer(https.Middleware(a.gw), logger, f)
		go func() { a.failed <- serveTLS(a.tls, limited[1], tside.config) }()
	}
	go func() { a.failed <- a.admin.Serve(adminLn) }()
	serving := []any{"listen", a.publicAddr, "admin", a.adminAddr, "kv_prefix", f.prefix, "state_prefix", statePrefix}
	if a.tlsAddr != "" {
		serving = append(serving, "tls_listen", a.tlsAddr, "cert_prefix", f.tls.certPrefix)
	}
	logger.Info("serving", serving...)
	if f.self.register {
		// Registered only once both listeners serve, so the first health
		// check the agent runs can already pass.
		if a.self, err = registerSelf(client, f.self, cmp.Or(a.publicAddr, a.tlsAddr), a.adminAddr, logger.Named("self")); err != nil {
			_ = a.shutdown(time.Second)
			return nil, err
		}
		cluster.run(watchCtx, a.self, &a.watches)
	}
	return a, nil
}

// tunnelGrace bounds how long the listeners wait, past the drain, for the
// HTTP/2 streams of the tunnels closed at its end to finish: they end as
// soon as their handlers return, and net/http sees a connection go idle
// within half a second.
const tunnelGrace = 2 * time.Second

// shutdown deregisters from Consul (with -register), stops accepting, lets
// in-flight requests finish within drain, then stops the watches. The watches run until the public side has
// drained, so requests still in flight keep a fresh table.
func (a *app) shutdown(drain time.Duration) error {
	// Leave the catalog first, so discovery stops handing out this gateway
	// before its listeners start refusing connections. It gets its own
	// short bound: a hung agent must not use up the drain that in-flight
	// requests are owed.
	regCtx, regCancel := context.WithTimeout(context.Background(), min(2*time.Second, drain/4))
	a.self.deregister(regCtx)
	regCancel()
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	// The WebSocket tunnels run on until the drain ends, then are closed,
	// and the process does not exit under one still copying; new ones are
	// refused from now on. A hijacked HTTP/1.1 tunnel is invisible to the
	// servers' Shutdown, but an HTTP/2 one is a stream it waits for, so
	// the servers' bound ends only once the tunnels closed at the drain's
	// end have ended (plus tunnelGrace): closing them is the expected
	// outcome of a drain, not a failed one.
	srvCtx, srvCancel := context.WithCancel(context.Background())
	defer srvCancel()
	tunnelsClosed := make(chan int, 1)
	go func() {
		n := 0
		if a.gw != nil {
			n = a.gw.Tunnels().Shutdown(ctx)
		}
		tunnelsClosed <- n
		<-ctx.Done()
		if n > 0 {
			t := time.NewTimer(tunnelGrace)
			defer t.Stop()
			select {
			case <-t.C:
			case <-srvCtx.Done():
			}
		}
		srvCancel()
	}()
	// The plain and TLS listeners drain together, within the one bound.
	var tlsErr error
	var drained sync.WaitGroup
	if a.tls != nil {
		drained.Go(func() { tlsErr = a.tls.Shutdown(srvCtx) })
	}
	var err error
	if a.public != nil {
		err = a.public.Shutdown(srvCtx)
	}
	drained.Wait()
	err = cmp.Or(err, tlsErr)
	if n := <-tunnelsClosed; n > 0 {
		a.logger.Info("closed WebSocket tunnels at the end of the drain", "tunnels", n)
	}
	_ = a.admin.Shutdown(ctx)
	a.stopWatches()
	a.watches.Wait()
	a.health.Stop()
	a.acme.stop()
	if a.stopHUP != nil {
		a.stopHUP()
	}
	closeAccessLog(a.accessLog, a.logger)
	if a.stopTracing != nil {
		a.stopTracing()
	}
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}

// newServer sets the timeouts a public server needs: without
// ReadHeaderTimeout a client that trickles headers holds a connection
// forever, without IdleTimeout an idle keep-alive one. The body has its
// own, per-read bound (-body-read-timeout, see gateway.Options), so there
// is no ReadTimeout: that would cut off a large upload that keeps moving.
func newServer(h http.Handler, logger hclog.Logger, f serveFlags) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: f.readHeaderTimeout,
		IdleTimeout:       f.idleTimeout,
		MaxHeaderBytes:    f.maxHeaderBytes,
		HTTP2:             http2Config(f),
		ErrorLog:          logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}

// HTTP/2 stream bounds: the default is the stdlib's own; the ceiling
// keeps one client connection from claiming more goroutines than a
// thousand HTTP/1.1 connections would.
const (
	defaultH2MaxStreams = 250
	maxH2MaxStreams     = 1000
)

// http2Config bounds what one HTTP/2 client connection may hold, on any
// listener that speaks HTTP/2 (-h2c, or TLS with ALPN h2). Header lists
// are bounded by -max-header-bytes (the server advertises it as
// SETTINGS_MAX_HEADER_LIST_SIZE); a connection with no stream open is
// closed after -idle-timeout, and one whose peer stops answering with
// streams open is found by a ping after a minute of silence and dropped
// 15s later. Flow-control windows stay at the stdlib's 1 MiB per
// connection and per stream, which bounds what a client can make the
// gateway buffer.
func http2Config(f serveFlags) *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxConcurrentStreams: f.h2MaxStreams,
		SendPingTimeout:      time.Minute,
		PingTimeout:          15 * time.Second,
	}
}

// publicProtocols are the public listener's protocols with -h2c:
// HTTP/1.1 and HTTP/2 with prior knowledge on a plain connection, and
// HTTP/2 by ALPN should the server be serving TLS.
func publicProtocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return p
}

// splitFlags separates flags from positional arguments so that
// "routes push FILE -key K" works as well as "routes push -key K FILE";
// the flag package alone stops at the first positional argument.
func splitFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return pos, nil
}

func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}

func trimSlash(prefix string) string { return strings.TrimSuffix(prefix, "/") + "/" }

// parseCIDRs reads a comma-separated list of CIDRs; a bare address means
// that one host.
func parseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
