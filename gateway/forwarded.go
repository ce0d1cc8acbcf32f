package gateway

import (
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
)

// forwarded computes the X-Forwarded-For, -Host and -Proto values an
// upstream gets for r, for proxied requests and aggregate calls alike.
// What a client sends is replaced: anyone can write those headers. Only a
// peer in trusted (a proxy in front of the gateway) has its
// X-Forwarded-For chain extended and its -Host and -Proto kept, since it
// saw the original client and protocol.
func forwarded(r *http.Request, trusted []netip.Prefix) (xff, host, proto string, peerTrusted bool) {
	peer := clientIP(r)
	xff, host, proto = peer, r.Host, "http"
	if r.TLS != nil {
		proto = "https"
	}
	if !trustedPeer(r, trusted) {
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

// trustedPeer reports whether r came from one of the trusted proxies.
func trustedPeer(r *http.Request, trusted []netip.Prefix) bool {
	if len(trusted) == 0 {
		return false
	}
	addr, err := netip.ParseAddr(clientIP(r))
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

// dropSpoofable removes from h, a header set going to an upstream, an
// auth service or an aggregate call, what the client may have forged.
// Rewrite headers go whoever sent them: the gateway routed, and applied
// the route's policies, on the request line, so the upstream must serve
// that. Client-address headers go unless the peer is a trusted proxy,
// which sets them itself.
func dropSpoofable(h http.Header, peerTrusted bool) {
	for k := range h {
		if kind := spoofKind(k); kind == rewriteHeader || kind == clientHeader && !peerTrusted {
			delete(h, k)
		}
	}
}
