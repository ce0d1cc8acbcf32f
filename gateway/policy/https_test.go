package policy

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestHTTPSRedirectAndHSTS(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	proxy := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name     string
		p        HTTPS
		method   string
		target   string
		host     string
		peer     string
		tls      bool
		xfp      string
		status   int
		location string
		hsts     string
	}{
		{name: "redirect keeps path and query", p: HTTPS{Only: true, Port: "8443"}, target: "/a/b%20c?x=1&y=2", host: "api.test:8080",
			status: 308, location: "https://api.test:8443/a/b%20c?x=1&y=2"},
		{name: "port 443 left out", p: HTTPS{Only: true, Port: "443"}, target: "/", host: "api.test", status: 308, location: "https://api.test/"},
		{name: "POST keeps its method with 308", p: HTTPS{Only: true}, method: http.MethodPost, target: "/p", host: "api.test", status: 308, location: "https://api.test/p"},
		{name: "IPv6 host", p: HTTPS{Only: true, Port: "8443"}, target: "/", host: "[::1]:8080", status: 308, location: "https://[::1]:8443/"},
		{name: "over TLS it serves, with HSTS", p: HTTPS{Only: true, HSTSMaxAge: time.Hour}, target: "/", host: "api.test", tls: true, status: 204, hsts: "max-age=3600"},
		{name: "no HSTS over plain HTTP", p: HTTPS{HSTSMaxAge: time.Hour}, target: "/", host: "api.test", status: 204},
		{name: "trusted proxy saw HTTPS", p: HTTPS{Only: true, HSTSMaxAge: time.Hour, Trusted: proxy}, target: "/", host: "api.test", peer: "10.1.2.3:5000", xfp: "https", status: 204, hsts: "max-age=3600"},
		{name: "untrusted X-Forwarded-Proto ignored", p: HTTPS{Only: true, Trusted: proxy}, target: "/", host: "api.test", peer: "192.0.2.1:5000", xfp: "https", status: 308, location: "https://api.test/"},
		{name: "hostile host", p: HTTPS{Only: true}, target: "/", host: "evil.test@x", status: 400},
		{name: "OPTIONS * keeps the host intact", p: HTTPS{Only: true}, method: http.MethodOptions, target: "*", host: "api.test", status: 308, location: "https://api.test/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			r.Host = tc.host
			if tc.peer != "" {
				r.RemoteAddr = tc.peer
			}
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if tc.xfp != "" {
				r.Header.Set("X-Forwarded-Proto", tc.xfp)
			}
			w := httptest.NewRecorder()
			tc.p.Middleware(ok).ServeHTTP(w, r)
			if w.Code != tc.status || w.Header().Get("Location") != tc.location || w.Header().Get("Strict-Transport-Security") != tc.hsts {
				t.Errorf("got %d Location %q HSTS %q, want %d %q %q", w.Code, w.Header().Get("Location"), w.Header().Get("Strict-Transport-Security"), tc.status, tc.location, tc.hsts)
			}
		})
	}
}
