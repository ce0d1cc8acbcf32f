package policy

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Shared-cache rules for callers other than the stale cache (aggregate
// call caching): the same decisions, made by the same code.

// Shareable reports whether a shared cache may give resp, the answer to
// req, to other clients: see shareable, which the stale cache uses.
func Shareable(req *http.Request, resp *http.Response) bool { return shareable(req, resp) }

// VaryOn returns the values req sent in the headers resp's Vary names,
// which a later request must send too to be given resp (VaryMatches).
func VaryOn(req *http.Request, resp *http.Response) map[string]string { return varyOn(req, resp) }

// VaryMatches reports whether header sends the values vary holds (as
// VaryOn recorded them).
func VaryMatches(vary map[string]string, header http.Header) bool {
	e := StaleEntry{Vary: vary}
	return e.matches(&http.Request{Header: header})
}

// FreshFor is how long a shared cache may reuse resp without asking the
// upstream again: s-maxage, else max-age, less the Age the answer already
// has. ok is false when it may not be reused at all: no lifetime given,
// no-cache (every reuse must be revalidated, which a call cache does not
// do), or an answer Shareable refuses whatever the request (Set-Cookie,
// private, no-store, Vary: *). The request side is Shareable's.
func FreshFor(resp *http.Response) (d time.Duration, ok bool) {
	if !cacheable(resp) {
		return 0, false
	}
	maxAge, sMaxAge := -1, -1
	cacheDirectives(resp.Header, func(name, arg string) {
		switch name {
		case "max-age":
			maxAge = deltaSeconds(arg)
		case "s-maxage":
			sMaxAge = deltaSeconds(arg)
		}
	})
	secs := maxAge
	if sMaxAge >= 0 {
		secs = sMaxAge
	}
	if age := deltaSeconds(resp.Header.Get("Age")); age > 0 {
		secs -= age
	}
	if secs <= 0 {
		return 0, false
	}
	return time.Duration(secs) * time.Second, true
}

// cacheable reports whether resp may be stored at all: shareable's
// response rules, and no no-cache (a call cache never revalidates).
func cacheable(resp *http.Response) bool {
	ok := shareable(&http.Request{Header: http.Header{}}, resp)
	cacheDirectives(resp.Header, func(name, _ string) {
		ok = ok && name != "no-cache"
	})
	return ok
}

// maxDeltaSeconds caps a lifetime as RFC 9111 section 1.2.2 allows: a
// larger value means "a very long time", and must not overflow.
const maxDeltaSeconds = 1 << 31

// deltaSeconds parses an RFC 9111 delta-seconds value (possibly quoted);
// -1 when it is not one.
func deltaSeconds(s string) int {
	s = strings.Trim(s, `"`)
	if s == "" {
		return -1
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -1
		}
	}
	if len(s) > 10 {
		return maxDeltaSeconds
	}
	n, _ := strconv.Atoi(s)
	return min(n, maxDeltaSeconds)
}
