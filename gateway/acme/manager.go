// Package acme obtains and renews certificates from an ACME CA for the hosts
// of `acme = true` routes, with certmagic, keeping every certificate,
// account key, challenge token and lock in Consul KV (registry.Store) so
// that N gateway replicas make one order per host and serve the same
// certificate. HTTP-01 is answered by Manager.HTTPHandler on the plain
// listener, TLS-ALPN-01 by Manager.GetCertificate on the TLS listener; the
// replica the CA reaches need not be the one that made the order, since
// challenge tokens are shared through Consul too.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/hashicorp/go-hclog"
	"github.com/mholt/acmez/v3"
	"golang.org/x/time/rate"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/registry"
)

// Defaults of Options.
const (
	// LetsEncrypt is the default CA: Let's Encrypt's production directory.
	LetsEncrypt = certmagic.LetsEncryptProductionCA
	// DefaultMaxHosts bounds the names the manager obtains certificates
	// for; names past it (in sorted order) are left out and logged. Route
	// documents are hostile: without a bound one document could make the
	// gateway ask the CA for thousands of certificates.
	DefaultMaxHosts = 100
	// DefaultRenewInterval is how often certificates are checked for
	// renewal (certmagic's RenewCheckInterval).
	DefaultRenewInterval = 10 * time.Minute
	// DefaultChallengeRate and DefaultChallengeBurst bound the challenge
	// lookups that reach Consul (an HTTP-01 request or TLS-ALPN-01 hello
	// whose token this replica does not hold itself), so clients
	// requesting challenge paths cannot turn into a flood of KV reads.
	DefaultChallengeRate  = rate.Limit(20)
	DefaultChallengeBurst = 40
	// DefaultStartInterval is the pace at which hosts may be taken into
	// management once the first MaxHosts are used up. Starting a host
	// without a certificate in Consul orders one at once (certmagic's
	// backoff only spaces the retries of one management), so a route
	// document flipping hosts in and out must not restart orders at the
	// pace of KV writes.
	DefaultStartInterval = time.Minute
)

// ErrNoCertificate is what GetCertificate returns for a name it manages
// but holds no certificate for yet.
var ErrNoCertificate = errors.New("acme: no certificate yet")

// Options configure a Manager.
type Options struct {
	// CA is the ACME directory URL; empty means LetsEncrypt.
	CA string
	// Email is the ACME account's contact; empty registers without one.
	Email string
	// CARootFile, if set, is a PEM file of roots trusted for the CA's
	// HTTPS endpoint (a private or test CA such as Pebble), on top of
	// the system roots.
	CARootFile string
	// Store holds everything certmagic keeps; it is shared by replicas.
	Store *registry.Store
	// HTTPAddr and TLSAddr are the plain and TLS listeners' addresses:
	// certmagic tries to bind challenge servers there and, finding them
	// in use, leaves answering to HTTPHandler and GetCertificate. An empty
	// TLSAddr disables TLS-ALPN-01.
	HTTPAddr, TLSAddr string
	// DisableHTTP01 leaves HTTP-01 out (TLS-ALPN-01 only).
	DisableHTTP01 bool
	// MaxHosts bounds the managed names; zero means DefaultMaxHosts.
	MaxHosts int
	// DisableARI turns off ACME Renewal Information: renewal then starts
	// when a third of the lifetime is left. ARI lets the CA say when to
	// renew (and ask for early renewal after an incident), but a test CA
	// with a short lifetime suggests a window days wide.
	DisableARI bool
	// RenewInterval is how often renewal is checked; zero means
	// DefaultRenewInterval. Tests shorten it.
	RenewInterval time.Duration
	// Logger receives certmagic's logs; nil discards them.
	Logger hclog.Logger
	// OnChange, if non-nil, is called after the certificates held may have
	// changed (one obtained or loaded, a host removed), and once every
	// RenewInterval in case a certificate another replica renewed was
	// reloaded without an event. It runs on one goroutine of the Manager,
	// never inside certmagic, so it may call Certificates on the Manager
	// it is given.
	OnChange func(*Manager)
}

// Manager obtains and renews certificates for a set of hosts given by
// SetHosts, and serves them and the challenges the CA asks for.
type Manager struct {
	cfg    *certmagic.Config
	issuer *certmagic.ACMEIssuer
	cache  *certmagic.Cache
	logger hclog.Logger
	max    int
	limit  *rate.Limiter
	starts *rate.Limiter

	// hosts is the current set, read on the request path without a lock.
	hostsMu sync.RWMutex
	hosts   map[string]bool
	// hostsKey is the list SetHosts was last given, joined.
	hostsKey    string
	hostsKeySet bool

	// managed holds a cancel func per host whose management runs, so a
	// removed host's retries stop.
	managedMu sync.Mutex
	managed   map[string]context.CancelFunc
	stopped   bool

	// failures is the last failed order or renewal per managed host,
	// cleared by a success or the host's removal.
	failuresMu sync.Mutex
	failures   map[string]Failure

	kick     chan struct{}
	stopLoop context.CancelFunc
	loopDone chan struct{}
}

