package gateway

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// spoofable are headers some upstream frameworks or auth services obey
// and any client can write: rewrite headers (another path or method than
// the one routed) and client-address and host headers.
var (
	rewriteSamples  = []string{"X-Original-URL", "X-Rewrite-URL", "X-Original-URI", "X-Override-URL", "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}
	clientIPSamples = []string{"X-Real-IP", "True-Client-IP", "X-Client-IP", "Client-IP", "X-Originating-IP", "X-Remote-IP", "X-Remote-Addr",
		"X-Cluster-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP", "X-Host", "X-Forwarded-Server", "Forwarded", "X-Forwarded", "Forwarded-For",
		"X-Original-Forwarded-For", "X-ProxyUser-IP"}
)

// TestSpoofableHeadersNeverReachUpstreams: rewrite headers are dropped
// from every peer, since the gateway routed on the request line;
// client-address headers are dropped unless the peer is a trusted proxy.
// Underscore spellings (X_Client_IP, which CGI-style frameworks read as
// X-Client-IP) count as the same header. The rule holds for the route's
// upstream, its forward-auth service and aggregate calls alike.
func TestSpoofableHeadersNeverReachUpstreams(t *testing.T) {
	up, auth, call := &headerEcho{}, &headerEcho{}, &headerEcho{}
	_, upInst := startUpstream(t, "up", up.ServeHTTP)
	_, authInst := startUpstream(t, "auth", auth.ServeHTTP)
	_, callInst := startUpstream(t, "call", call.ServeHTTP)
	doc := `
route "r" {
  path_prefix = "/r"
  service     = "up"
  forward_auth {
    service = "auth"
    path    = "/verify"
  }
}
aggregate "agg" {
  path            = "/agg"
  forward_headers = [` + `"X-Client-IP", "True-Client-IP", "X-Original-URL", "X_Real_IP", "X-Keep"` + `]
  call "c" {
    service = "call"
    path    = "/c"
  }
}
`
	parsed, err := config.Parse("k", []byte(doc), 1)
	if err != nil {
		t.Fatal(err)
	}
	insts := fixed(map[string][]registry.Instance{"up": {upInst}, "auth": {authInst}, "call": {callInst}})
	for _, trusted := range []bool{false, true} {
		t.Run(fmt.Sprintf("trusted peer %v", trusted), func(t *testing.T) {
			var prefixes []netip.Prefix
			if trusted {
				prefixes = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			}
			gw := New(Options{TrustedProxies: prefixes})
			gw.Publish(newTableBuilder(gw.deps).buildAll(parsed.Routes, parsed.Aggregates, insts, nil, nil))
			srv := serve(t, gw)
			var hdr strings.Builder
			for _, k := range append(append([]string{}, rewriteSamples...), clientIPSamples...) {
				fmt.Fprintf(&hdr, "%s: forged\r\n", k)
			}
			hdr.WriteString("X_Real_IP: forged\r\nx_client_ip: forged\r\nX_HTTP_Method_Override: DELETE\r\nX-Keep: kept\r\n")
			for _, path := range []string{"/r", "/agg"} {
				status, body := rawExchange(t, dial(t, srv), "GET "+path+" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"+hdr.String()+"\r\n")
				if status != 200 {
					t.Fatalf("%s: %d %s", path, status, body)
				}
			}
			for name, rec := range map[string]*headerEcho{"upstream": up, "auth service": auth, "aggregate call": call} {
				seen := rec.got()
				if seen == nil {
					t.Fatalf("%s was not called", name)
				}
				for k, vs := range seen {
					kind := spoofKindOf(k)
					if kind == 0 {
						continue
					}
					if kind == spoofRewrite || !trusted {
						t.Errorf("%s got %s: %q", name, k, vs)
					}
				}
				if name == "aggregate call" && seen.Get("X-Keep") != "kept" {
					t.Errorf("aggregate call lost a forward_headers header: %v", seen)
				}
			}
			if trusted {
				// A trusted proxy's client-address headers are its own.
				for _, k := range []string{"X-Client-IP", "True-Client-IP", "CF-Connecting-IP", "X-Forwarded-Server"} {
					if up.got().Get(k) != "forged" {
						t.Errorf("upstream lost %s from a trusted proxy", k)
					}
				}
			}
		})
	}
}

// Kinds of spoofable headers, for spoofKindOf.
const (
	spoofRewrite = 1 + iota
	spoofClient
)

// spoofKindOf classifies a header name the way the tests above expect,
// independently of the gateway's own list: 0 is "not spoofable".
func spoofKindOf(k string) int {
	n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
	for _, s := range rewriteSamples {
		if n == strings.ToLower(s) {
			return spoofRewrite
		}
	}
	for _, s := range clientIPSamples {
		if n == strings.ToLower(s) {
			return spoofClient
		}
	}
	return 0
}
