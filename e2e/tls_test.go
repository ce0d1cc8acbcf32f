package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

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

	// -listen "" leaves the TLS listener alone.
	only := startGateway(t, addr, "-listen", "", "-tls-listen", "127.0.0.1:0", "-tls-cert", pair.certFile, "-tls-key", pair.keyFile)
	if only.public != "" || only.tlsAddr == "" {
		t.Fatalf("-listen \"\": listen %q, tls_listen %q", only.public, only.tlsAddr)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pair.pool, ServerName: "gw.test"}}, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	testkit.WaitFor(t, "the TLS-only gateway routes", func() bool {
		resp, err := c.Get(only.tlsURL("/api/tlsapp/x"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// certsBody is the admin /certs page.
type certsBody struct {
	Certificates []struct {
		Names            []string `json:"names"`
		Kind             string   `json:"kind"`
		Source           string   `json:"source"`
		ExpiresInSeconds int64    `json:"expires_in_seconds"`
		Default          bool     `json:"default"`
	} `json:"certificates"`
	Rejected []struct {
		Kind   string `json:"kind"`
		Source string `json:"source"`
		Error  string `json:"error"`
	} `json:"rejected"`
}

func getCerts(t *testing.T, p *gatewayProc) certsBody {
	t.Helper()
	var b certsBody
	if err := json.Unmarshal([]byte(adminText(t, p, "/certs")), &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// serial is the served leaf's serial for serverName, "" if the handshake
// failed.
func serial(t *testing.T, p *gatewayProc, serverName string) string {
	t.Helper()
	if c := servedCert(t, p, serverName); c != nil {
		return c.SerialNumber.String()
	}
	return ""
}

func leafSerial(t *testing.T, certPEM []byte) string {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

func putCert(t *testing.T, client *api.Client, key string, value []byte) {
	t.Helper()
	if _, err := client.KV().Put(&api.KVPair{Key: "gateway/certs/" + key, Value: value}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestTLSCertsFromConsulKV(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	dir := t.TempDir()
	p := startGateway(t, addr, "-tls-listen", "127.0.0.1:0")
	wild := newCertPair(t, dir, "wild", "*.example.test")
	api1 := newCertPair(t, dir, "api1", "api.example.test")
	putCert(t, client, "wild", wild.bundle())
	putCert(t, client, "api", api1.bundle())
	testkit.WaitFor(t, "the KV certificates serve", func() bool {
		return serial(t, p, "API.example.test") == leafSerial(t, api1.certPEM)
	})
	if got := serial(t, p, "www.example.test"); got != leafSerial(t, wild.certPEM) {
		t.Errorf("www.example.test: served %s, want the wildcard", got)
	}
	if got := serial(t, p, "a.b.example.test"); got != "" {
		t.Errorf("a.b.example.test: served %s; a wildcard covers one label and there is no default", got)
	}
	if got := serial(t, p, ""); got != "" {
		t.Errorf("no SNI: served %s, want a failed handshake without a default", got)
	}

	def := newCertPair(t, dir, "def", "default.test")
	putCert(t, client, "default", def.bundle())
	testkit.WaitFor(t, "the default key serves clients without SNI", func() bool {
		return serial(t, p, "") == leafSerial(t, def.certPEM)
	})
	if got := serial(t, p, "unknown.test"); got != leafSerial(t, def.certPEM) {
		t.Errorf("unknown name: served %s, want the default", got)
	}

	// Replaced: new handshakes get the new bundle.
	api2 := newCertPair(t, dir, "api2", "api.example.test")
	putCert(t, client, "api", api2.bundle())
	testkit.WaitFor(t, "the replaced bundle serves", func() bool {
		return serial(t, p, "api.example.test") == leafSerial(t, api2.certPEM)
	})

	// Bad versions are rejected with the key named; the last good one
	// keeps serving.
	other := newCertPair(t, dir, "other", "api.example.test")
	putCert(t, client, "api", append(append([]byte{}, api2.certPEM...), other.keyPEM...))
	expired := newCertPairWith(t, dir, "expired", devcert.Options{Names: []string{"old.example.test"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	putCert(t, client, "old", expired.bundle())
	b := testkit.WaitValue(t, "both bad bundles listed", func() (certsBody, bool) {
		b := getCerts(t, p)
		return b, len(b.Rejected) == 2
	})
	for _, r := range b.Rejected {
		want := map[string]string{"gateway/certs/api": "does not match", "gateway/certs/old": "expired"}[r.Source]
		if want == "" || r.Kind != "kv" || !strings.Contains(r.Error, want) {
			t.Errorf("rejected %+v", r)
		}
	}
	if got := serial(t, p, "api.example.test"); got != leafSerial(t, api2.certPEM) {
		t.Errorf("after a bad version: served %s, want the last good one", got)
	}
	if got := serial(t, p, "old.example.test"); got != leafSerial(t, wild.certPEM) {
		t.Errorf("expired bundle: old.example.test served %s, want the wildcard", got)
	}
	if len(b.Certificates) != 3 {
		t.Errorf("certificates %+v", b.Certificates)
	}
	for _, c := range b.Certificates {
		if c.Kind != "kv" || c.ExpiresInSeconds <= 0 || c.Default != (c.Source == "gateway/certs/default") || len(c.Names) != 1 {
			t.Errorf("listed %+v", c)
		}
	}
	fams := scrape(t, p)
	if v := sample(fams, "gateway_tls_certificates_rejected_total", "kind=kv"); v != 2 {
		t.Errorf("rejected_total{kind=kv} = %v, want 2", v)
	}
	if v := sample(fams, "gateway_tls_certificate_expiry_seconds", "kind=kv", "source=gateway/certs/api"); v < 3600 {
		t.Errorf("expiry seconds of gateway/certs/api = %v", v)
	}

	// Deleted: the name falls back to the wildcard.
	if _, err := client.KV().Delete("gateway/certs/api", nil); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the deleted key stops serving", func() bool {
		return serial(t, p, "api.example.test") == leafSerial(t, wild.certPEM)
	})
}

func TestTLSFileRotationUnderLoad(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	startBackend(t, client, "rot", "rot-1")
	putRoute(t, client, "rot.hcl", routeDoc("rot", "/api/rot", "rot"))
	dir := t.TempDir()
	live := newCertPair(t, dir, "live", "gw.test")
	next := newCertPair(t, dir, "next", "gw.test")
	p := startGateway(t, addr, "-tls-listen", "127.0.0.1:0", "-tls-cert", live.certFile, "-tls-key", live.keyFile, "-tls-poll-interval", "50ms")
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(live.certPEM)
	roots.AppendCertsFromPEM(next.certPEM)
	transport := func() *http.Transport {
		return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "gw.test"}, ForceAttemptHTTP2: true}
	}
	testkit.WaitFor(t, "route over TLS", func() bool {
		c := &http.Client{Transport: transport(), Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get(p.tlsURL("/api/rot/x"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	l := startLoadWith(t, p.tlsURL("/api/rot/x"), 4, transport)
	l.waitProgress(t, 50)
	// Rename-over, one file at a time, as a Vault agent writes: between
	// the two the pair does not match and the old one keeps serving.
	if err := os.Rename(next.certFile, live.certFile); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the half-rotated pair reported", func() bool {
		b := getCerts(t, p)
		return len(b.Rejected) == 1 && strings.Contains(b.Rejected[0].Error, "does not match")
	})
	if got := serial(t, p, "gw.test"); got != leafSerial(t, live.certPEM) {
		t.Errorf("half-way through the rotation: served %s, want the last good certificate", got)
	}
	l.waitProgress(t, 20)
	if err := os.Rename(next.keyFile, live.keyFile); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "new handshakes get the new certificate", func() bool {
		return serial(t, p, "gw.test") == leafSerial(t, next.certPEM)
	})
	l.waitProgress(t, 50)
	l.finish(t)
	if b := getCerts(t, p); len(b.Certificates) != 1 || b.Certificates[0].Source != live.certFile || !b.Certificates[0].Default || len(b.Rejected) != 0 {
		t.Errorf("/certs %+v", b)
	}
}

// noRedirects is a client that shows redirects instead of following them.
func noRedirects(tr http.RoundTripper) *http.Client {
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestHTTPSOnlyRedirectAndHSTS(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	startBackend(t, client, "sec", "sec-1")
	putRoute(t, client, "sec.hcl", `route "secure" {
  path_prefix  = "/secure"
  service      = "sec"
  https_only   = true
  hsts_max_age = "24h"
}
route "open" {
  path_prefix = "/open"
  service     = "sec"
}
`)
	dir := t.TempDir()
	pair := newCertPair(t, dir, "gw", "gw.test")
	p := startGateway(t, addr, "-tls-listen", "127.0.0.1:0", "-tls-cert", pair.certFile, "-tls-key", pair.keyFile)
	rs := testkit.WaitValue(t, "routes with instances", func() (routesBody, bool) {
		rs := getRoutes(t, p)
		return rs, len(rs.Routes) == 2 && len(rs.Routes[0].Instances) == 1 && len(rs.Routes[1].Instances) == 1
	}).Routes
	for _, r := range rs {
		if want := r.Name == "secure"; r.HTTPSOnly != want || (r.HSTSMaxAge == "24h0m0s") != want {
			t.Errorf("/routes %s: https_only %v hsts_max_age %q", r.Name, r.HTTPSOnly, r.HSTSMaxAge)
		}
	}
	plainC := noRedirects(&http.Transport{})
	defer plainC.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, p.url("/secure/x?a=1&b=2"), strings.NewReader("body"))
	req.Host = "gw.test:8080"
	resp, err := plainC.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, tlsPort, _ := strings.Cut(p.tlsAddr, ":")
	if want := "https://gw.test:" + tlsPort + "/secure/x?a=1&b=2"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("plain POST: %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	if h := resp.Header.Get("Strict-Transport-Security"); h != "" {
		t.Errorf("HSTS over plain HTTP: %q", h)
	}
	// The route without https_only serves plain HTTP, without HSTS.
	resp, err = plainC.Get(p.url("/open/x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Strict-Transport-Security") != "" {
		t.Errorf("open route over plain HTTP: %d HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	tlsC := noRedirects(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pair.pool, ServerName: "gw.test"}, ForceAttemptHTTP2: true})
	defer tlsC.CloseIdleConnections()
	resp, err = tlsC.Get(p.tlsURL("/secure/x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Strict-Transport-Security") != "max-age=86400" {
		t.Errorf("secure route over HTTPS: %d HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}

	// -https-redirect sends every plain request over, routed or not.
	g := startGateway(t, addr, "-tls-listen", "127.0.0.1:0", "-tls-cert", pair.certFile, "-tls-key", pair.keyFile,
		"-https-redirect", "-https-port", "443", "-hsts-max-age", "1h")
	resp, err = plainC.Get(g.url("/nowhere?q=1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://127.0.0.1/nowhere?q=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("-https-redirect: %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	resp, err = tlsC.Get(g.tlsURL("/nowhere"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Strict-Transport-Security") != "max-age=3600" {
		t.Errorf("-hsts-max-age over HTTPS: %d HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
}

// TestTLSSIGTERMDrainsInFlightHTTP2Request: the TLS listener drains like
// the plain one: an HTTP/2 request in flight at SIGTERM completes, new
// connections are refused, and the process exits 0.
func TestTLSSIGTERMDrainsInFlightHTTP2Request(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	startBackendWith(t, client, "slowtls", "slowtls-1", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-time.After(30 * time.Second):
		}
		_, _ = io.WriteString(w, "slow answer")
	})
	putRoute(t, client, "slowtls.hcl", routeDoc("slowtls", "/api/slowtls", "slowtls"))
	pair := newCertPair(t, t.TempDir(), "gw", "gw.test")
	p := startGateway(t, addr, "-tls-listen", "127.0.0.1:0", "-tls-cert", pair.certFile, "-tls-key", pair.keyFile, "-drain-timeout", "20s")
	testkit.WaitFor(t, "route with its instance", func() bool {
		r := getRoutes(t, p).Routes
		return len(r) == 1 && len(r[0].Instances) == 1
	})
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pair.pool, ServerName: "gw.test"}, ForceAttemptHTTP2: true}, Timeout: 30 * time.Second}
	defer c.CloseIdleConnections()
	type result struct {
		code  int
		proto string
		body  string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.Get(p.tlsURL("/api/slowtls"))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{code: resp.StatusCode, proto: resp.Proto, body: string(b), err: err}
	}()
	<-arrived
	p.signal(t, syscall.SIGTERM)
	testkit.WaitFor(t, "new TLS connections refused", func() bool {
		conn, err := net.DialTimeout("tcp", p.tlsAddr, time.Second)
		if err == nil {
			conn.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})
	if !p.running() {
		t.Fatalf("gateway exited with a request in flight: %v", p.wait(t, stopTimeout))
	}
	close(release)
	r := <-done
	if r.err != nil || r.code != 200 || r.body != "slow answer" || r.proto != "HTTP/2.0" {
		t.Fatalf("in-flight request: %+v; want 200 \"slow answer\" over HTTP/2", r)
	}
	if err := p.wait(t, stopTimeout); err != nil {
		t.Fatalf("exit: %v, want status 0", err)
	}
}
