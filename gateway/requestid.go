package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/gatewayco/gateway/gateway/exchange"
)

// maxRequestIDLen bounds a client-sent ID: it is copied into every log line
// and upstream request, so an unbounded one would let a client bloat both.
const maxRequestIDLen = 128

// newRequestID returns 16 random bytes in hex, the default generator.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// validRequestID accepts what is safe to log and forward: 1 to 128 of
// the characters request IDs are made of (UUIDs, hex, base64 and the
// usual separators: letters, digits and - _ . : + / = @). Anything else is
// replaced: control characters would forge log lines, and quotes, spaces
// or backslashes would forge fields within one.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-_.:+/=@", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// requestID returns the client's X-Request-Id when it is valid, otherwise
// a fresh one, and makes the request carry exactly that ID. The proxy sets
// it on the upstream request again from the exchange, after hop-by-hop
// removal, so naming it in Connection cannot drop it.
func (g *Gateway) requestID(r *http.Request) string {
	vals := r.Header.Values(exchange.HeaderRequestID)
	if len(vals) == 1 && validRequestID(vals[0]) {
		return vals[0]
	}
	id := g.newID()
	r.Header.Set(exchange.HeaderRequestID, id)
	return id
}