// New builds a Manager; nothing is ordered until SetHosts.
func New(opts Options) (*Manager, error) {
	if opts.Store == nil {
		return nil, errors.New("acme: a Store is required")
	}
	if opts.CA == "" {
		opts.CA = LetsEncrypt
	}
	if opts.MaxHosts <= 0 {
		opts.MaxHosts = DefaultMaxHosts
	}
	if opts.RenewInterval <= 0 {
		opts.RenewInterval = DefaultRenewInterval
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	var roots *x509.CertPool
	if opts.CARootFile != "" {
		pem, err := os.ReadFile(opts.CARootFile)
		if err != nil {
			return nil, fmt.Errorf("acme: CA root: %w", err)
		}
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("acme: CA root %s: no PEM certificate", opts.CARootFile)
		}
	}
	zl := newZap(opts.Logger)
	m := &Manager{
		logger:  opts.Logger,
		max:     opts.MaxHosts,
		limit:   rate.NewLimiter(DefaultChallengeRate, DefaultChallengeBurst),
		starts:  rate.NewLimiter(rate.Every(DefaultStartInterval), opts.MaxHosts),
		hosts:   map[string]bool{},
		managed: map[string]context.CancelFunc{},
		kick:    make(chan struct{}, 1),

		failures: map[string]Failure{},
	}
	var cfgRef atomic.Pointer[certmagic.Config]
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		// The cache's maintenance goroutine starts here, before m.cfg
		// is set: it reads the config through an atomic.
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return cfgRef.Load(), nil },
		RenewCheckInterval: opts.RenewInterval,
		Logger:             zl,
	})
	m.cfg = certmagic.New(m.cache, certmagic.Config{
		Storage: storage{s: opts.Store},
		Logger:  zl,
		// No OCSP requests: Let's Encrypt no longer runs OCSP, and
		// stapling would be a second outbound path to bound.
		OCSP:       certmagic.OCSPConfig{DisableStapling: true},
		DisableARI: opts.DisableARI,
		OnEvent: func(_ context.Context, event string, data map[string]any) error {
			switch event {
			case "cached_managed_cert":
				m.changed()
			case "cert_obtained":
				m.recordFailure(data, nil)
				m.changed()
			case "cert_failed":
				err, _ := data["error"].(error)
				if err == nil {
					err = errors.New("unknown error")
				}
				m.recordFailure(data, err)
				m.changed()
			}
			return nil
		},
	})
	iss := certmagic.ACMEIssuer{
		CA:                      opts.CA,
		Email:                   opts.Email,
		Agreed:                  true,
		TrustedRoots:            roots,
		DisableHTTPChallenge:    opts.DisableHTTP01,
		DisableTLSALPNChallenge: opts.TLSAddr == "",
		Logger:                  zl,
	}
	if host, port, ok := splitAddr(opts.HTTPAddr); ok {
		iss.ListenHost, iss.AltHTTPPort = host, port
	}
	if host, port, ok := splitAddr(opts.TLSAddr); ok {
		iss.ListenHost, iss.AltTLSALPNPort = host, port
	}
	m.issuer = certmagic.NewACMEIssuer(m.cfg, iss)
	m.cfg.Issuers = []certmagic.Issuer{m.issuer}
	cfgRef.Store(m.cfg)
	var loopCtx context.Context
	loopCtx, m.stopLoop = context.WithCancel(context.Background())
	m.loopDone = make(chan struct{})
	go m.notifyLoop(loopCtx, opts.OnChange, opts.RenewInterval)
	return m, nil
}

// changed asks notifyLoop to call OnChange; it never blocks, and changes
// arriving meanwhile fold into one call.
func (m *Manager) changed() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Manager) notifyLoop(ctx context.Context, onChange func(*Manager), every time.Duration) {
	defer close(m.loopDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-t.C:
			m.apply() // hosts that waited for a start token
		}
		if onChange != nil {
			onChange(m)
		}
	}
}

// splitAddr reads a listener address ("127.0.0.1:8080", ":80").
func splitAddr(addr string) (string, int, bool) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	port, err := strconv.Atoi(p)
	return host, port, err == nil && port > 0
}

