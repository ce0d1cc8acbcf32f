package gateway

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

func TestForwardedHeadersAreReplacedUnlessThePeerIsTrusted(t *testing.T) {
	_, inst := startUpstream(t, "up", nil)
	tests := []struct {
		name    string
		trusted []netip.Prefix
		xff     string
		want    map[string]string
	}{
		{"untrusted peer: the client's chain is replaced", nil, "6.6.6.6",
			map[string]string{"xff": "127.0.0.1", "xfh": "app.example.com", "xfp": "http"}},
		{"trusted peer: the chain is extended and its host and proto kept", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.9",
			map[string]string{"xff": "203.0.113.9, 127.0.0.1", "xfh": "public.example.com", "xfp": "https"}},
		{"trusted peer without a chain starts one", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "",
			map[string]string{"xff": "127.0.0.1"}},
		{"a trusted list that does not hold the peer changes nothing", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "6.6.6.6",
			map[string]string{"xff": "127.0.0.1", "xfp": "http"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gw := New(Options{TrustedProxies: tc.trusted})
			gw.Publish(newTableBuilder(gw.deps).build([]config.Route{prefixRoute("r", "/", "up")},
				fixed(map[string][]registry.Instance{"up": {inst}}), nil))
			srv := serve(t, gw)
			req, _ := http.NewRequest("GET", srv.URL+"/", nil)
			req.Host = "app.example.com"
			if tc.xff != "" {
				req.Header.Set("X-Forwarded-For", tc.xff)
				req.Header.Set("X-Forwarded-Host", "public.example.com")
				req.Header.Set("X-Forwarded-Proto", "https")
			}
			for _, h := range []string{"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Ssl", "X-Real-Ip"} {
				req.Header.Set(h, "forged")
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			forged := got["forged"] != ""
			if trustedPeer := len(tc.trusted) > 0 && tc.trusted[0].Contains(netip.MustParseAddr("127.0.0.1")); forged != trustedPeer {
				t.Errorf("other forwarding headers reached the upstream: %v, want %v (only from a trusted proxy)", forged, trustedPeer)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("upstream saw %s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// TestAggregateCallsGetTheSameForwardedHeaders: calls follow the proxy's
// rule, replacing a client's chain and extending a trusted proxy's.
func TestAggregateCallsGetTheSameForwardedHeaders(t *testing.T) {
	_, inst := startUpstream(t, "up", nil)
	doc, err := config.Parse("k", []byte(`
aggregate "agg" {
  path = "/agg"
  call "c" {
    service = "up"
    path    = "/x"
  }
}
`), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		trusted []netip.Prefix
		want    string
	}{
		{nil, "127.0.0.1"},
		{[]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "203.0.113.9, 127.0.0.1"},
	} {
		gw := New(Options{TrustedProxies: tc.trusted})
		gw.Publish(newTableBuilder(gw.deps).buildAll(nil, doc.Aggregates, fixed(map[string][]registry.Instance{"up": {inst}}), nil, nil))
		srv := serve(t, gw)
		req, _ := http.NewRequest("GET", srv.URL+"/agg", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ C map[string]string }
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || got.C["xff"] != tc.want {
			t.Errorf("trusted %v: call saw X-Forwarded-For %q (err %v), want %q", tc.trusted, got.C["xff"], err, tc.want)
		}
	}
}

// TestAccessLogShowsTheClientBehindATrustedProxy: behind a trusted load
// balancer the log names the client, not the balancer.
func TestAccessLogShowsTheClientBehindATrustedProxy(t *testing.T) {
	_, inst := startUpstream(t, "up", nil)
	var buf testkit.Buffer
	gw := New(Options{AccessLog: accessLogTo(t, &buf), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{prefixRoute("r", "/", "up")},
		fixed(map[string][]registry.Instance{"up": {inst}}), nil))
	srv := serve(t, gw)
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	line := testkit.WaitValue(t, "the access-log line", func() (string, bool) { s := buf.String(); return s, strings.Contains(s, `"client_ip"`) })
	if !strings.Contains(line, `"client_ip":"203.0.113.9"`) {
		t.Fatalf("access log %q; want the client behind the trusted proxy", line)
	}
}
