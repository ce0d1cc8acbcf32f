package exchange

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"
)

func TestClientAddrBelievesXFFOnlyFromTrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name, peer, xff, want string
		trusted               []netip.Prefix
	}{
		{"no trusted proxies", "10.1.1.1:5", "1.2.3.4", "10.1.1.1", nil},
		{"untrusted peer", "192.0.2.1:5", "1.2.3.4", "192.0.2.1", trusted},
		{"trusted peer", "10.1.1.1:5", "1.2.3.4", "1.2.3.4", trusted},
		{"chain of proxies", "10.1.1.1:5", "6.6.6.6, 1.2.3.4, 10.2.2.2", "1.2.3.4", trusted},
		{"client-forged left entries ignored", "10.1.1.1:5", "10.9.9.9, 5.5.5.5", "5.5.5.5", trusted},
		{"all trusted", "10.1.1.1:5", "10.2.2.2", "10.2.2.2", trusted},
		{"malformed hop", "10.1.1.1:5", "1.2.3.4, garbage", "10.1.1.1", trusted},
		{"no header", "10.1.1.1:5", "", "10.1.1.1", trusted},
		{"ipv6 peer", "[::1]:5", "2001:db8::1", "2001:db8::1", trusted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := ClientAddr(r, tc.trusted); got != tc.want {
				t.Fatalf("ClientAddr = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHeaderSetStripsEverySpellingAnUpstreamReadsAsIt(t *testing.T) {
	// Keys as a client may send them: net/http leaves a key with an
	// underscore uncanonicalised, so they are set raw.
	h := http.Header{}
	for _, k := range []string{"X-User-Id", "X_user_id", "X_USER_ID", "X-user_Id", "X-User-Idx", "X_User"} {
		h[k] = []string{"v"}
	}
	NewHeaderSet("x-user-id").Strip(h)
	var left []string
	for k := range h {
		left = append(left, k)
	}
	slices.Sort(left)
	if want := []string{"X-User-Idx", "X_User"}; !slices.Equal(left, want) {
		t.Fatalf("after Strip: %v, want %v", left, want)
	}
}
