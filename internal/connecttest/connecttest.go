// Package connecttest runs a Connect-native upstream for tests: a Go HTTPS
// server that takes its leaf certificate and roots from a real Consul
// agent, requires a client certificate signed by a current root, and asks
// the agent (/v1/agent/connect/authorize) whether the client's SPIFFE ID
// may reach it, as a Connect-native service must.
package connecttest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/consul/api"
)

// Native is one running Connect-native instance.
type Native struct {
	Service, ID string
	Server      *httptest.Server
	// Denied counts handshakes the agent's authorize refused.
	Denied atomic.Int64
	// LastClient is the client certificate of the latest handshake.
	LastClient atomic.Pointer[x509.Certificate]
}

// ErrDenied is why a handshake was refused: the agent's authorize said no.
var ErrDenied = errors.New("connecttest: not authorized by intentions")

// StartNative starts an instance of service answering with h, registers it
// with Connect: {Native: true} and a passing TTL check, and stops and
// deregisters it when the test ends. Each handshake reads the leaf and the
// roots from the agent (which caches them), so rotations apply at once.
func StartNative(t testing.TB, client *api.Client, service, id string, h http.Handler) *Native {
	t.Helper()
	return StartNativeAs(t, client, service, service, id, h, true)
}

// StartNativeAs is StartNative registered as service but presenting the
// leaf certificate of identity (an impostor when they differ), with HTTP
// keep-alives on or off (off: every request is a new handshake).
func StartNativeAs(t testing.TB, client *api.Client, service, identity, id string, h http.Handler, keepAlives bool) *Native {
	t.Helper()
	return start(t, client, service, identity, id, h, keepAlives, false)
}

// StartDistrusting is StartNative with an instance that trusts no Connect
// root for its clients: it refuses every client certificate with a TLS
// alert, as an upstream with other roots (or a stale trust bundle) does.
func StartDistrusting(t testing.TB, client *api.Client, service, id string, h http.Handler) *Native {
	t.Helper()
	return start(t, client, service, service, id, h, true, true)
}

func start(t testing.TB, client *api.Client, service, identity, id string, h http.Handler, keepAlives, distrust bool) *Native {
	t.Helper()
	n := &Native{Service: identity, ID: id}
	agent := client.Agent()
	conf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAnyClientCert,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			leaf, _, err := agent.ConnectCALeaf(identity, nil)
			if err != nil {
				return nil, err
			}
			cert, err := tls.X509KeyPair([]byte(leaf.CertPEM), []byte(leaf.PrivateKeyPEM))
			if err != nil {
				return nil, err
			}
			roots, _, err := agent.ConnectCARoots(nil)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			for _, r := range roots.Roots {
				if !distrust {
					pool.AppendCertsFromPEM([]byte(r.RootCertPEM))
				}
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{cert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    pool,
				VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
					return n.authorize(agent, chains)
				},
			}, nil
		},
	}
	n.Server = httptest.NewUnstartedServer(h)
	n.Server.TLS = conf
	n.Server.Config.SetKeepAlivesEnabled(keepAlives)
	n.Server.StartTLS()
	t.Cleanup(n.Server.Close)
	host, port, _ := net.SplitHostPort(n.Server.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	if err := agent.ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: service, Address: host, Port: p,
		Connect: &api.AgentServiceConnect{Native: true},
		Check:   &api.AgentServiceCheck{CheckID: "ttl-" + id, TTL: "10m", Status: api.HealthPassing},
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.ServiceDeregister(id) })
	return n
}

// authorize asks the agent whether the client's SPIFFE ID may connect.
func (n *Native) authorize(agent *api.Agent, chains [][]*x509.Certificate) error {
	if len(chains) == 0 || len(chains[0]) == 0 || len(chains[0][0].URIs) == 0 {
		return fmt.Errorf("%w: client certificate has no URI", ErrDenied)
	}
	c := chains[0][0]
	n.LastClient.Store(c)
	auth, err := agent.ConnectAuthorize(&api.AgentAuthorizeParams{
		Target: n.Service, ClientCertURI: c.URIs[0].String(), ClientCertSerial: serial(c),
	})
	if err != nil {
		return err
	}
	if !auth.Authorized {
		n.Denied.Add(1)
		return fmt.Errorf("%w: %s", ErrDenied, auth.Reason)
	}
	return nil
}

// serial renders a certificate serial as Consul does: hex bytes joined by
// colons.
func serial(c *x509.Certificate) string {
	b := c.SerialNumber.Bytes()
	s := ""
	for i, x := range b {
		if i > 0 {
			s += ":"
		}
		s += fmt.Sprintf("%02x", x)
	}
	return s
}
