package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/gateway/certs"
	"github.com/gatewayco/gateway/internal/testkit"
)

func TestServeRejectsBadTLSFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-listen", ""}, // no listener at all
		{"-tls-cert", "a.crt"},
		{"-tls-listen", ":0", "-tls-cert", "a.crt", "-tls-key", "a.key", "-tls-cert", "b.crt"},
		{"-tls-listen", ":0", "-tls-poll-interval", "0"},
		{"-hsts-max-age", "-1s"},
		{"-https-port", "http"},
		{"-https-port", "70000"},
	} {
		if err := run(args, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}

// TestTLSHandshakeErrorsLogAtDebug: a failed handshake, which any client
// can cause at the rate it connects, is logged at debug level, not info.
func TestTLSHandshakeErrorsLogAtDebug(t *testing.T) {
	var logs testkit.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: &logs})
	srv := newServer(http.NotFoundHandler(), logger, serveFlags{readHeaderTimeout: time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serveTLS(srv, ln, certs.ServerConfig(certs.NewStore(), certs.Hooks{})) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	// No certificate at all: the handshake fails on the server's side.
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "none.test", InsecureSkipVerify: true}); err == nil {
		c.Close()
		t.Fatal("handshake succeeded without a certificate")
	}
	testkit.WaitFor(t, "the handshake error logged", func() bool { return strings.Contains(logs.String(), "TLS handshake error") })
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, "TLS handshake error") && !strings.Contains(line, "[DEBUG]") {
			t.Errorf("handshake error not at debug level: %s", line)
		}
	}
}
