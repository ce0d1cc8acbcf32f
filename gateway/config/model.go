// Package config turns route documents (HCL) into plain, validated structs.
// Parsing and every validation rule live here, in one place, so the gateway
// builds its table only from values that are already known to be good, and
// the CLI's "routes validate" reports exactly what the gateway would.
package config

import (
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// Pos is a position inside one route document. Line and Column are 1-based;
// the zero Pos means "the document as a whole".
type Pos struct {
	Key    string
	Line   int
	Column int
}

// String renders the position as KEY:LINE:COL, the form editors jump to.
func (p Pos) String() string {
	return fmt.Sprintf("%s:%d:%d", p.Key, p.Line, p.Column)
}

// Route is one validated `route` block. Fields hold defaults already applied,
// so the table builder never second-guesses them.
type Route struct {
	// Name is the block label, unique across all documents.
	Name string
	// SourceKey is the KV key (or file name) the route came from.
	SourceKey string
	// Pos is where the route block starts.
	Pos Pos

	// Path is a gorilla/mux path template; exactly one of Path and PathPrefix is set.
	Path string
	// PathPrefix matches any path that starts with it (mux PathPrefix semantics).
	PathPrefix string
	// Methods restricts the route to these upper-case methods; empty means any.
	Methods []string
	// Host restricts the route to one Host header (a mux host template); empty means any.
	Host string
	// CaseInsensitive matches Path or PathPrefix against the request path
	// with case folded (see FoldCase), for upstreams that treat /Admin and
	// /admin as one resource: otherwise another route could reach it past
	// this route's policies under a different spelling.
	CaseInsensitive bool

	// Service is the Consul service name the route proxies to; empty when
	// Splits is set.
	Service string
	// Splits are the route's destinations when it has split blocks
	// instead of a service, in source order; nil otherwise.
	Splits []Split
	// Tag filters the service's instances by Consul tag; empty means any.
	Tag string
	// StripPrefix is removed from the request path before proxying; empty means none.
	StripPrefix string
	// Balancer is the policy name, defaulted to round_robin.
	Balancer string
	// AllowWarning lets the route use instances whose Consul checks warn
	// (none critical), at their warning weight; by default only passing
	// instances serve.
	AllowWarning bool
	// Timeout bounds the whole upstream exchange; zero means no route timeout.
	Timeout time.Duration
	// Connect makes the route reach its service through Consul Connect:
	// instances from the Connect health endpoint, dialled with mTLS under
	// the gateway's leaf certificate and checked against the service's
	// SPIFFE identity, and answered 403 while an intention denies it.
	Connect bool
	// Datacenter is the Consul datacenter the route's instances are read
	// from; empty means the local agent's.
	Datacenter string
	// Failover lists the datacenters to serve from when Datacenter has no
	// routable instance; nil means none.
	Failover *Failover
	// Protocol is what the route speaks to its instances: ProtocolHTTP
	// (also when empty, the default), ProtocolH2C or ProtocolHTTPS.
	Protocol string
	// UpstreamTLS tunes the TLS of an https route; nil means the system
	// roots and the instance's address as the name to verify.
	UpstreamTLS *UpstreamTLS
	// HTTPSOnly answers the route's plain-HTTP requests with a 308 to
	// HTTPS.
	HTTPSOnly bool
	// HSTSMaxAge, when positive, sends Strict-Transport-Security with
	// this max-age on the route's HTTPS answers.
	HSTSMaxAge time.Duration
	// ACME asks for a certificate for Host from the ACME CA; validation
	// ensures Host is then one exact DNS name (see ValidACMEHost).
	ACME bool
	// IdleTimeout closes a WebSocket tunnel through the route when no byte
	// has passed either way for that long; zero means DefaultIdleTimeout.
	// Timeout bounds only the handshake of a tunnel, never its life.
	IdleTimeout time.Duration
	// Sticky pins a client to one instance by cookie; nil means none.
	Sticky *Sticky
	// Mirrors each copy a share of the route's requests to another
	// destination; at most MaxMirrors.
	Mirrors []Mirror

	// Policy holds the route's rate limit, auth, circuit breaker and
	// retries; the zero Policy turns them all off.
	Policy Policy
}

// TunnelIdleTimeout is the route's idle_timeout with the default applied.
func (r *Route) TunnelIdleTimeout() time.Duration {
	if r.IdleTimeout > 0 {
		return r.IdleTimeout
	}
	return DefaultIdleTimeout
}

// DefaultIdleTimeout closes a WebSocket tunnel after this long without a
// byte either way, unless the route sets idle_timeout: Envoy's
// stream_idle_timeout. It is well above the heartbeat interval of common
// WebSocket stacks (Socket.IO pings every 25s), so only dead tunnels are
// cut, where nginx's 60s proxy_read_timeout cuts quiet but live ones.
const DefaultIdleTimeout = 5 * time.Minute

// MatchKey identifies what a route matches; two routes with equal MatchKeys
// are ambiguous and rejected. Methods are compared as a set, since
// ["GET", "POST"] and ["POST", "GET"] match the same requests. Templates are
// compared as written, so "/u/{id}" and "/u/{name}" are not caught; a
// case-insensitive route's are compared folded, so two such routes whose
// paths differ only in case clash, as does one with a case-sensitive route
// spelled in the folded form.
func (r *Route) MatchKey() string {
	methods := slices.Clone(r.Methods)
	slices.Sort(methods)
	path, prefix := r.Path, r.PathPrefix
	if r.CaseInsensitive {
		path, prefix = FoldCase(path), FoldCase(prefix)
	}
	return strings.Join([]string{r.Host, path, prefix, strings.Join(methods, ",")}, "\x00")
}

// Document is one parsed and validated route document.
type Document struct {
	// Key is the KV key (or file name) the document came from.
	Key string
	// ModifyIndex is the Consul index of the version parsed; zero for files.
	ModifyIndex uint64
	// Routes are the document's routes in source order.
	Routes []Route
	// Aggregates are the document's aggregate endpoints in source order.
	Aggregates []Aggregate
}

// ErrInvalid marks every error about a document's content, so callers can
// tell bad input from I/O failures with errors.Is.
var ErrInvalid = errors.New("invalid route document")

// Error is one problem in one document, with the position it refers to.
type Error struct {
	Pos     Pos
	Message string
	// Cause is what lies behind the problem, when more than the message:
	// a *PanicError for a panic caught while handling the document.
	Cause error
}

// Error renders KEY:LINE:COL: message.
func (e *Error) Error() string { return e.Pos.String() + ": " + e.Message }

// Unwrap makes every Error match ErrInvalid, and its Cause when it has one.
func (e *Error) Unwrap() []error {
	if e.Cause != nil {
		return []error{ErrInvalid, e.Cause}
	}
	return []error{ErrInvalid}
}

// PanicError is a panic caught while parsing a document or building a
// table from it: a bug, contained so that the one document is rejected and
// the process lives on. errors.As finds it in the document's error, for
// logging the stack and counting.
type PanicError struct {
	Value any
	Stack []byte
}

// Error names the panic value; the stack is for the log, not for /routes.
func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// panicked turns a panic recovered while parsing key into its error.
func panicked(key string, v any) error {
	pe := &PanicError{Value: v, Stack: debug.Stack()}
	return Errors{{Pos: Pos{Key: key, Line: 1, Column: 1},
		Message: fmt.Sprintf("internal error while parsing the document (%v); it is rejected, please report this", v), Cause: pe}}
}

// Errors is every problem found in one document, in source order. A nil or
// empty Errors is not an error; functions return it only when non-empty.
type Errors []*Error

// Error joins the problems one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each problem to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Upstream protocols a route may name.
const (
	ProtocolHTTP  = "http"  // HTTP/1.1 over TCP
	ProtocolH2C   = "h2c"   // HTTP/2 cleartext with prior knowledge (gRPC without TLS)
	ProtocolHTTPS = "https" // TLS, HTTP/2 when the instance offers it by ALPN
)

// Protocols lists the upstream protocols, for messages.
var Protocols = []string{ProtocolHTTP, ProtocolH2C, ProtocolHTTPS}

// UpstreamTLS is an https route's `upstream_tls` block. Certificate
// verification is always on; these only say what to verify against.
type UpstreamTLS struct {
	// CAFile is a PEM file of the CA certificates instances must chain
	// to; empty means the system roots. It is read when a table is built.
	CAFile string
	// ServerName is the name instances' certificates must carry (and the
	// SNI sent); empty means the host of the instance's address.
	ServerName string
	// Pos is where the block starts, for errors found at build time.
	Pos Pos
}
