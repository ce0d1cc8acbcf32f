package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/gateway/certs"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/registry"
)

// tlsFlags are the TLS listener's settings.
type tlsFlags struct {
	listen       string
	certFiles    []string
	keyFiles     []string
	certPrefix   string
	pollInterval time.Duration
	redirect     bool
	hstsMaxAge   time.Duration
	httpsPort    string
}

func addTLSFlags(fs *flag.FlagSet, f *tlsFlags) {
	fs.StringVar(&f.listen, "tls-listen", "", "TLS listener address, e.g. :8443 (HTTP/2 and HTTP/1.1 over TLS; default: none)")
	fs.Func("tls-cert", "certificate chain file (PEM) for the TLS listener; repeatable, the n-th pairs with the n-th -tls-key; the first pair is the default certificate", func(s string) error {
		f.certFiles = append(f.certFiles, s)
		return nil
	})
	fs.Func("tls-key", "private key file (PEM) of the matching -tls-cert", func(s string) error {
		f.keyFiles = append(f.keyFiles, s)
		return nil
	})
	fs.StringVar(&f.certPrefix, "cert-prefix", "gateway/certs/", "Consul KV prefix whose keys each hold one PEM bundle (chain, then key) for the TLS listener")
	fs.DurationVar(&f.pollInterval, "tls-poll-interval", certs.DefaultPollInterval, "how often -tls-cert/-tls-key files are re-read for changes")
	fs.BoolVar(&f.redirect, "https-redirect", false, "answer every plain-HTTP request with a 308 to HTTPS (per route: https_only)")
	fs.DurationVar(&f.hstsMaxAge, "hsts-max-age", 0, "send Strict-Transport-Security with this max-age on every HTTPS answer (0: none; per route: hsts_max_age)")
	fs.StringVar(&f.httpsPort, "https-port", "", "port HTTPS redirects point at (default: the -tls-listen port; 443 is left out of the URL)")
}

// check reports flag combinations that cannot work.
func (f tlsFlags) check(plainListen string) error {
	if len(f.certFiles) != len(f.keyFiles) {
		return fmt.Errorf("%w: %d -tls-cert but %d -tls-key; give them in pairs", errUsage, len(f.certFiles), len(f.keyFiles))
	}
	if f.listen == "" && len(f.certFiles) > 0 {
		return fmt.Errorf("%w: -tls-cert needs -tls-listen", errUsage)
	}
	if f.listen == "" && plainListen == "" {
		return fmt.Errorf("%w: -listen \"\" disables the plain listener, so -tls-listen is required", errUsage)
	}
	if f.hstsMaxAge < 0 {
		return fmt.Errorf("%w: -hsts-max-age must not be negative", errUsage)
	}
	if f.httpsPort != "" {
		if n, err := strconv.Atoi(f.httpsPort); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: -https-port must be a port number", errUsage)
		}
	}
	if f.pollInterval <= 0 {
		return fmt.Errorf("%w: -tls-poll-interval must be positive", errUsage)
	}
	return nil
}

// tlsSide is the running TLS listener's certificate machinery.
type tlsSide struct {
	store  *certs.Store
	ln     net.Listener // raw, before the connection limit; nil without -tls-listen
	addr   string
	config *tls.Config
}

// listenTLS loads the certificate files (a bad one fails the start) and
// binds the TLS listener. hooks is the seam for ACME (see certs.Hooks).
func listenTLS(f tlsFlags, store *certs.Store, hooks certs.Hooks, logger hclog.Logger) (*tlsSide, *certs.Files, error) {
	t := &tlsSide{store: store}
	if f.listen == "" {
		return t, nil, nil
	}
	pairs := make([]certs.Pair, len(f.certFiles))
	for i := range f.certFiles {
		pairs[i] = certs.Pair{CertFile: f.certFiles[i], KeyFile: f.keyFiles[i]}
	}
	files := certs.NewFiles(store, pairs, nil, logger.Named("certs"))
	if err := files.Load(); err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return nil, nil, listenError("tls-listen", err)
	}
	t.ln, t.addr, t.config = ln, ln.Addr().String(), certs.ServerConfig(store, hooks)
	return t, files, nil
}

// runCertSources starts the file poller and the KV bundle watch; they run
// until ctx is done, as the route watches do.
func (a *app) runCertSources(ctx context.Context, f tlsFlags, files *certs.Files, client *api.Client, opts registry.Options, store *certs.Store) {
	if files == nil {
		return
	}
	a.watches.Go(func() { files.Run(ctx, f.pollInterval) })
	changed := make(chan struct{}, 1)
	kv := registry.NewKV(client, f.certPrefix, opts, func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	bundles := certs.NewKVBundles(store, f.certPrefix, nil, a.logger.Named("certs"))
	a.watches.Go(func() { kv.Run(ctx) })
	a.watches.Go(func() { bundles.Follow(ctx, changed, kv.Documents) })
}

// httpsPolicy is the gateway-wide -https-redirect and -hsts-max-age, and
// the port redirects point at.
func (f tlsFlags) httpsPolicy(tlsAddr string, trusted []netip.Prefix) policy.HTTPS {
	port := f.httpsPort
	if port == "" && tlsAddr != "" {
		_, port, _ = net.SplitHostPort(tlsAddr)
	}
	return policy.HTTPS{Only: f.redirect, HSTSMaxAge: f.hstsMaxAge, Port: port, Trusted: trusted}
}

// serveTLS serves srv on the TLS listener through the shared connection
// limit; ServeTLS enables HTTP/2 for clients that offer "h2". Failed
// handshakes are logged at debug level (see handshakeErrorsAtDebug).
func serveTLS(srv *http.Server, ln net.Listener, conf *tls.Config) error {
	srv.TLSConfig = conf
	if srv.ErrorLog != nil {
		srv.ErrorLog = log.New(handshakeErrorsAtDebug{srv.ErrorLog.Writer()}, "", 0)
	}
	return srv.ServeTLS(ln, "", "")
}

// handshakeErrorsAtDebug passes net/http's error log on, with the line it
// writes for every failed TLS handshake marked "[DEBUG]" (the server's
// hclog standard logger infers levels). Any client can fail handshakes
// as fast as it connects (a scanner, a name with no certificate, a
// protocol mismatch), so at info level one client could fill the log.
type handshakeErrorsAtDebug struct{ next io.Writer }

var handshakeErrorLine = []byte("http: TLS handshake error")

func (w handshakeErrorsAtDebug) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, handshakeErrorLine) {
		if _, err := w.next.Write(append([]byte("[DEBUG] "), p...)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return w.next.Write(p)
}
