package router

import (
	"net/http"
	"path"
	"strings"
)

// Messages of the 400s Normalize asks for; clients and tests match on them.
const (
	MsgMissingHost = "missing Host header"
	MsgBadPathChar = "path contains a semicolon or a backslash"
)

// Normalize brings r into the one spelling the gateway routes on,
// applies policies to and forwards, so that no other spelling of the same
// request can reach another route: the canonical host (canonicalHost) and
// the clean path (normalizePath). It returns the message of a 400 instead
// when the request has no host, or a path that upstream frameworks would
// resolve to another path than the gateway sees: ";" starts path
// parameters that Tomcat, Jetty and Spring strip before resolving, so
// /public/..;/admin is /admin to them and /admin;x is /admin, and IIS reads
// "\" as "/". Both are checked after percent-decoding, so %3B and %5C are
// refused too. r must be the gateway's own shallow copy: its Host is set.
func Normalize(r *http.Request) (*http.Request, string) {
	host, ok := canonicalHost(r.Host, r.TLS != nil)
	if !ok {
		return r, MsgMissingHost
	}
	r.Host = host
	if strings.ContainsAny(r.URL.Path, `;\`) {
		return r, MsgBadPathChar
	}
	return normalizePath(r), ""
}

// canonicalHost is the one spelling of a Host header that every spelling
// of the same host shares: lower case (host names are case-insensitive),
// without the trailing dots of a fully qualified name, and without the
// default port of the scheme the request came in on (":80" over plain
// HTTP, ":443" over TLS) or an empty port. Another port is kept: it names
// another origin, even though host matching ignores it. ok is false when
// nothing is left of the name, as for a request without Host (HTTP/1.0
// allows one). Hosts already canonical are returned without allocating.
func canonicalHost(h string, tls bool) (host string, ok bool) {
	name, port, hasPort := h, "", false
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		name, port, hasPort = h[:i], h[i+1:], true
	}
	trimmed := strings.TrimRight(name, ".")
	if trimmed == "" {
		return "", false
	}
	def := "80"
	if tls {
		def = "443"
	}
	dropPort := hasPort && (port == "" || strings.TrimLeft(port, "0") == def)
	if trimmed == name && !dropPort && !hasUpper(h) {
		return h, true
	}
	host = strings.ToLower(trimmed)
	if hasPort && !dropPort {
		host += ":" + port
	}
	return host, true
}

// routeHost is a route's host as requests are matched against it: a
// literal host canonical as for requests, with either default port
// dropped (a route cannot tell which scheme will reach it); a template as
// written, less a trailing dot.
func routeHost(h string) string {
	if strings.Contains(h, "{") {
		return strings.TrimSuffix(h, ".")
	}
	h, _ = canonicalHost(h, false)
	h, _ = canonicalHost(h, true)
	return h
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

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
