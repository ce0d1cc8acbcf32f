package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/hashicorp/consul/api"
)

// maxIdleConns bounds the idle pool. The api client's default keeps only
// GOMAXPROCS+1 idle connections per host, so when many long polls complete at
// once (one Consul write can wake every health watch) the surplus connections
// are closed and re-dialled on the next poll. All watches talk to one agent,
// so the per-host limit is the whole pool. Idle connections never outnumber
// the calls that were in flight at once, so with shared health watches
// (shared.go) the pool stays at a handful whatever this bound.
const maxIdleConns = 1024

// idleConnTimeout closes a connection idle this long. A long poll leaves its
// connection idle only between two calls, so this never closes a watch's;
// it ends the extra connections that one-off calls (start-up reads,
// last-good writes) opened beside the shared watches sooner than the
// transport's 90 s.
const idleConnTimeout = 30 * time.Second

// DefaultMaxAnswerBytes bounds the body of every answer read from Consul
// (see NewClientLimit). The largest answer the gateway reads is the shared
// health watch's list of every check: about 500 bytes a check, so 64 MiB
// leaves room for some 100,000 checks, ten times the 10,000-service bench.
const DefaultMaxAnswerBytes = 64 << 20

// ErrAnswerTooLarge is wrapped by the error of a call whose answer body
// ran past the client's bound: the call fails, and its watch keeps its last
// snapshot, instead of the decoder growing without limit.
var ErrAnswerTooLarge = errors.New("registry: consul answer over the size bound")

// NewClient returns a Consul API client configured from the standard
// environment (api.DefaultConfig: CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN,
// CONSUL_CACERT, ...). A non-empty addr overrides the address; it may carry
// a scheme ("https://host:8501") or be "unix:///path" (in which case the api
// client uses its own non-pooled transport). The client has no overall HTTP
// timeout: watches bound each call with a context deadline instead. Answer
// bodies are bounded by DefaultMaxAnswerBytes.
func NewClient(addr string) (*api.Client, error) {
	return NewClientLimit(addr, DefaultMaxAnswerBytes)
}

// NewClientLimit is NewClient with answer bodies bounded by maxBytes
// (zero or less: DefaultMaxAnswerBytes). The bound applies while the body is
// read, before it is decoded in full, so a hostile or broken Consul cannot
// make the gateway buffer more.
func NewClientLimit(addr string, maxBytes int64) (*api.Client, error) {
	client, _, err := newClientLimit(addr, maxBytes)
	return client, err
}

// DefaultAddr is the Consul address used when neither the addr argument
// nor CONSUL_HTTP_ADDR gives one: what Consul's own CLI uses and what the
// gateway's help states. The api package's default, localhost:8500, is a
// name lookup that may answer ::1 first, where a local agent started with
// -client 127.0.0.1 does not listen.
const DefaultAddr = "127.0.0.1:8500"

// Address is the Consul address NewClient(addr) talks to, for messages
// that name it.
func Address(addr string) string {
	return clientConfig(addr).Address
}

// clientConfig is api.DefaultConfig with addr, else CONSUL_HTTP_ADDR,
// else DefaultAddr.
func clientConfig(addr string) *api.Config {
	cfg := api.DefaultConfig()
	switch {
	case addr != "":
		cfg.Address = addr
	case os.Getenv(api.HTTPAddrEnvName) == "":
		cfg.Address = DefaultAddr
	}
	return cfg
}

// newClient also returns the transport so tests can close idle connections
// before checking for leaked goroutines.
func newClient(addr string) (*api.Client, *http.Transport, error) {
	return newClientLimit(addr, DefaultMaxAnswerBytes)
}

func newClientLimit(addr string, maxBytes int64) (*api.Client, *http.Transport, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxAnswerBytes
	}
	cfg := clientConfig(addr)
	cfg.Transport.MaxIdleConns = maxIdleConns
	cfg.Transport.MaxIdleConnsPerHost = maxIdleConns
	cfg.Transport.IdleConnTimeout = idleConnTimeout
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("registry: consul client for %q: %w", cfg.Address, err)
	}
	// api.NewClient fills cfg.HttpClient (its own for unix sockets) and
	// keeps that same *http.Client, so wrapping its transport here bounds
	// every call the returned client makes.
	cfg.HttpClient.Transport = boundedTransport{next: cfg.HttpClient.Transport, max: maxBytes}
	return client, cfg.Transport, nil
}

// boundedTransport cuts every answer body at max bytes.
type boundedTransport struct {
	next http.RoundTripper
	max  int64
}

func (t boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s announces %d bytes (bound %d)", ErrAnswerTooLarge, req.URL.Path, resp.ContentLength, t.max)
	}
	resp.Body = &boundedBody{rc: resp.Body, left: t.max, max: t.max, path: req.URL.Path}
	return resp, nil
}

// boundedBody fails the read that would go past the bound, so the JSON
// decoder stops with ErrAnswerTooLarge rather than a truncated document.
type boundedBody struct {
	rc   io.ReadCloser
	left int64
	max  int64
	path string
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly max bytes from a longer one.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("%w: %s (bound %d)", ErrAnswerTooLarge, b.path, b.max)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *boundedBody) Close() error { return b.rc.Close() }
