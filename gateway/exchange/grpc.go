package exchange

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// gRPC status codes the gateway answers with (google.golang.org/grpc/codes
// numbers; the package is not imported for nine constants).
const (
	grpcCanceled          = 1
	grpcUnknown           = 2
	grpcDeadlineExceeded  = 4
	grpcPermissionDenied  = 7
	grpcResourceExhausted = 8
	grpcUnimplemented     = 12
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcUnauthenticated   = 16
)

// IsGRPC reports whether r is a gRPC call: Content-Type application/grpc,
// alone or with a "+codec" or parameters. gRPC-Web (application/grpc-web)
// is not: its clients read errors from the body, not from trailers.
func IsGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	rest, ok := strings.CutPrefix(ct, "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

// GRPCCode is the gRPC status a gateway error of HTTP status answers a
// gRPC client with. It follows gRPC's HTTP-to-gRPC mapping, except where
// the gateway knows more than the status says: its 504 is a deadline it
// enforced (DEADLINE_EXCEEDED, not UNAVAILABLE), its 429 a rate limit and
// its 413 a body limit (RESOURCE_EXHAUSTED), its 404 and 405 a method it
// has no route for (UNIMPLEMENTED).
func GRPCCode(status int) int {
	switch status {
	case http.StatusBadRequest:
		return grpcInternal
	case http.StatusUnauthorized:
		return grpcUnauthenticated
	case http.StatusForbidden:
		return grpcPermissionDenied
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return grpcUnimplemented
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return grpcDeadlineExceeded
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return grpcResourceExhausted
	case StatusClientClosed:
		return grpcCanceled
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return grpcUnavailable
	}
	return grpcUnknown
}

// writeGRPCError answers a gRPC client in the trailers-only form: HTTP
// 200, no body, and grpc-status and grpc-message in the only header
// block, which is what gRPC clients read an error from. The exchange
// records status (the gateway's verdict) for logs and metrics, while
// the wire carries 200.
func writeGRPCError(ex *Exchange, w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(GRPCCode(status)))
	h.Set("Grpc-Message", percentEncode(msg))
	ex.begin(status)
	w.WriteHeader(http.StatusOK)
}

// percentEncode is grpc-message's encoding: bytes outside printable
// ASCII, and '%' itself, as %XX.
func percentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == '%' {
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// exchangeOf finds the exchange w is or wraps, through Unwrap; nil when
// w is outside the gateway.
func exchangeOf(w http.ResponseWriter) *Exchange {
	for range 16 { // wrappers nest a few deep; a cycle must not hang
		switch v := w.(type) {
		case *Exchange:
			return v
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

// ErrGRPCTimeout rejects a grpc-timeout header that is not 1 to 8 ASCII
// digits followed by one unit (H, M, S, m, u, n), as the gRPC protocol
// defines it.
var ErrGRPCTimeout = errors.New("malformed grpc-timeout")

// ParseGRPCTimeout reads a grpc-timeout header value strictly. Eight
// digits of hours or minutes overflow a time.Duration; such a value (over
// 292 years) reads as the longest Duration.
func ParseGRPCTimeout(v string) (time.Duration, error) {
	if len(v) < 2 || len(v) > 9 {
		return 0, ErrGRPCTimeout
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, ErrGRPCTimeout
	}
	var n int64
	for _, c := range []byte(v[:len(v)-1]) {
		if c < '0' || c > '9' {
			return 0, ErrGRPCTimeout
		}
		n = n*10 + int64(c-'0')
	}
	if n > int64(math.MaxInt64/unit) {
		return math.MaxInt64, nil
	}
	return time.Duration(n) * unit, nil
}

// FormatGRPCTimeout is d as a grpc-timeout value: the finest unit whose
// count fits in eight digits, rounded up: the upstream's deadline is
// never before the gateway's. Zero or less is "0n" (already expired).
func FormatGRPCTimeout(d time.Duration) string {
	if d <= 0 {
		return "0n"
	}
	const max = 99_999_999
	units := []struct {
		u time.Duration
		c byte
	}{{time.Nanosecond, 'n'}, {time.Microsecond, 'u'}, {time.Millisecond, 'm'}, {time.Second, 'S'}, {time.Minute, 'M'}, {time.Hour, 'H'}}
	for _, u := range units {
		n := d / u.u
		if d%u.u != 0 {
			n++
		}
		if n <= max {
			return strconv.FormatInt(int64(n), 10) + string(u.c)
		}
	}
	return strconv.Itoa(max) + "H"
}
