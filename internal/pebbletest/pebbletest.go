// Package pebbletest runs a real Pebble (Let's Encrypt's test ACME CA) with
// pebble-challtestsrv as its DNS for tests: test names resolve to
// 127.0.0.1, and Pebble validates challenges against the ports the test
// says, so a gateway under test answers them.
package pebbletest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/sdk/freeport"

	"github.com/gatewayco/gateway/internal/testkit"
)

// StartTimeout bounds how long Start waits for Pebble and challtestsrv to
// answer.
const StartTimeout = 30 * time.Second

// RequireBinaries returns the directory holding pebble and
// pebble-challtestsrv found on PATH. When they are missing it skips the
// test, unless the CI environment variable is set, in which case it fails
// it: CI must never skip the ACME tests silently.
func RequireBinaries(tb testing.TB) (pebble, challtestsrv string) {
	tb.Helper()
	p, err1 := exec.LookPath("pebble")
	c, err2 := exec.LookPath("pebble-challtestsrv")
	if err1 == nil && err2 == nil {
		return p, c
	}
	const hint = `pebble not on PATH; run: PATH="$(scripts/install-pebble.sh | tail -n1):$PATH" go test ...`
	if _, ci := os.LookupEnv("CI"); ci {
		tb.Fatalf("%s (CI is set, so this is a failure, not a skip)", hint)
	}
	tb.Skipf("%s (set CI to turn this skip into a failure)", hint)
	return "", ""
}

// Options say where Pebble sends its validation requests and how long its
// certificates last.
type Options struct {
	// HTTPPort and TLSPort are the ports Pebble connects to (on 127.0.0.1,
	// where every name resolves) for HTTP-01 and TLS-ALPN-01.
	HTTPPort, TLSPort int
	// Validity is the lifetime of issued certificates; zero means Pebble's
	// default (about five years). Seconds are the unit Pebble knows.
	Validity time.Duration
}

// Pebble is a running CA.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// CARootFile is a PEM file with the root of Pebble's own HTTPS
	// certificate: what a client of Directory must trust (-acme-ca-root).
	CARootFile string
	// ManagementURL is Pebble's management API (roots, intermediates).
	ManagementURL string

	client *http.Client
	log    *testkit.Buffer
}

// Start runs challtestsrv (DNS only, every name → 127.0.0.1) and Pebble on
// free loopback ports, waits until both answer, and stops them when the
// test ends; their output is logged if the test failed. Validation does not
// sleep and no nonce is rejected at random, so issuance takes
// milliseconds.
func Start(tb testing.TB, opts Options) *Pebble {
	tb.Helper()
	pebbleBin, challBin := RequireBinaries(tb)
	dir := tb.TempDir()
	ports := freeport.GetN(tb, 3)
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	listen := fmt.Sprintf("127.0.0.1:%d", ports[1])
	mgmt := fmt.Sprintf("127.0.0.1:%d", ports[2])
	mgmtChall := freeport.GetN(tb, 1)[0]

	pool, certFile, keyFile, rootFile := serverCert(tb, dir)

	challLog := &testkit.Buffer{}
	chall := exec.Command(challBin,
		"-dnsserver", dnsAddr, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "",
		"-management", fmt.Sprintf("127.0.0.1:%d", mgmtChall))
	chall.Stdout, chall.Stderr = challLog, challLog
	startProc(tb, chall, "pebble-challtestsrv", challLog)

	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  listen,
		"managementListenAddress":        mgmt,
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       opts.HTTPPort,
		"tlsPort":                        opts.TLSPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}}
	if opts.Validity > 0 {
		// Pebble reads the lifetime from its profiles; the older
		// certificateValidityPeriod is ignored once a profile exists.
		cfg["pebble"].(map[string]any)["profiles"] = map[string]any{
			"default": map[string]any{"description": "pebbletest", "validityPeriod": uint64(opts.Validity / time.Second)},
		}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	p := &Pebble{
		Directory:     "https://" + listen + "/dir",
		CARootFile:    rootFile,
		ManagementURL: "https://" + mgmt,
		client:        &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		log:           &testkit.Buffer{},
	}
	cmd := exec.Command(pebbleBin, "-config", cfgFile, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	cmd.Stdout, cmd.Stderr = p.log, p.log
	startProc(tb, cmd, "pebble", p.log)
	tb.Cleanup(p.client.CloseIdleConnections)

	deadline := time.Now().Add(StartTimeout)
	for {
		err := p.get("/dir", p.Directory)
		if err == nil {
			err = dialDNS(dnsAddr)
		}
		if err == nil {
			return p
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pebbletest: not ready within %v: %v", StartTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dialDNS checks challtestsrv's DNS answers over TCP.
func dialDNS(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

func (p *Pebble) get(what, url string) error {
	resp, err := p.client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", what, resp.Status)
	}
	return nil
}

// Roots returns a pool with the root Pebble signs issued certificates
// with, from its management API, to verify what a gateway serves.
func (p *Pebble) Roots(tb testing.TB) *x509.CertPool {
	tb.Helper()
	resp, err := p.client.Get(p.ManagementURL + "/roots/0")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("pebbletest: roots: %s, %v", resp.Status, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		tb.Fatalf("pebbletest: no root in %q", b)
	}
	return pool
}

// Orders counts the orders Pebble has accepted, from its own log: the CA's
// word, not the client's.
func (p *Pebble) Orders() int { return strings.Count(p.log.String(), "Added order ") }

// Log returns Pebble's output so far.
func (p *Pebble) Log() string { return p.log.String() }

func startProc(tb testing.TB, cmd *exec.Cmd, name string, out *testkit.Buffer) {
	tb.Helper()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("pebbletest: start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if tb.Failed() {
			tb.Logf("%s output:\n%s", name, out.String())
		}
	})
}

// serverCert writes a throwaway CA and a certificate for 127.0.0.1 signed
// by it, for Pebble's own HTTPS listeners.
func serverCert(tb testing.TB, dir string) (pool *x509.CertPool, certFile, keyFile, rootFile string) {
	tb.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebbletest root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile, rootFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "root.pem")
	write := func(path, typ string, der []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	write(certFile, "CERTIFICATE", der)
	write(keyFile, "PRIVATE KEY", keyDER)
	write(rootFile, "CERTIFICATE", caDER)
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	return pool, certFile, keyFile, rootFile
}
