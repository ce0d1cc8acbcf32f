package certs

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/internal/devcert"
	"github.com/gatewayco/gateway/registry"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func gen(t testing.TB, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	c, k, err := devcert.Generate(devcert.Options{Names: names, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func bundle(t testing.TB, names ...string) []byte {
	c, k := gen(t, names...)
	return append(c, k...)
}

func served(t *testing.T, s *Store, name string) string {
	t.Helper()
	c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
	if err != nil {
		return "error"
	}
	return c.Leaf.DNSNames[0]
}

func mustCert(t *testing.T, kind, source string, b []byte, def bool) *Cert {
	t.Helper()
	c, err := ParseBundle(b, now)
	if err != nil {
		t.Fatal(err)
	}
	return NewCert(kind, source, c, def)
}

func TestSelectionBySNI(t *testing.T) {
	s := NewStore()
	if got := served(t, s, "a.example.com"); got != "error" {
		t.Fatalf("empty store served %s", got)
	}
	s.Set(SourceKV, []*Cert{
		mustCert(t, SourceKV, "p/wild", bundle(t, "*.example.com"), false),
		mustCert(t, SourceKV, "p/exact", bundle(t, "api.example.com"), false),
	}, nil)
	for name, want := range map[string]string{
		"api.example.com":   "api.example.com",
		"API.Example.COM.":  "api.example.com",
		"www.example.com":   "*.example.com",
		"example.com":       "error", // a wildcard covers one label, not none
		"a.b.example.com":   "error", // nor two
		"":                  "error", // no default yet
		"other.example.org": "error",
	} {
		if got := served(t, s, name); got != want {
			t.Errorf("%q: served %s, want %s", name, got, want)
		}
	}
	// A file pair flagged default answers what matches nothing.
	s.Set(SourceFile, []*Cert{mustCert(t, SourceFile, "/f.crt", bundle(t, "default.test"), true)}, nil)
	for _, name := range []string{"", "other.example.org", "example.com"} {
		if got := served(t, s, name); got != "default.test" {
			t.Errorf("%q: served %s, want the default", name, got)
		}
	}
	if got := served(t, s, "api.example.com"); got != "api.example.com" {
		t.Errorf("default took over an exact name: %s", got)
	}
	// Replacing one source leaves the others alone.
	s.Set(SourceKV, nil, nil)
	if got := served(t, s, "api.example.com"); got != "default.test" {
		t.Errorf("after the KV entries went: %s", got)
	}
	all, _ := s.Certs()
	if len(all) != 1 || !s.IsDefault(all[0]) {
		t.Errorf("certs %v", all)
	}
}

func TestLongerValidityWinsAName(t *testing.T) {
	s := NewStore()
	oldC, oldK, _ := devcert.Generate(devcert.Options{Names: []string{"a.test"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)})
	newC, newK, _ := devcert.Generate(devcert.Options{Names: []string{"a.test"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour)})
	s.Set(SourceFile, []*Cert{mustCert(t, SourceFile, "/old", append(oldC, oldK...), false)}, nil)
	s.Set(SourceACME, []*Cert{mustCert(t, SourceACME, "a.test", append(newC, newK...), false)}, nil)
	if c := s.Lookup("a.test"); c.Kind != SourceACME {
		t.Errorf("served %s, want the renewed ACME certificate", c)
	}
}

func TestDefaultKVKey(t *testing.T) {
	s := NewStore()
	k := NewKVBundles(s, "gateway/certs/", func() time.Time { return now }, nil)
	k.Update([]registry.Document{
		{Key: "gateway/certs/a", Value: bundle(t, "a.test"), ModifyIndex: 1},
		{Key: "gateway/certs/default", Value: bundle(t, "fallback.test"), ModifyIndex: 2},
	})
	if got := served(t, s, ""); got != "fallback.test" {
		t.Errorf("no SNI: %s, want the KV default", got)
	}
}

func rsaBundle(t *testing.T, bits int) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"weak.test"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})...)
}

