package gateway

import (
	"errors"
	"net/http"
)

// DefaultMaxBodyBytes bounds request bodies unless configured otherwise:
// large enough for any JSON API, small enough that one client cannot make
// the gateway stream gigabytes to an upstream that never asked for them.
const DefaultMaxBodyBytes = 10 << 20

const msgBodyTooLarge = "request body too large"

// limitBody enforces the body limit: a declared length over it is refused
// at once; a chunked body is cut off when it crosses the limit, and the
// proxy turns that read error into 413. The body is then guarded (see
// clientBody): reads are bounded in time, and their failures are known to
// be the client's. It reports false when it already answered.
func (g *Gateway) limitBody(ex *exchange, r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if g.maxBody > 0 {
		if r.ContentLength > g.maxBody {
			writeError(ex, http.StatusRequestEntityTooLarge, msgBodyTooLarge, "")
			return false
		}
		r.Body = http.MaxBytesReader(ex, r.Body, g.maxBody)
	}
	ex.guardBody(ex.ResponseWriter, r, g.bodyTimeout)
	return true
}

// isBodyTooLarge reports whether err came from crossing the body limit.
func isBodyTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
