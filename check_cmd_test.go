package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/devcert"
)

// check reads the documents and certificates the server would load and
// reports each in one line: a document error at KEY:LINE:COL, a bundle
// that does not parse and an unreachable Consul fail; a certificate near
// expiry and a service without instances only warn.
func TestCheckReportsDocumentsAndCertificates(t *testing.T) {
	addr := consultest.Start(t).HTTPAddr
	client, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, value string) {
		t.Helper()
		if _, err := client.KV().Put(&api.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	put("gateway/routes/users.hcl", usersDoc("users", "/api/users"))
	soonCert, soonKey, err := devcert.Generate(devcert.Options{Names: []string{"soon.example.test"}, NotAfter: time.Now().Add(5 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	put("gateway/certs/soon", string(soonCert)+string(soonKey))
	fileCert, fileKey, err := devcert.Generate(devcert.Options{Names: []string{"file.example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := writeFile(t, "c.pem", string(fileCert)), writeFile(t, "k.pem", string(fileKey))
	args := []string{"check", "-consul", addr, "-tls-listen", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile}

	var out, errb bytes.Buffer
	if err := run(args, &out, &errb); err != nil {
		t.Fatalf("check: %v\n%s%s", err, out.String(), errb.String())
	}
	for _, want := range []string{
		"OK   consul at " + addr + " reachable",
		"OK   consul runs without ACLs",
		`OK   1 route documents under "gateway/routes/" valid: 1 routes`,
		"WARN service users: no instances registered",
		"OK   certificate file " + certFile + " (file.example.test) valid until",
		"WARN certificate kv gateway/certs/soon (soon.example.test) expires in ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// A document that does not validate and a bundle that does not parse
	// fail the check.
	put("gateway/routes/bad.hcl", "route \"x\" {\n  path_prefix = \"/x\"\n  service = \"x\"\n  timeout = \"soon\"\n}\n")
	put("gateway/certs/broken", "not a PEM bundle")
	out.Reset()
	err = run(args, &out, &errb)
	if !errors.Is(err, errCheckFailed) || exitCode(err) != 1 {
		t.Fatalf("check with a bad document: %v, want errCheckFailed (exit 1)\n%s", err, out.String())
	}
	for _, want := range []string{"FAIL route document gateway/routes/bad.hcl:4:", "FAIL certificate kv gateway/certs/broken:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// Nobody there: one FAIL naming the address, still checking the files.
	out.Reset()
	nobody := "127.0.0.1:1"
	err = run([]string{"check", "-consul", nobody, "-check-timeout", "5s", "-tls-listen", "127.0.0.1:0", "-tls-cert", filepath.Join(dir, "missing.pem"), "-tls-key", keyFile}, &out, &errb)
	if !errors.Is(err, errCheckFailed) || !strings.Contains(out.String(), "FAIL consul at "+nobody+" unreachable") || !strings.Contains(out.String(), "FAIL certificate files") {
		t.Errorf("check without consul: %v\n%s", err, out.String())
	}
}