// SetHosts makes the managed set equal to hosts: new names are loaded
// from Consul or ordered (asynchronously, with certmagic's retries and
// backoff), removed names stop being renewed and served. Invalid names and
// names past MaxHosts are dropped and logged. It does not block on the CA
// or Consul, so the controller can call it on every publish.
func (m *Manager) SetHosts(hosts []string) {
	// Tables are published on every health change too: only a new host
	// list is filtered (and its problems logged) again.
	key := strings.Join(hosts, "\x00")
	m.hostsMu.RLock()
	same := m.hostsKey == key && m.hostsKeySet
	m.hostsMu.RUnlock()
	if same {
		return
	}
	want := m.filter(hosts)
	m.hostsMu.Lock()
	m.hosts, m.hostsKey, m.hostsKeySet = want, key, true
	m.hostsMu.Unlock()

	m.apply()
}

// apply aligns the hosts under management with m.hosts. Starting a host
// takes a token of m.starts; a host without one waits for a later call
// (the next publish, or the periodic one in notifyLoop).
func (m *Manager) apply() {
	m.hostsMu.RLock()
	want := m.hosts
	m.hostsMu.RUnlock()
	m.managedMu.Lock()
	defer m.managedMu.Unlock()
	if m.stopped {
		return
	}
	var removed []certmagic.SubjectIssuer
	for h, cancel := range m.managed {
		if !want[h] {
			cancel()
			delete(m.managed, h)
			removed = append(removed, certmagic.SubjectIssuer{Subject: h})
			m.failuresMu.Lock()
			delete(m.failures, h)
			m.failuresMu.Unlock()
			m.logger.Info("host no longer managed", "host", h)
		}
	}
	if len(removed) > 0 {
		m.cache.RemoveManaged(removed)
		m.changed()
	}
	for _, h := range slices.Sorted(maps.Keys(want)) {
		if m.managed[h] != nil {
			continue
		}
		if !m.starts.Allow() {
			m.logger.Warn("ACME host waits: management starts over their rate", "host", h, "per", DefaultStartInterval)
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		m.managed[h] = cancel
		m.logger.Info("managing certificate", "host", h)
		if err := m.cfg.ManageAsync(ctx, []string{h}); err != nil {
			m.logger.Error("managing certificate", "host", h, "error", err)
		}
	}
}

// filter normalises hosts, drops invalid ones and keeps at most m.max.
func (m *Manager) filter(hosts []string) map[string]bool {
	names := make([]string, 0, len(hosts))
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if err := config.ValidACMEHost(h); err != nil {
			m.logger.Warn("ignoring ACME host", "host", h, "error", err)
			continue
		}
		names = append(names, h)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) > m.max {
		m.logger.Warn("too many ACME hosts; the rest get no certificate", "hosts", len(names), "max", m.max, "first_left_out", names[m.max])
		names = names[:m.max]
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	return want
}

// Hosts returns the managed names, sorted.
func (m *Manager) Hosts() []string {
	m.hostsMu.RLock()
	defer m.hostsMu.RUnlock()
	return slices.Sorted(maps.Keys(m.hosts))
}

func (m *Manager) manages(host string) bool {
	m.hostsMu.RLock()
	defer m.hostsMu.RUnlock()
	return m.hosts[strings.ToLower(host)]
}

// HTTPHandler answers HTTP-01 challenges for managed hosts before next
// sees the request: only GETs under /.well-known/acme-challenge/ whose Host
// is managed, so routing is untouched for everything else (an unmanaged
// host's challenge path is routed like any path). A token this replica
// did not present itself is read from Consul, rate limited; beyond the
// limit the answer is a 503 and the CA retries.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !certmagic.LooksLikeHTTPChallenge(r) || !m.manages(hostOnly(r.Host)) {
			next.ServeHTTP(w, r)
			return
		}
		if !m.allowChallenge(hostOnly(r.Host)) {
			exchange.WriteError(w, http.StatusServiceUnavailable, "acme challenge lookups over their rate limit", "")
			return
		}
		if !m.issuer.HandleHTTPChallenge(w, r) {
			exchange.WriteError(w, http.StatusNotFound, "no such acme challenge", "")
		}
	})
}

