package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/gateway"
	"github.com/gatewayco/gateway/gateway/acme"
	"github.com/gatewayco/gateway/gateway/certs"
	"github.com/gatewayco/gateway/registry"
)

// acmeFlags are the ACME manager's settings.
type acmeFlags struct {
	ca, email, caRoot, prefix string
	challenges                string
	maxHosts                  int
	renewInterval             time.Duration
	ari                       bool
}

func addACMEFlags(fs *flag.FlagSet, f *acmeFlags) {
	fs.StringVar(&f.ca, "acme-ca", acme.LetsEncrypt, "ACME directory URL the certificates of acme = true routes are ordered from")
	fs.StringVar(&f.email, "acme-email", "", "contact address of the ACME account (default: none)")
	fs.StringVar(&f.caRoot, "acme-ca-root", "", "PEM file of a root to trust for the ACME CA's HTTPS, for a private or test CA (default: system roots)")
	fs.StringVar(&f.prefix, "acme-prefix", "gateway/acme/", "Consul KV prefix where replicas share ACME certificates, account keys, challenge tokens and locks")
	fs.StringVar(&f.challenges, "acme-challenges", "http-01,tls-alpn-01", "ACME challenge types offered to the CA (http-01 needs -listen, tls-alpn-01 -tls-listen)")
	fs.IntVar(&f.maxHosts, "acme-max-hosts", acme.DefaultMaxHosts, "most hosts certificates are obtained for; the rest (in name order) get none")
	fs.BoolVar(&f.ari, "acme-ari", true, "follow the CA's ACME Renewal Information on when to renew (false: renew with a third of the lifetime left)")
	fs.DurationVar(&f.renewInterval, "acme-renew-interval", acme.DefaultRenewInterval, "how often ACME certificates are checked for renewal")
}

// check reports settings that cannot work.
func (f acmeFlags) check() error {
	if f.maxHosts < 1 {
		return fmt.Errorf("%w: -acme-max-hosts must be at least 1", errUsage)
	}
	if f.renewInterval <= 0 {
		return fmt.Errorf("%w: -acme-renew-interval must be positive", errUsage)
	}
	if !strings.HasSuffix(f.prefix, "/") {
		return fmt.Errorf("%w: -acme-prefix must end in \"/\"", errUsage)
	}
	for c := range strings.SplitSeq(f.challenges, ",") {
		if c != "http-01" && c != "tls-alpn-01" {
			return fmt.Errorf("%w: -acme-challenges: unknown challenge %q (want http-01, tls-alpn-01)", errUsage, c)
		}
	}
	return nil
}

func (f acmeFlags) offers(challenge string) bool {
	for c := range strings.SplitSeq(f.challenges, ",") {
		if c == challenge {
			return true
		}
	}
	return false
}

// acmeSide is the running ACME manager, nil fields without a TLS
// listener: a certificate nobody can be served would only load the CA.
type acmeSide struct {
	mgr   *acme.Manager
	store *registry.Store
	warn  sync.Once
}

// hooks is the TLS listener's seam: challenge hellos are answered by the
// manager before the certificate store sees them. The manager is created
// after the listeners are bound, before they serve, so the closure reads it
// only once it is set.
func (s *acmeSide) hooks(f acmeFlags) certs.Hooks {
	if !f.offers("tls-alpn-01") {
		return certs.Hooks{}
	}
	return certs.Hooks{
		NextProtos: []string{acme.NextProtos},
		WrapGetCertificate: func(next certs.GetCertificateFunc) certs.GetCertificateFunc {
			return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				if s.mgr == nil {
					return next(hello)
				}
				return s.mgr.ChallengeFirst(next)(hello)
			}
		},
	}
}

// start creates the manager once the listeners' addresses are known; the
// certificates it holds are published into the TLS listener's store.
func (s *acmeSide) start(f acmeFlags, client *api.Client, plainAddr, tlsAddr string, store *certs.Store, logger hclog.Logger) error {
	if tlsAddr == "" {
		return nil
	}
	httpAddr := plainAddr
	if !f.offers("http-01") {
		httpAddr = ""
	}
	alpnAddr := tlsAddr
	if !f.offers("tls-alpn-01") {
		alpnAddr = ""
	}
	if httpAddr == "" && alpnAddr == "" {
		return fmt.Errorf("%w: -acme-challenges %s cannot be answered: http-01 needs -listen, tls-alpn-01 -tls-listen", errUsage, f.challenges)
	}
	s.store = registry.NewStore(client, f.prefix, registry.StoreOptions{Logger: logger.Named("store")})
	mgr, err := acme.New(acme.Options{
		CA: f.ca, Email: f.email, CARootFile: f.caRoot, Store: s.store,
		HTTPAddr: httpAddr, TLSAddr: alpnAddr, DisableHTTP01: httpAddr == "",
		MaxHosts: f.maxHosts, RenewInterval: f.renewInterval, DisableARI: !f.ari, Logger: logger,
		OnChange: func(m *acme.Manager) { publishACME(store, m) },
	})
	if err != nil {
		_ = s.store.Close()
		return err
	}
	s.mgr = mgr
	return nil
}

// publishACME replaces the store's ACME certificates with the manager's,
// one per host, named by the host in /certs and the expiry metric; hosts
// whose last order or renewal failed are listed as rejected, with the
// error.
func publishACME(store *certs.Store, mgr *acme.Manager) {
	var out []*certs.Cert
	seen := map[string]bool{}
	for _, c := range mgr.Certificates() {
		// The one valid longest comes first; the others are on their
		// way out (a renewal being swapped in).
		if seen[c.Host] {
			continue
		}
		seen[c.Host] = true
		names := make([]string, len(c.Names))
		for i, n := range c.Names {
			names[i] = strings.ToLower(n)
		}
		out = append(out, &certs.Cert{Kind: certs.SourceACME, Source: c.Host, Names: names,
			NotBefore: c.TLS.Leaf.NotBefore, NotAfter: c.NotAfter, TLS: c.TLS})
	}
	var rejected []certs.Rejected
	for _, f := range mgr.Failures() {
		rejected = append(rejected, certs.Rejected{Kind: certs.SourceACME, Source: f.Host, Error: f.Error, At: f.At})
	}
	store.Set(certs.SourceACME, out, rejected)
}

// onPublish hands each table's ACME hosts to the manager, on the
// controller's goroutine, off the request path.
func (s *acmeSide) onPublish(logger hclog.Logger) func(*gateway.Table) {
	return func(t *gateway.Table) {
		hosts := t.ACMEHosts()
		if s.mgr == nil {
			if len(hosts) > 0 {
				s.warn.Do(func() {
					logger.Warn("routes ask for ACME certificates but there is no -tls-listen; none are ordered", "hosts", hosts)
				})
			}
			return
		}
		s.mgr.SetHosts(hosts)
	}
}

// handler answers HTTP-01 challenges on the plain listener before
// routing.
func (s *acmeSide) handler(next http.Handler) http.Handler {
	if s.mgr == nil {
		return next
	}
	return s.mgr.HTTPHandler(next)
}

// stop ends renewals and releases the locks this replica holds.
func (s *acmeSide) stop() {
	if s.mgr != nil {
		s.mgr.Stop()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
}
