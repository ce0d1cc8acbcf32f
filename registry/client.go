package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// Connections to Consul. A client from NewClient has two kinds:
//
//   - each watch loop (watch.go) has a lane of its own, a transport of at
//     most one connection, which its blocking queries hold for their whole
//     wait: a watch makes one call at a time, so it never needs more, and
//     nothing else can take that connection from under it;
//   - every other call (targeted reads, last-good writes, registration,
//     one-shot reads) shares the client's own transport, which opens at
//     most ShortCallSlots connections: a call that finds them all busy
//     waits for one, within its own deadline.
//
// So the connections a gateway holds are its watch loops plus
// ShortCallSlots, by construction: with shared health watches the routes,
// last-good state, check-list and catalog watches and 4 slots, 8 in all.
// Without lanes net/http would open another connection whenever every one
// it has is busy, and keep a dial that lost the race to a returning
// connection as an idle one, so the count followed bursts, not the design:
// the last-good writer's read and check-and-set beside the four targeted
// reads and four long polls made a ninth.

// ShortCallSlots bounds the connections shared by every call that is not
// a watch's (MaxConnsPerHost of the client's transport). It matches the
// shared health watch's sharedWorkers, so its targeted reads need not
// queue behind each other; the last-good writer and one-shot calls queue
// with them.
const ShortCallSlots = 4

// idleConnTimeout closes a connection idle this long. A long poll leaves its
// connection idle only between two calls, so this never closes a watch's;
// it ends the short calls' connections after a burst (start-up reads,
// last-good writes) sooner than the transport's 90 s.
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
	return NewClientSlots(addr, maxBytes, ShortCallSlots)
}

// NewClientSlots is NewClientLimit with slots connections (at least 1)
// shared by every call that is not a watch loop's, in place of
// ShortCallSlots: a gateway that runs one more watch loop than the four
// of shared health watches (the replica watch of -register) gives up a
// slot for it, so its connections stay at 8.
func NewClientSlots(addr string, maxBytes int64, slots int) (*api.Client, error) {
	client, _, err := newClientSlots(addr, maxBytes, slots)
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
	return newClientSlots(addr, maxBytes, ShortCallSlots)
}

func newClientSlots(addr string, maxBytes int64, slots int) (*api.Client, *http.Transport, error) {
	slots = max(slots, 1)
	if maxBytes <= 0 {
		maxBytes = DefaultMaxAnswerBytes
	}
	cfg := clientConfig(addr)
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("registry: consul client for %q: %w", cfg.Address, err)
	}
	// api.NewClient fills cfg.HttpClient (its own for unix sockets, with
	// TLS set on its transport) and keeps that same *http.Client, so
	// replacing its transport here governs every call the returned client
	// makes.
	short, ok := cfg.HttpClient.Transport.(*http.Transport)
	if !ok {
		return nil, nil, fmt.Errorf("registry: consul client for %q: transport %T, want *http.Transport", cfg.Address, cfg.HttpClient.Transport)
	}
	short.MaxConnsPerHost = slots
	// The api client's idle default (GOMAXPROCS+1) is below the slots on
	// a small machine, which would close and re-dial between bursts.
	short.MaxIdleConns = slots
	short.MaxIdleConnsPerHost = slots
	short.IdleConnTimeout = idleConnTimeout
	cfg.HttpClient.Transport = boundedTransport{next: laneTransport{short: short}, max: maxBytes}
	return client, short, nil
}

// lane is one watch loop's transport to Consul, made on its first call
// from the short calls' transport (same TLS, dialer and proxy) with room
// for one connection. The zero value is ready; close releases its
// connection. Safe for concurrent use.
type lane struct {
	mu sync.Mutex
	t  *http.Transport
}

type laneKey struct{}

// withLane makes the calls made with ctx go through l, on a client from
// NewClient; other clients ignore it.
func withLane(ctx context.Context, l *lane) context.Context {
	return context.WithValue(ctx, laneKey{}, l)
}

func (l *lane) transport(base *http.Transport) *http.Transport {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.t == nil {
		t := base.Clone()
		t.MaxConnsPerHost, t.MaxIdleConns, t.MaxIdleConnsPerHost = 1, 1, 1
		l.t = t
	}
	return l.t
}

// close drops the lane's idle connection: its watch has stopped.
func (l *lane) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.t != nil {
		l.t.CloseIdleConnections()
	}
}

// laneTransport sends a call made with a lane's context through that
// lane, and every other call through short.
type laneTransport struct {
	short *http.Transport
}

func (t laneTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if l, ok := req.Context().Value(laneKey{}).(*lane); ok && l != nil {
		return l.transport(t.short).RoundTrip(req)
	}
	return t.short.RoundTrip(req)
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
