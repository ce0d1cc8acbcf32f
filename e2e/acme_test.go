package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/sdk/freeport"

	"github.com/gatewayco/gateway/internal/pebbletest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// acmeHost resolves to 127.0.0.1 through Pebble's challtestsrv.
const acmeHost = "shop.acme.test"

// acmeRouteDoc is a route with a certificate from the CA for acmeHost.
func acmeRouteDoc(service string) string {
	return fmt.Sprintf("route \"shop\" {\n  host = %q\n  path_prefix = \"/\"\n  service = %q\n  acme = true\n}\n", acmeHost, service)
}

// acmeFlags point a gateway at ca, with renewal checked every second.
func acmeFlags(ca *pebbletest.Pebble, extra ...string) []string {
	return append([]string{"-acme-ca", ca.Directory, "-acme-ca-root", ca.CARootFile,
		"-acme-renew-interval", "1s", "-acme-ari=false"}, extra...)
}

// verifiedLeaf handshakes with addr for acmeHost and returns the leaf if
// the chain verifies against roots, nil otherwise.
func verifiedLeaf(addr string, roots *x509.CertPool) *x509.Certificate {
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: acmeHost, RootCAs: roots})
	if err != nil {
		return nil
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// verifiedSerial is verifiedLeaf's serial, "" without one.
func verifiedSerial(addr string, roots *x509.CertPool) string {
	if l := verifiedLeaf(addr, roots); l != nil {
		return l.SerialNumber.String()
	}
	return ""
}

// waitServing waits until every gateway serves one and the same verified
// certificate other than not, and returns its serial.
func waitServing(t *testing.T, what string, roots *x509.CertPool, not string, gws ...*gatewayProc) string {
	t.Helper()
	return testkit.WaitValue(t, what, func() (string, bool) {
		var first string
		for i, g := range gws {
			s := verifiedSerial(g.tlsAddr, roots)
			if s == "" || s == not || (i > 0 && s != first) {
				return "", false
			}
			first = s
		}
		return first, true
	})
}

// TestACMEReplicasShareOneOrder runs three gateways on one Consul: the CA
// reaches only the first one's listeners, so the others' challenge tokens
// must come through Consul; one order is made, all serve its certificate
// (the third started only after issuance), and renewal of the short-lived
// certificate is done once and picked up by all.
func TestACMEReplicasShareOneOrder(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	startBackend(t, client, "shop", "shop-1")
	ports := freeport.GetN(t, 2)
	// 20s certificates are renewed with a third of their lifetime left,
	// so about 13s after issuance: time for the replicas to agree first.
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: ports[0], TLSPort: ports[1], Validity: 20 * time.Second})
	// HTTP-01 alone (TLS-ALPN-01 has its own test), with -https-redirect:
	// the challenge is answered before the redirect to HTTPS.
	reached := startGateway(t, addr, acmeFlags(ca, "-acme-challenges", "http-01", "-https-redirect",
		"-listen", fmt.Sprintf("127.0.0.1:%d", ports[0]), "-tls-listen", fmt.Sprintf("127.0.0.1:%d", ports[1]))...)
	other := startGateway(t, addr, acmeFlags(ca, "-acme-challenges", "http-01", "-tls-listen", "127.0.0.1:0")...)
	roots := ca.Roots(t)

	putRoute(t, client, "shop", acmeRouteDoc("shop"))
	first := waitServing(t, "both replicas serve the issued certificate", roots, "", reached, other)
	if n := ca.Orders(); n != 1 {
		t.Fatalf("Pebble received %d orders for one host and two replicas, want 1", n)
	}

	_, body := adminGet(t, other, "/routes")
	if routes, _ := body["routes"].([]any); len(routes) != 1 || routes[0].(map[string]any)["acme"] != true {
		t.Errorf("/routes does not show the route's acme attribute: %v", body["routes"])
	}

	// The certificate is listed and measured like any other.
	certs := getCerts(t, other)
	if i := slices.IndexFunc(certs.Certificates, func(c certListing) bool { return c.Kind == "acme" }); i < 0 ||
		certs.Certificates[i].Source != acmeHost || !slices.Equal(certs.Certificates[i].Names, []string{acmeHost}) {
		t.Errorf("/certs has no acme certificate for %s: %+v", acmeHost, certs.Certificates)
	}
	if v := sample(scrape(t, other), "gateway_tls_certificate_expiry_seconds", "kind=acme", "source="+acmeHost); v <= 0 || v > 20 {
		t.Errorf("expiry metric for the acme certificate = %v, want within its 20s lifetime", v)
	}

	// A replica started later loads the certificate from Consul.
	late := startGateway(t, addr, acmeFlags(ca, "-acme-challenges", "http-01", "-tls-listen", "127.0.0.1:0")...)
	got := waitServing(t, "the late replica serves a certificate", roots, "", late)
	// Until the renewal window opens (a third of the lifetime left) no
	// order but the first may exist; on a machine slow enough to reach it
	// first, the late replica may serve the renewed one, with two orders.
	orders := ca.Orders()
	leaf := verifiedLeaf(reached.tlsAddr, roots)
	windowOpen := leaf == nil || time.Now().After(leaf.NotAfter.Add(-leaf.NotAfter.Sub(leaf.NotBefore)/3))
	switch {
	case got == first && orders != 1 && !windowOpen:
		t.Errorf("late replica serves the first certificate, but %d orders were made before renewal was due", orders)
	case got != first && orders != 2:
		t.Errorf("late replica serves %s (first %s) with %d orders made, want 2 (the renewal)", got, first, orders)
	}

	// Renewal before expiry: one new order, the new certificate served by
	// every replica.
	renewed := waitServing(t, "every replica serves the renewed certificate", roots, first, reached, other, late)
	if n := ca.Orders(); n != 2 {
		t.Errorf("Pebble received %d orders after one renewal, want 2", n)
	}
	t.Logf("issued %s, renewed %s", first, renewed)
}

// certListing is one entry of /certs.
type certListing = struct {
	Names            []string `json:"names"`
	Kind             string   `json:"kind"`
	Source           string   `json:"source"`
	ExpiresInSeconds int64    `json:"expires_in_seconds"`
	Default          bool     `json:"default"`
}

// TestACMETLSALPN01 obtains the certificate with TLS-ALPN-01 alone: the CA
// validates on the TLS listener of the replica it reaches, which need not
// be the one that ordered.
func TestACMETLSALPN01(t *testing.T) {
	t.Parallel()
	client, addr := startConsul(t)
	startBackend(t, client, "shop", "shop-1")
	ports := freeport.GetN(t, 2)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: ports[0], TLSPort: ports[1]})
	flags := acmeFlags(ca, "-acme-challenges", "tls-alpn-01")
	reached := startGateway(t, addr, append(flags, "-listen", fmt.Sprintf("127.0.0.1:%d", ports[0]), "-tls-listen", fmt.Sprintf("127.0.0.1:%d", ports[1]))...)
	other := startGateway(t, addr, append(flags, "-tls-listen", "127.0.0.1:0")...)
	putRoute(t, client, "shop", acmeRouteDoc("shop"))
	waitServing(t, "both replicas serve the certificate", ca.Roots(t), "", reached, other)
	if n := ca.Orders(); n != 1 {
		t.Errorf("Pebble received %d orders, want 1", n)
	}
	if !slices.ContainsFunc(reached.logLines(), func(l string) bool {
		return strings.Contains(l, "tls-alpn-01") && strings.Contains(l, "served key authentication")
	}) {
		t.Error("the reached replica never answered a tls-alpn-01 challenge")
	}
}