// allowChallenge reports whether a challenge request for host may be
// answered. One whose challenge this replica presented itself is answered
// from memory and costs nothing; only a lookup that would reach Consul
// takes a token of the rate limit. Otherwise anyone requesting challenge
// paths of a managed host would use up the limit and get the CA's own
// validation refused, failing the order.
func (m *Manager) allowChallenge(host string) bool {
	if _, ok := certmagic.GetACMEChallenge(host); ok {
		return true
	}
	return m.limit.Allow()
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// NextProtos is the ALPN protocol a TLS listener must offer, alongside its
// own, for TLS-ALPN-01.
const NextProtos = acmez.ACMETLS1Protocol

// IsChallengeHello reports whether hello is a CA's TLS-ALPN-01 validation
// (only "acme-tls/1" offered, RFC 8737), which GetCertificate must answer
// before any other certificate source.
func IsChallengeHello(hello *tls.ClientHelloInfo) bool {
	return hello.ServerName != "" && len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmez.ACMETLS1Protocol
}

// GetCertificate returns the certificate for hello's server name if it is
// managed: a TLS-ALPN-01 challenge certificate for a CA's validation
// hello, else the issued certificate from memory (never Consul). For
// names it does not manage it returns nil, nil so a caller can try its
// other sources; ErrNoCertificate while a managed name waits for issuance.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(hello.ServerName)
	if !m.manages(name) {
		return nil, nil
	}
	if IsChallengeHello(hello) {
		if !m.allowChallenge(name) {
			return nil, errors.New("acme: challenge lookups over their rate limit")
		}
		return m.cfg.GetCertificate(hello)
	}
	var best *certmagic.Certificate
	for _, c := range m.cache.AllMatchingCertificates(name) {
		if best == nil || c.Leaf.NotAfter.After(best.Leaf.NotAfter) {
			best = &c
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w for %q", ErrNoCertificate, name)
	}
	return &best.Certificate, nil
}

// Certificate is one certificate the manager holds for a managed host.
type Certificate struct {
	// Host is the managed name it was obtained for.
	Host string
	// Names are its DNS names.
	Names    []string
	NotAfter time.Time
	Serial   string
	// TLS is what a handshake serves; its Leaf is set.
	TLS *tls.Certificate
}

// Certificates lists the certificates held for managed hosts, the one
// valid longest first for each host, from memory.
func (m *Manager) Certificates() []Certificate {
	var out []Certificate
	for _, h := range m.Hosts() {
		cs := m.cache.AllMatchingCertificates(h)
		slices.SortFunc(cs, func(a, b certmagic.Certificate) int { return b.Leaf.NotAfter.Compare(a.Leaf.NotAfter) })
		for _, c := range cs {
			t := c.Certificate
			t.Leaf = c.Leaf
			out = append(out, Certificate{Host: h, Names: c.Names, NotAfter: c.Leaf.NotAfter, Serial: c.Leaf.SerialNumber.String(), TLS: &t})
		}
	}
	return out
}

// ChallengeFirst wraps a TLS listener's certificate callback so that a
// CA's TLS-ALPN-01 hello for a managed host is answered by the manager and
// every other hello by next.
func (m *Manager) ChallengeFirst(next func(*tls.ClientHelloInfo) (*tls.Certificate, error)) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if IsChallengeHello(hello) && m.manages(hello.ServerName) {
			return m.GetCertificate(hello)
		}
		return next(hello)
	}
}

// Failure is the last failed attempt to obtain or renew a host's
// certificate; certmagic retries it with backoff.
type Failure struct {
	Host  string
	Error string
	At    time.Time
}

// maxFailureText bounds an error kept for listing: a CA's problem
// documents are its own text.
const maxFailureText = 512

// recordFailure keeps (err != nil) or clears the failure of the host an
// event names, if the host is managed.
func (m *Manager) recordFailure(data map[string]any, err error) {
	host, _ := data["identifier"].(string)
	if host = strings.ToLower(host); !m.manages(host) {
		return
	}
	m.failuresMu.Lock()
	defer m.failuresMu.Unlock()
	if err == nil {
		delete(m.failures, host)
		return
	}
	text := err.Error()
	if len(text) > maxFailureText {
		// Cut on a character boundary: a split one is invalid UTF-8.
		text = strings.ToValidUTF8(text[:maxFailureText], "") + "..."
	}
	m.failures[host] = Failure{Host: host, Error: text, At: time.Now()}
}

// Failures lists the hosts whose last attempt failed, sorted by host.
func (m *Manager) Failures() []Failure {
	m.failuresMu.Lock()
	defer m.failuresMu.Unlock()
	out := slices.Collect(maps.Values(m.failures))
	slices.SortFunc(out, func(a, b Failure) int { return strings.Compare(a.Host, b.Host) })
	return out
}

// Stop ends renewals and pending orders; locks still held are released
// when their Store is closed.
func (m *Manager) Stop() {
	m.managedMu.Lock()
	m.stopped = true
	for h, cancel := range m.managed {
		cancel()
		delete(m.managed, h)
	}
	m.managedMu.Unlock()
	m.cache.Stop()
	m.stopLoop()
	<-m.loopDone
}
