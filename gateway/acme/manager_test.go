package acme_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/gateway/acme"
	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/pebbletest"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

const host = "acme.test"

// replica is one manager with its own plain and TLS listeners, as a
// gateway process would have.
type replica struct {
	m        *acme.Manager
	httpAddr string
	tlsAddr  string
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func port(t *testing.T, ln net.Listener) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// startReplica serves m's HTTP-01 handler (in front of a 404) and its
// GetCertificate on the two listeners.
func startReplica(t *testing.T, client *api.Client, caURL, caRoot string, plain, tlsLn net.Listener, name string) *replica {
	t.Helper()
	store := registry.NewStore(client, "gateway/acme/", registry.StoreOptions{LockDelay: time.Second})
	m, err := acme.New(acme.Options{
		CA: caURL, CARootFile: caRoot, Store: store,
		HTTPAddr: plain.Addr().String(), TLSAddr: tlsLn.Addr().String(),
		Logger: hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Info, Output: testWriter{t}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	web := &http.Server{Handler: m.HTTPHandler(http.NotFoundHandler())}
	sec := &http.Server{
		Handler:   http.NotFoundHandler(),
		TLSConfig: &tls.Config{GetCertificate: m.GetCertificate, NextProtos: []string{"http/1.1", acme.NextProtos}, MinVersion: tls.VersionTLS12},
	}
	go func() { _ = web.Serve(plain) }()
	go func() { _ = sec.ServeTLS(tlsLn, "", "") }()
	t.Cleanup(func() {
		m.Stop()
		_ = web.Close()
		_ = sec.Close()
		_ = store.Close()
	})
	return &replica{m: m, httpAddr: plain.Addr().String(), tlsAddr: tlsLn.Addr().String()}
}

// testWriter sends logs to t.Log, so they show only for failing tests.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// served returns the serial of the certificate addr serves for name,
// verified against roots, or "" while the handshake fails.
func served(addr, name string, roots *x509.CertPool) (string, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

func TestTwoReplicasOneOrderBothServe(t *testing.T) {
	agent := consultest.Start(t)
	client, err := registry.NewClient(agent.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	plainA, tlsA, plainB, tlsB := listen(t), listen(t), listen(t), listen(t)
	// Pebble reaches replica A only: B's tokens, if B orders, must come
	// through Consul.
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(t, plainA), TLSPort: port(t, tlsA)})
	a := startReplica(t, client, ca.Directory, ca.CARootFile, plainA, tlsA, "a")
	b := startReplica(t, client, ca.Directory, ca.CARootFile, plainB, tlsB, "b")
	a.m.SetHosts([]string{host})
	b.m.SetHosts([]string{"ACME.test."}) // normalised to the same name
	roots := ca.Roots(t)

	serialA := testkit.WaitValue(t, "replica A serves a certificate from Pebble", func() (string, bool) {
		s, err := served(a.tlsAddr, host, roots)
		return s, err == nil
	})
	serialB := testkit.WaitValue(t, "replica B serves a certificate from Pebble", func() (string, bool) {
		s, err := served(b.tlsAddr, host, roots)
		return s, err == nil
	})
	if serialA != serialB {
		t.Errorf("replicas serve different certificates: %s and %s", serialA, serialB)
	}
	if n := ca.Orders(); n != 1 {
		t.Errorf("Pebble received %d orders, want 1", n)
	}
	if got := a.m.Certificates(); len(got) != 1 || got[0].Serial != serialA || !slices.Equal(got[0].Names, []string{host}) {
		t.Errorf("Certificates() = %+v", got)
	}

	// A name removed from the set is no longer served.
	b.m.SetHosts(nil)
	if _, err := served(b.tlsAddr, host, roots); err == nil {
		t.Error("replica B still serves a host it no longer manages")
	}
}

func TestHTTPHandlerPassesEverythingElse(t *testing.T) {
	agent := consultest.Start(t)
	client, err := registry.NewClient(agent.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	store := registry.NewStore(client, "gateway/acme/", registry.StoreOptions{})
	t.Cleanup(func() { _ = store.Close() })
	m, err := acme.New(acme.Options{CA: "https://127.0.0.1:1/dir", Store: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	m.SetHosts([]string{host})
	h := m.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for _, tt := range []struct {
		host, path string
		want       int
	}{
		{host, "/api", http.StatusTeapot},
		{"other.test", "/.well-known/acme-challenge/tok", http.StatusTeapot}, // not managed: routed
		{host, "/.well-known/acme-challenge/unknown", http.StatusNotFound},   // managed, no such token
		{host + ":80", "/.well-known/acme-challenge/unknown", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://"+tt.host+tt.path, nil))
		if rec.Code != tt.want {
			t.Errorf("%s%s: status %d, want %d", tt.host, tt.path, rec.Code, tt.want)
		}
	}
	// Challenge lookups reaching Consul are rate limited.
	var limited bool
	for range acme.DefaultChallengeBurst + 10 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://"+host+"/.well-known/acme-challenge/x", nil))
		limited = limited || rec.Code == http.StatusServiceUnavailable
	}
	if !limited {
		t.Error("a burst of challenge lookups was never limited")
	}
}

func TestSetHostsBoundsAndValidates(t *testing.T) {
	agent := consultest.Start(t)
	client, err := registry.NewClient(agent.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	store := registry.NewStore(client, "gateway/acme/", registry.StoreOptions{})
	t.Cleanup(func() { _ = store.Close() })
	// No CA answers here: orders fail and back off, which is the point of
	// a host that cannot be validated.
	m, err := acme.New(acme.Options{CA: "https://127.0.0.1:1/dir", Store: store, MaxHosts: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	m.SetHosts([]string{"c.test", "*.x.test", "b.test", "{a}.test", "a.test", "a.test"})
	if got, want := m.Hosts(), []string{"a.test", "b.test"}; !slices.Equal(got, want) {
		t.Errorf("Hosts() = %q, want %q (invalid dropped, bounded to 2 in order)", got, want)
	}
	_, err = m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
	if !errors.Is(err, acme.ErrNoCertificate) {
		t.Errorf("GetCertificate before issuance: %v", err)
	}
	if c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "c.test"}); c != nil || err != nil {
		t.Errorf("GetCertificate of an unmanaged name = %v, %v; want nil, nil", c, err)
	}

	// The failed orders are listed, with their error.
	testkit.WaitFor(t, "both failed orders listed", func() bool {
		f := m.Failures()
		return len(f) == 2 && f[0].Host == "a.test" && f[1].Host == "b.test" && f[0].Error != ""
	})

	// Flipping hosts out and in does not restart their orders at the
	// pace of KV writes: the two start tokens are spent.
	m.SetHosts(nil)
	if got := acme.Managed(m); len(got) != 0 {
		t.Errorf("managed after removal: %q", got)
	}
	if f := m.Failures(); len(f) != 0 {
		t.Errorf("failures of removed hosts still listed: %+v", f)
	}
	m.SetHosts([]string{"a.test", "b.test"})
	if got := acme.Managed(m); len(got) != 0 {
		t.Errorf("hosts restarted at once after a flip: %q", got)
	}
	if got := m.Hosts(); len(got) != 2 {
		t.Errorf("waiting hosts must stay in the set: %q", got)
	}
}

// TestChallengeFloodDoesNotStarveTheCA: clients hammering a managed
// host's challenge path use up the rate limit of lookups that reach
// Consul; the CA's own validation of a token this replica presented is
// answered from memory and must not be refused with them.
func TestChallengeFloodDoesNotStarveTheCA(t *testing.T) {
	agent := consultest.Start(t)
	client, err := registry.NewClient(agent.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	plain := listen(t)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(t, plain)})
	store := registry.NewStore(client, "gateway/acme/", registry.StoreOptions{LockDelay: time.Second})
	m, err := acme.New(acme.Options{
		CA: ca.Directory, CARootFile: ca.CARootFile, Store: store, HTTPAddr: plain.Addr().String(),
		Logger: hclog.New(&hclog.LoggerOptions{Name: "flood", Level: hclog.Info, Output: testWriter{t}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	web := &http.Server{Handler: m.HTTPHandler(http.NotFoundHandler())}
	go func() { _ = web.Serve(plain) }()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
		m.Stop()
		_ = web.Close()
		_ = store.Close()
	})
	limited := make(chan struct{}, 1)
	h := m.HTTPHandler(http.NotFoundHandler())
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://"+host+"/.well-known/acme-challenge/flood", nil))
				if rec.Code == http.StatusServiceUnavailable {
					select {
					case limited <- struct{}{}:
					default:
					}
				}
			}
		})
	}
	m.SetHosts([]string{host}) // the flood runs on the same limiter
	<-limited
	testkit.WaitFor(t, "certificate obtained under the flood", func() bool { return len(m.Certificates()) == 1 })
}