func TestParseBundleRejects(t *testing.T) {
	c1, k1 := gen(t, "a.test")
	_, k2 := gen(t, "a.test")
	expC, expK, _ := devcert.Generate(devcert.Options{Names: []string{"a.test"}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
	futC, futK, _ := devcert.Generate(devcert.Options{Names: []string{"a.test"}, NotBefore: now.Add(time.Hour), NotAfter: now.Add(48 * time.Hour)})
	many := []string{}
	for i := range MaxNames + 1 {
		many = append(many, strings.Repeat("x", 3)+string(rune('a'+i%26))+big.NewInt(int64(i)).String()+".test")
	}
	manyC, manyK := gen(t, many...)
	blocks := append([]byte{}, c1...)
	for range MaxPEMBlocks {
		blocks = append(blocks, c1...)
	}
	for name, tc := range map[string]struct {
		data []byte
		want error
	}{
		"garbage":         {[]byte("not pem at all"), ErrBadPEM},
		"empty":           {nil, ErrNoChain},
		"key only":        {k1, ErrNoChain},
		"cert only":       {c1, ErrNoKey},
		"other key":       {append(append([]byte{}, c1...), k2...), ErrKeyMatch},
		"expired":         {append(expC, expK...), ErrExpired},
		"not yet valid":   {append(futC, futK...), ErrNotYet},
		"too many names":  {append(manyC, manyK...), ErrTooMany},
		"too many blocks": {append(blocks, k1...), ErrTooLarge},
		"too large":       {make([]byte, MaxBundleBytes+1), ErrTooLarge},
		"two keys":        {append(append(append([]byte{}, c1...), k1...), k1...), ErrBadPEM},
		"weak rsa":        {rsaBundle(t, 1024), ErrWeakKey},
		"huge key block":  {append(append([]byte{}, c1...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: make([]byte, 9<<10)})...), ErrWeakKey},
	} {
		_, err := ParseBundle(tc.data, now)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// Key first, then chain, is accepted too.
	if _, err := ParseBundle(append(append([]byte{}, k1...), c1...), now); err != nil {
		t.Errorf("key before chain: %v", err)
	}
}

// TestParseBundleNamesMisorderedChain: a chain pasted CA first (cat
// ca.crt leaf.crt leaf.key) is reported as such, not by what the CA
// certificate lacks ("names no host") or as a key that matches nothing.
func TestParseBundleNamesMisorderedChain(t *testing.T) {
	c1, k1 := gen(t, "a.test")
	c2, _ := gen(t, "b.test")
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), IsCA: true, BasicConstraintsValid: true, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, data := range map[string][]byte{
		"ca without names first": append(append(append([]byte{}, ca...), c1...), k1...),
		"other leaf first":       append(append(append([]byte{}, c2...), c1...), k1...),
	} {
		_, err := ParseBundle(data, now)
		if !errors.Is(err, ErrChainOrder) || !strings.Contains(err.Error(), "certificate 2") {
			t.Errorf("%s: %v, want %v naming certificate 2", name, err, ErrChainOrder)
		}
	}
}

func TestKVBundlesKeepLastGood(t *testing.T) {
	s := NewStore()
	var rejectedCount int
	s.OnRejected = func(string) { rejectedCount++ }
	k := NewKVBundles(s, "p/", func() time.Time { return now }, nil)
	good := bundle(t, "a.test")
	k.Update([]registry.Document{{Key: "p/a", Value: good, ModifyIndex: 1}})
	first := s.Lookup("a.test")
	if first == nil {
		t.Fatal("not served")
	}
	k.Update([]registry.Document{{Key: "p/a", Value: []byte("broken"), ModifyIndex: 2}})
	if s.Lookup("a.test") != first {
		t.Error("a bad version replaced the last good one")
	}
	_, rej := s.Certs()
	if len(rej) != 1 || rej[0].Source != "p/a" || rejectedCount != 1 {
		t.Errorf("rejections %v (counted %d)", rej, rejectedCount)
	}
	// The same bad version seen again is not counted twice.
	k.Update([]registry.Document{{Key: "p/a", Value: []byte("broken"), ModifyIndex: 2}})
	if rejectedCount != 1 {
		t.Errorf("counted %d", rejectedCount)
	}
	k.Update([]registry.Document{{Key: "p/a", Value: bundle(t, "a.test"), ModifyIndex: 3}})
	if c := s.Lookup("a.test"); c == first || c == nil {
		t.Error("the fixed version does not serve")
	}
	if _, rej := s.Certs(); len(rej) != 0 {
		t.Errorf("rejection kept after a good version: %v", rej)
	}
	k.Update(nil)
	if s.Lookup("a.test") != nil {
		t.Error("a deleted key still serves")
	}
}

func TestFilesReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	write := func(name string, b []byte) {
		// Rename-over, as Vault agent and cert-manager write.
		tmp := name + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, name); err != nil {
			t.Fatal(err)
		}
	}
	c1, k1 := gen(t, "a.test")
	write(certFile, c1)
	write(keyFile, k1)
	s := NewStore()
	f := NewFiles(s, []Pair{{certFile, keyFile}}, func() time.Time { return now }, nil)
	if err := f.Load(); err != nil {
		t.Fatal(err)
	}
	first := s.Lookup("")
	if first == nil || !first.Default {
		t.Fatal("the first pair is not the default")
	}
	// Half-way through a rotation: new certificate, old key.
	c2, k2 := gen(t, "a.test", "b.test")
	write(certFile, c2)
	f.Reload()
	if s.Lookup("a.test") != first {
		t.Error("a mismatched pair replaced the last good one")
	}
	if _, rej := s.Certs(); len(rej) != 1 || !strings.Contains(rej[0].Error, "does not match") {
		t.Errorf("rejections %v", rej)
	}
	write(keyFile, k2)
	f.Reload()
	if c := s.Lookup("b.test"); c == nil || c == first {
		t.Error("the completed rotation does not serve")
	}
	if _, rej := s.Certs(); len(rej) != 0 {
		t.Errorf("rejections after the rotation: %v", rej)
	}
	// A missing file keeps the last good pair.
	cur := s.Lookup("b.test")
	os.Remove(keyFile)
	f.Reload()
	if s.Lookup("b.test") != cur {
		t.Error("a missing key file dropped the certificate")
	}
}

