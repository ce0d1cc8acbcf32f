package policy

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayco/gateway/gateway/exchange"
)

// HTTPS is the https_only and HSTS policy, per route or (with the
// -https-redirect and -hsts-max-age flags) for the whole gateway.
type HTTPS struct {
	// Only answers plain-HTTP requests with a 308 to the same URL over
	// HTTPS.
	Only bool
	// HSTSMaxAge, when positive, adds Strict-Transport-Security to
	// answers sent over HTTPS (never over plain HTTP, where browsers
	// ignore it and an attacker could strip it anyway).
	HSTSMaxAge time.Duration
	// Port is the port redirects point at; "443" or "" leaves it out.
	Port string
	// Trusted are the proxies whose X-Forwarded-Proto is believed: a
	// request that reached such a proxy over HTTPS counts as HTTPS.
	Trusted []netip.Prefix
}

// Active reports whether the policy does anything.
func (p HTTPS) Active() bool { return p.Only || p.HSTSMaxAge > 0 }

// IsHTTPS reports whether r arrived over TLS, here or at a trusted proxy.
func IsHTTPS(r *http.Request, trusted []netip.Prefix) bool {
	if r.TLS != nil {
		return true
	}
	_, _, proto, _ := exchange.Forwarded(r, trusted)
	return strings.EqualFold(proto, "https")
}

// Middleware applies the policy before next. A redirect keeps the host,
// path and query; 308 (not 301) keeps the method and body, so a POST is
// not silently turned into a GET. An HTTP-01 ACME challenge must be
// answered by a handler outside this one.
func (p HTTPS) Middleware(next http.Handler) http.Handler {
	if !p.Active() {
		return next
	}
	hsts := "max-age=" + strconv.FormatInt(int64(p.HSTSMaxAge/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsHTTPS(r, p.Trusted) {
			if p.HSTSMaxAge > 0 {
				w.Header().Set("Strict-Transport-Security", hsts)
			}
			next.ServeHTTP(w, r)
			return
		}
		if !p.Only {
			next.ServeHTTP(w, r)
			return
		}
		target, ok := p.redirect(r)
		if !ok {
			exchange.WriteError(w, http.StatusBadRequest, "https required, and the Host header is not a host name", "")
			return
		}
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusPermanentRedirect)
	})
}

// redirect is r's URL over HTTPS on p.Port.
func (p HTTPS) redirect(r *http.Request) (string, bool) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" || strings.ContainsAny(host, "/?#@\\ ") {
		return "", false
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p.Port != "" && p.Port != "443" {
		host += ":" + p.Port
	}
	path := r.URL.EscapedPath()
	if !strings.HasPrefix(path, "/") {
		// "" or the "*" of "OPTIONS *", which would run into the host.
		path = "/"
	}
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	return "https://" + host + path, true
}
