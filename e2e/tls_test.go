package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/devcert"
	"github.com/gatewayco/gateway/internal/testkit"
)

// certPair is a self-signed certificate written to files.
type certPair struct {
	certFile, keyFile string
	certPEM, keyPEM   []byte
	pool              *x509.CertPool // trusts this certificate only
}

// newCertPair writes a certificate for names, valid from an hour ago for
// a year, into dir as base.crt and base.key.
func newCertPair(t *testing.T, dir, base string, names ...string) certPair {
	t.Helper()
	return newCertPairWith(t, dir, base, devcert.Options{Names: names})
}

func newCertPairWith(t *testing.T, dir, base string, o devcert.Options) certPair {
	t.Helper()
	c, k, err := devcert.Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	p := certPair{certFile: filepath.Join(dir, base+".crt"), keyFile: filepath.Join(dir, base+".key"), certPEM: c, keyPEM: k, pool: x509.NewCertPool()}
	p.pool.AppendCertsFromPEM(c)
	if err := os.WriteFile(p.certFile, c, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.keyFile, k, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// bundle is the pair as one KV bundle: chain, then key.
func (p certPair) bundle() []byte { return append(append([]byte{}, p.certPEM...), p.keyPEM...) }

// tlsTransport trusts no certificate and verifies none, so a test can see
// which certificate the gateway chose for serverName; h2 allows HTTP/2.
func tlsTransport(serverName string, h2 bool) *http.Transport {
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: serverName, InsecureSkipVerify: true}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	return tr
}

// servedCert handshakes with the TLS listener for serverName ("" sends
// no SNI) and returns the leaf it got, nil if the handshake failed.
func servedCert(t *testing.T, p *gatewayProc, serverName string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", p.tlsAddr, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err != nil {
		return nil
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func TestTLSListenerServesHTTP2AndHTTP1(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	startBackend(t, client, "tlsapp", "tlsapp-1")
	putRoute(t, client, "tlsapp.hcl", routeDoc("tlsapp", "/api/tlsapp", "tlsapp"))
	dir := t.TempDir()
	pair := newCertPair(t, dir, "gw", "gw.test", "127.0.0.1")
	p := startGateway(t, addr, "-tls-listen", "127.0.0.1:0", "-tls-cert", pair.certFile, "-tls-key", pair.keyFile)
	if p.tlsAddr == "" {
		t.Fatal("serving line has no tls_listen")
	}
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pair.pool, ServerName: "gw.test"}, ForceAttemptHTTP2: true}
		if !h2 {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
			tr.ForceAttemptHTTP2 = false
		}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		var resp *http.Response
		var err error
		testkit.WaitFor(t, "route over TLS", func() bool {
			resp, err = c.Get(p.tlsURL("/api/tlsapp/x"))
			if err != nil {
				return false
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		want := map[bool]int{true: 2, false: 1}[h2]
		if resp.ProtoMajor != want {
			t.Errorf("h2=%v: protocol %s, want HTTP/%d", h2, resp.Proto, want)
		}
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			t.Errorf("h2=%v: TLS state %+v", h2, resp.TLS)
		}
		c.CloseIdleConnections()
	}
	// TLS 1.1 and below are refused.
	if conn, err := tls.Dial("tcp", p.tlsAddr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	// The plain listener still serves.
	if code, _ := getInstance(t, p, "/api/tlsapp/x"); code != http.StatusOK {
		t.Errorf("plain listener: %d", code)
	}
}
