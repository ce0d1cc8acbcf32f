package gateway

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/metrics"
	"github.com/gatewayco/gateway/gateway/upstream"
)

// MaxCAFileBytes bounds an upstream_tls ca_file: a few hundred CA
// certificates fit; a file past it is not a CA bundle.
const MaxCAFileBytes = 1 << 20

// ErrCAFile is why an https route's transport could not be made: its
// ca_file is unreadable, too large, or holds no certificate.
var ErrCAFile = errors.New("upstream_tls ca_file unusable")

// transports hands each route the transport for its protocol. Routes with
// the same protocol and TLS settings share one, and it outlives table
// swaps (a keep keyed by those settings), so a swap keeps connections
// warm; one no route asks for any more has its idle connections closed.
type transports struct {
	plain    http.RoundTripper // protocol http: the gateway's shared transport
	maxIdle  int
	dial     time.Duration
	kept     keep[*http.Transport]
	readFile func(string) ([]byte, error) // readBounded
	// pools holds, during one build, each CA file read (by path), so
	// routes naming the same file read it once per build, not once each.
	pools map[string]caPool
	// mesh, meshMetrics and logger serve connect routes (connect.go);
	// mesh is nil without -connect.
	mesh        Mesh
	meshMetrics *metrics.Connect
	logger      hclog.Logger
}

// caPool is one CA file as read during a build.
type caPool struct {
	pool *x509.CertPool
	fp   string // the content's digest, for the transport's key
	err  error
}

func newTransports(plain http.RoundTripper, maxIdle int, dial time.Duration) *transports {
	return &transports{plain: plain, maxIdle: maxIdle, dial: dial, readFile: readBounded}
}

// forRoute returns the transport and URL scheme for rc's protocol. An
// https route whose CA file is unusable gets a transport that fails every
// request (502) and the error to list with the document's problems: the
// route stays, since a bad file next to a good document must not take
// the route's path away from its other routes' precedence.
func (ts *transports) forRoute(rc *config.Route) (http.RoundTripper, string, error) {
	if rc.Connect {
		return ts.connectTransport(rc)
	}
	switch rc.Protocol {
	case config.ProtocolH2C:
		return ts.kept.get(stateKey{"", "h2c"}, func() *http.Transport {
			return upstream.NewH2CTransport(ts.maxIdle, ts.dial)
		}), "http", nil
	case config.ProtocolHTTPS:
		conf := &tls.Config{}
		fp := "https"
		if t := rc.UpstreamTLS; t != nil {
			conf.ServerName = t.ServerName
			fp += "|" + t.ServerName
			if t.CAFile != "" {
				ca := ts.caPool(t.CAFile)
				if ca.err != nil {
					return failing{ca.err}, "https", ca.err
				}
				conf.RootCAs = ca.pool
				fp += "|" + ca.fp
			}
		}
		return ts.kept.get(stateKey{"", fp}, func() *http.Transport {
			return upstream.NewTLSTransport(ts.maxIdle, ts.dial, conf)
		}), "https", nil
	}
	return ts.plain, "http", nil
}

// caPool reads and parses the CA file at path, once per build.
func (ts *transports) caPool(path string) caPool {
	if ca, ok := ts.pools[path]; ok {
		return ca
	}
	var ca caPool
	pem, err := ts.readFile(path)
	switch {
	case err != nil:
		ca.err = err
	default:
		ca.pool = x509.NewCertPool()
		if !ca.pool.AppendCertsFromPEM(pem) {
			ca.err = fmt.Errorf("%w: %s holds no PEM certificate", ErrCAFile, path)
		}
		sum := sha256.Sum256(pem)
		ca.fp = hex.EncodeToString(sum[:])
	}
	if ts.pools == nil {
		ts.pools = map[string]caPool{}
	}
	ts.pools[path] = ca
	return ca
}

// swap ends a build: transports the new table does not use close their
// idle connections (those in use finish with the requests on them).
func (ts *transports) swap() {
	next := ts.kept.next
	for k, t := range ts.kept.prev {
		if _, ok := next[k]; !ok {
			t.CloseIdleConnections()
		}
	}
	ts.kept.swap()
	ts.pools = nil
}

func (ts *transports) discard() {
	ts.kept.discard()
	ts.pools = nil
}

// readBounded reads a CA file of at most MaxCAFileBytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCAFile, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxCAFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCAFile, err)
	}
	if len(b) > MaxCAFileBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCAFile, path, MaxCAFileBytes)
	}
	return b, nil
}

// failing is the transport of a route whose TLS settings are unusable.
type failing struct{ err error }

func (f failing) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, f.err
}
