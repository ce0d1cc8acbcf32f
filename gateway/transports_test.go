package gateway

import (
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// TestTransportsSharedByProtocolAndKeptAcrossSwaps: routes with the same
// protocol and TLS settings share one transport, which the next table
// keeps; a CA file whose content changed gets a new one, and is read
// once per build however many routes name it;
// an unusable one is listed with the document's errors at the
// upstream_tls block.
func TestTransportsSharedByProtocolAndKeptAcrossSwaps(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	write := func(b []byte) {
		if err := os.WriteFile(ca, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	tlsRoute := func(name string) config.Route {
		return config.Route{Name: name, Path: "/" + name, Service: "s", Balancer: "round_robin", Protocol: config.ProtocolHTTPS,
			Pos:         config.Pos{Key: "k", Line: 1, Column: 1},
			UpstreamTLS: &config.UpstreamTLS{CAFile: ca, ServerName: "example.com", Pos: config.Pos{Key: "k", Line: 5, Column: 3}}}
	}
	h2c := config.Route{Name: "h", Path: "/h", Service: "s", Balancer: "round_robin", Protocol: config.ProtocolH2C}
	gw := New(Options{})
	b := newTableBuilder(gw.deps)
	none := fixed(map[string][]registry.Instance{})
	transport := func(tb *Table, i int) http.RoundTripper { return tb.Routes()[i].up.Transport() }

	reads := 0
	b.transports.readFile = func(path string) ([]byte, error) { reads++; return readBounded(path) }

	t1 := b.build([]config.Route{tlsRoute("a"), tlsRoute("b"), h2c}, none, nil)
	if reads != 1 {
		t.Errorf("two routes naming one CA file read it %d times in a build, want once", reads)
	}
	if transport(t1, 0) != transport(t1, 1) {
		t.Error("two routes with the same TLS settings got different transports")
	}
	if transport(t1, 0) == transport(t1, 2) || transport(t1, 2) == gw.deps.transport {
		t.Error("the h2c route shares a transport with another protocol")
	}
	t2 := b.build([]config.Route{tlsRoute("a"), h2c}, none, nil)
	if transport(t2, 0) != transport(t1, 0) || transport(t2, 1) != transport(t1, 2) {
		t.Error("a new table made new transports for unchanged settings")
	}
	write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}) /* same */)
	if t3 := b.build([]config.Route{tlsRoute("a")}, none, nil); transport(t3, 0) != transport(t1, 0) {
		t.Error("an unchanged CA file made a new transport")
	}

	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	write(append(certPEM, certPEM...)) // other content, still valid
	if t5 := b.build([]config.Route{tlsRoute("a")}, none, nil); transport(t5, 0) == transport(t1, 0) {
		t.Error("a changed CA file kept the old transport")
	}

	write([]byte("junk"))
	t4 := b.build([]config.Route{tlsRoute("a")}, none, nil)
	errs := t4.Errors()
	if len(errs) != 1 || errs[0].Key != "k" || !strings.Contains(errs[0].Message, "k:5:3") {
		t.Fatalf("errors %+v, want the upstream_tls block named", errs)
	}
	if _, err := transport(t4, 0).RoundTrip(httptest.NewRequest("GET", "https://x/", nil)); !errors.Is(err, ErrCAFile) {
		t.Errorf("the route with an unusable CA file sent a request: %v", err)
	}
}
