package exchange

import (
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
)

// Forwarded computes the X-Forwarded-For, -Host and -Proto values an
// upstream gets for r, for proxied requests and aggregate calls alike.
// What a client sends is replaced: anyone can write those headers. Only a
// peer in trusted (a proxy in front of the gateway) has its
// X-Forwarded-For chain extended and its -Host and -Proto kept, since it
// saw the original client and protocol.
func Forwarded(r *http.Request, trusted []netip.Prefix) (xff, host, proto string, peerTrusted bool) {
	peer := PeerIP(r)
	xff, host, proto = peer, r.Host, "http"
	if r.TLS != nil {
		proto = "https"
	}
	if !TrustedPeer(r, trusted) {
		return xff, host, proto, false
	}
	if prior := r.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + peer
	}
	if v := r.Header.Get("X-Forwarded-Host"); v != "" {
		host = v
	}
	if v := r.Header.Get("X-Forwarded-Proto"); v != "" {
		proto = v
	}
	return xff, host, proto, true
}

// TrustedPeer reports whether r came from one of the trusted proxies.
func TrustedPeer(r *http.Request, trusted []netip.Prefix) bool {
	if len(trusted) == 0 {
		return false
	}
	addr, err := netip.ParseAddr(PeerIP(r))
	return err == nil && isTrusted(addr, trusted)
}

// Kinds of headers a client can write to mislead what is behind the
// gateway; see spoofKind.
const (
	notSpoofable = iota
	// rewriteHeader makes some frameworks serve another path or method
	// than the request line's (IIS, Symfony and Zend read X-Original-URL
	// and X-Rewrite-URL; many read a method override).
	rewriteHeader
	// clientHeader tells frameworks, CDNs' customers and auth services
	// the client's address, or the host or server it reached.
	clientHeader
)

// spoofKind classifies a header name. An underscore counts as a dash:
// CGI-style frameworks (PHP, WSGI, Rack) read X_Client_IP as X-Client-IP.
func spoofKind(k string) int {
	if strings.IndexByte(k, '_') >= 0 {
		k = textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(k, "_", "-"))
	}
	if strings.HasPrefix(k, "X-Forwarded-") {
		return clientHeader
	}
	switch k {
	case "X-Original-Url", "X-Rewrite-Url", "X-Original-Uri", "X-Override-Url",
		"X-Http-Method-Override", "X-Http-Method", "X-Method-Override":
		return rewriteHeader
	case "X-Real-Ip", "True-Client-Ip", "X-Client-Ip", "Client-Ip", "X-Originating-Ip",
		"X-Remote-Ip", "X-Remote-Addr", "X-Cluster-Client-Ip", "Cf-Connecting-Ip",
		"Fastly-Client-Ip", "X-Proxyuser-Ip", "Forwarded", "X-Forwarded", "Forwarded-For",
		"X-Original-Forwarded-For", "X-Host":
		return clientHeader
	}
	return notSpoofable
}

// DropSpoofable removes from h, a header set going to an upstream, an
// auth service or an aggregate call, what the client may have forged.
// Rewrite headers go whoever sent them: the gateway routed, and applied
// the route's policies, on the request line, so the upstream must serve
// that. Client-address headers go unless the peer is a trusted proxy,
// which sets them itself.
func DropSpoofable(h http.Header, peerTrusted bool) {
	for k := range h {
		if Spoofable(k, peerTrusted) {
			delete(h, k)
		}
	}
}

// Spoofable reports whether DropSpoofable drops the header named k
// (canonical form): for a forwarding path that copies a header field by
// field rather than deleting from a copy.
func Spoofable(k string, peerTrusted bool) bool {
	kind := spoofKind(k)
	return kind == rewriteHeader || kind == clientHeader && !peerTrusted
}

// ClientAddr is the client's IP: the connection's peer, unless the peer is
// a trusted proxy, in which case X-Forwarded-For is walked from the right
// (the entry the nearest proxy appended) to the first address that is not
// a trusted proxy. Entries further left were written by the client itself
// and are never believed.
func ClientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer := PeerIP(r)
	if len(trusted) == 0 {
		return peer
	}
	addr, err := netip.ParseAddr(peer)
	if err != nil || !isTrusted(addr, trusted) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			// A malformed hop ends what can be believed; the last
			// trusted address is the best we know.
			return addr.String()
		}
		addr = a.Unmap()
		if !isTrusted(addr, trusted) {
			return addr.String()
		}
	}
	return addr.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// PeerIP is the peer address of the connection, ignoring
// X-Forwarded-For, which any client can send; ClientAddr believes it from
// trusted proxies.
func PeerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// HeaderSet is a set of header names, in canonical form, that an auth
// policy sets on the upstream request itself (verified claims, copied
// auth answers); a client's own copies must never get through.
type HeaderSet map[string]bool

// NewHeaderSet returns the set of names, canonicalised.
func NewHeaderSet(names ...string) HeaderSet {
	s := make(HeaderSet, len(names))
	for _, n := range names {
		s[http.CanonicalHeaderKey(n)] = true
	}
	return s
}

// Strip removes from h every header of s in every spelling an upstream
// may read as it: the canonical one, and any with underscores for dashes
// in any case, which CGI-style frameworks (PHP, WSGI, Rack) read as the
// same HTTP_X_USER_ID. It makes one pass over h whatever the size of s,
// so a client sending many headers costs one lookup each, not one per
// name in the set.
func (s HeaderSet) Strip(h http.Header) {
	if len(s) == 0 {
		return
	}
	for k := range h {
		if s[k] {
			delete(h, k)
			continue
		}
		if strings.IndexByte(k, '_') >= 0 && s[textproto.CanonicalMIMEHeaderKey(strings.ReplaceAll(k, "_", "-"))] {
			delete(h, k)
		}
	}
}
