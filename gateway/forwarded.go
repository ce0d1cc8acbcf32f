package gateway

import (
	"net/http"
	"net/netip"
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
	if len(trusted) == 0 {
		return xff, host, proto, false
	}
	addr, err := netip.ParseAddr(peer)
	if err != nil || !isTrusted(addr, trusted) {
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
