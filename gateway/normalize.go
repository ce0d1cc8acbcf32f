package gateway

import (
	"net/http"
	"path"
	"strings"
)

// normalizePath makes the path the gateway routes on the same path the
// upstream receives, so no spelling of a path can reach a route, or slip
// past a route's policies, that its clean form would not:
//
//   - percent-decoding happens first (net/http does it), so %2e%2e is ..
//     and %2F is / before anything else looks at the path;
//   - dot segments and repeated slashes are then removed as path.Clean
//     does, keeping a trailing slash;
//   - the encoded form is dropped, so the upstream gets the clean path
//     spelled plainly instead of a different spelling of it.
//
// Like Traefik's path sanitising, and unlike mux's default, an unclean path
// is served, not redirected: a redirect would turn a POST into a GET in
// many clients. It returns r itself when the path is already clean, which
// is the common case and costs no allocation.
func normalizePath(r *http.Request) *http.Request {
	p := r.URL.Path
	if r.URL.RawPath == "" && isClean(p) {
		return r
	}
	clean := cleanPath(p)
	u := *r.URL
	u.Path, u.RawPath = clean, ""
	r.URL = &u
	return r
}

// cleanPath is path.Clean that keeps the trailing slash and the leading one.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// isClean reports, without allocating, whether cleanPath would return p.
func isClean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] != '/' && p[i] != '.' {
			continue
		}
		if p[i] == '/' && p[i-1] == '/' {
			return false
		}
		if p[i] == '.' && p[i-1] == '/' {
			// "/." or "/.." followed by "/" or the end is a dot segment.
			rest := p[i:]
			if rest == "." || rest == ".." || strings.HasPrefix(rest, "./") || strings.HasPrefix(rest, "../") {
				return false
			}
		}
	}
	return true
}