func TestFilesLoadFailsOnBadPair(t *testing.T) {
	dir := t.TempDir()
	c, _ := gen(t, "a.test")
	_, k := gen(t, "a.test")
	os.WriteFile(filepath.Join(dir, "c"), c, 0o600)
	os.WriteFile(filepath.Join(dir, "k"), k, 0o600)
	var log bytes.Buffer
	f := NewFiles(NewStore(), []Pair{{filepath.Join(dir, "c"), filepath.Join(dir, "k")}}, func() time.Time { return now },
		hclog.New(&hclog.LoggerOptions{Output: &log}))
	if err := f.Load(); err == nil {
		t.Error("a mismatched pair loaded at start")
	}
	// Nothing was ever good, so the warning must not claim a version is
	// being served (the gateway is about to refuse to start).
	if strings.Contains(log.String(), "serving the last good version") {
		t.Errorf("log claims a last good version that does not exist: %s", log.String())
	}
}

func FuzzParseBundle(f *testing.F) {
	f.Add(bundle(f, "a.test"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseBundle(data, now)
		if err == nil && (c.Leaf == nil || len(c.Certificate) == 0) {
			t.Fatal("accepted a bundle without a leaf")
		}
	})
}

// TestNoCertificateErrorSaysWhy: net/http logs the handshake error, and
// "no certificate for this server name" alone leaves the operator to
// guess which name and what would have served it.
func TestNoCertificateErrorSaysWhy(t *testing.T) {
	s := NewStore()
	s.Set(SourceKV, []*Cert{mustCert(t, SourceKV, "gateway/certs/a", bundle(t, "a.test"), false)}, nil)
	for name, want := range map[string]string{"": "no server name (SNI)", "b.test": `"b.test"`, strings.Repeat("x", 400): strings.Repeat("x", 64) + `..."`} {
		_, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if !errors.Is(err, ErrNoCertificate) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "no default certificate") {
			t.Errorf("server name %.10q: %v, want %v naming %s and the missing default", name, err, ErrNoCertificate, want)
		}
		if err != nil && len(err.Error()) > 300 {
			t.Errorf("server name %.10q: error of %d bytes", name, len(err.Error()))
		}
	}
}

// TestParsePairNamesKeyInCertFile: a combined PEM (chain and key in one
// file, as HAProxy takes) given as both -tls-cert and -tls-key has two
// keys; the error must say the certificate file holds one.
func TestParsePairNamesKeyInCertFile(t *testing.T) {
	b := bundle(t, "a.test")
	_, err := ParsePair(b, b, now)
	if !errors.Is(err, ErrBadPEM) || !strings.Contains(err.Error(), "certificate file holds a private key") {
		t.Errorf("combined file as both: %v, want %v saying the certificate file holds a key", err, ErrBadPEM)
	}
}

// TestKVBundlesBoundHoldsAsKeysMove: the bound on parsed keys holds for
// the keys as they stand, not as they were when each was first seen: a
// key inserted ahead of the others pushes the last one out, and the
// pushed-out key serves again when room is made.
func TestKVBundlesBoundHoldsAsKeysMove(t *testing.T) {
	s := NewStore()
	k := NewKVBundles(s, "p/", func() time.Time { return now }, nil)
	k.max = 2
	b, c, a := kvDoc(t, "p/b", "b.test", 1), kvDoc(t, "p/c", "c.test", 2), kvDoc(t, "p/a", "a.test", 3)
	k.Update([]registry.Document{b, c})
	if s.Lookup("c.test") == nil {
		t.Fatal("c not served within the bound")
	}
	k.Update([]registry.Document{a, b, c})
	if all, _ := s.Certs(); len(all) != 2 || s.Lookup("c.test") != nil {
		t.Errorf("%d certificates served (c served: %v), want 2 with c pushed out", len(all), s.Lookup("c.test") != nil)
	}
	if _, rej := s.Certs(); len(rej) != 1 || rej[0].Source != "p/c" {
		t.Errorf("rejections %v, want p/c as one too many", rej)
	}
	k.Update([]registry.Document{b, c})
	if s.Lookup("c.test") == nil {
		t.Error("c not served again once a key was removed")
	}
	if _, rej := s.Certs(); len(rej) != 0 {
		t.Errorf("rejections %v after room was made", rej)
	}
}

// kvDoc is a KV document holding a bundle for name.
func kvDoc(t *testing.T, key, name string, index uint64) registry.Document {
	return registry.Document{Key: key, Value: bundle(t, name), ModifyIndex: index}
}
