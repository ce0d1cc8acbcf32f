package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/registry"
)

// MeshIdentity is the gateway's live Connect identity (registry.Connect):
// read at every handshake, so a rotated leaf or a new root takes effect on
// the next connection without a new transport.
type MeshIdentity interface {
	Leaf() (*registry.Leaf, bool)
	Roots() (*registry.Roots, bool)
}

// Errors of a Connect handshake; each is also counted by reason.
var (
	ErrNoMeshIdentity   = errors.New("connect: the gateway has no leaf certificate or CA roots yet")
	ErrUntrustedPeer    = errors.New("connect: upstream certificate not signed by a Connect root")
	ErrIdentityMismatch = errors.New("connect: upstream SPIFFE identity is not the route's service")
)

// NewConnectTransport returns the transport of the connect routes of
// service: every connection is TLS with the gateway's current leaf as
// client certificate, and the upstream must present a chain to a current
// Connect root whose URI SAN is service's SPIFFE ID in the gateway's trust
// domain, namespace and datacenter. HTTP/1.1 only: a sidecar forwards
// bytes to an application that may speak nothing else.
func NewConnectTransport(maxIdlePerHost int, dial time.Duration, id MeshIdentity, service string, m *metrics.Connect, log hclog.Logger) *http.Transport {
	t := NewTransport(maxIdlePerHost, dial)
	if dial <= 0 {
		dial = 5 * time.Second
	}
	d := &net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		leaf, ok1 := id.Leaf()
		roots, ok2 := id.Roots()
		if !ok1 || !ok2 {
			m.HandshakeFailed(service, metrics.ConnectNoIdentity)
			return nil, ErrNoMeshIdentity
		}
		want := fmt.Sprintf("spiffe://%s/ns/%s/dc/%s/svc/%s", roots.TrustDomain, leaf.Namespace, leaf.Datacenter, service)
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err // a network failure, not a handshake's
		}
		conf := &tls.Config{
			MinVersion: tls.VersionTLS12,
			// The chain and identity are checked in VerifyConnection:
			// Connect certificates name a SPIFFE URI, not a host.
			InsecureSkipVerify: true, //nolint:gosec // verified below
			ServerName:         fmt.Sprintf("%s.%s.%s.internal.%s", service, leaf.Namespace, leaf.Datacenter, roots.TrustDomain),
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return &leaf.Cert, nil
			},
			VerifyConnection: func(cs tls.ConnectionState) error { return verifyPeer(cs, roots.Pool, want) },
		}
		hctx, cancel := context.WithTimeout(ctx, dial)
		defer cancel()
		conn := tls.Client(raw, conf)
		if err := conn.HandshakeContext(hctx); err != nil {
			raw.Close()
			reason := handshakeReason(err, hctx)
			m.HandshakeFailed(service, reason)
			if reason == metrics.ConnectIdentityMismatch || reason == metrics.ConnectUntrusted {
				log.Error("connect upstream refused: its identity is not the route's service", "service", service, "instance", addr, "want", want, "error", err)
			} else {
				log.Warn("connect handshake failed", "service", service, "instance", addr, "reason", reason, "error", err)
			}
			if reason == metrics.ConnectRefused {
				err = fmt.Errorf("%w: %w", exchange.ErrMeshRefused, err)
			}
			return nil, fmt.Errorf("connect handshake with %s: %w", addr, err)
		}
		return &meshConn{Conn: conn, service: service, m: m}, nil
	}
	return t
}

// meshConn marks a TLS alert read after the handshake as the upstream's
// refusal: under TLS 1.3 the client's handshake ends before the server
// has checked the client certificate, so a server that refuses the
// gateway (an intention, an untrusted CA) says so on the first read.
type meshConn struct {
	*tls.Conn
	service string
	m       *metrics.Connect
	once    sync.Once
}

func (c *meshConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	var op *net.OpError
	if err != nil && errors.As(err, &op) && op.Op == "remote error" {
		c.once.Do(func() { c.m.HandshakeFailed(c.service, metrics.ConnectRefused) })
		err = fmt.Errorf("%w: %w", exchange.ErrMeshRefused, err)
	}
	return n, err
}

// verifyPeer checks the upstream's chain against pool and its URI SAN
// against want.
func verifyPeer(cs tls.ConnectionState, pool *x509.CertPool, want string) error {
	if len(cs.PeerCertificates) == 0 {
		return ErrUntrustedPeer
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("%w: %w", ErrUntrustedPeer, err)
	}
	var got []string
	for _, u := range leaf.URIs {
		if u.String() == want {
			return nil
		}
		got = append(got, u.String())
	}
	return fmt.Errorf("%w: want %s, got %v", ErrIdentityMismatch, want, got)
}

// handshakeReason names a handshake failure for the metric.
func handshakeReason(err error, ctx context.Context) string {
	var op *net.OpError
	switch {
	case errors.Is(err, ErrIdentityMismatch):
		return metrics.ConnectIdentityMismatch
	case errors.Is(err, ErrUntrustedPeer):
		return metrics.ConnectUntrusted
	case ctx.Err() != nil:
		return metrics.ConnectTimeout
	case errors.As(err, &op) && op.Op == "remote error":
		return metrics.ConnectRefused
	}
	return metrics.ConnectOther
}
