package gateway

import (
	"context"
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
// proxy turns that read error into 413. It reports false when it already
// answered.
func (g *Gateway) limitBody(w http.ResponseWriter, r *http.Request) bool {
	if g.maxBody <= 0 || r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if r.ContentLength > g.maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, msgBodyTooLarge, "")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, g.maxBody)
	return true
}

// isBodyTooLarge reports whether err came from crossing the body limit.
func isBodyTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// clientFault reports whether a failed exchange was the client's doing: it
// went away, or its body crossed the limit. Such failures say nothing
// about the instance, so they must not eject it, open a breaker or count
// as upstream errors; otherwise any client could take instances out.
func clientFault(req *http.Request, err error) bool {
	return errors.Is(req.Context().Err(), context.Canceled) || isBodyTooLarge(err)
}
