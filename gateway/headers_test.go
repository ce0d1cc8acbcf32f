package gateway

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// TestHopByHopHeadersNeverCrossTheGateway checks both directions: what a
// client marks as connection-scoped does not reach the upstream, and an
// upstream cannot push connection-scoped headers to the client.
func TestHopByHopHeadersNeverCrossTheGateway(t *testing.T) {
	hop := []string{"Keep-Alive", "Proxy-Authorization", "Proxy-Authenticate", "Te", "Trailer", "Upgrade", "X-Listed-In-Connection"}
	_, inst := startUpstream(t, "up", func(w http.ResponseWriter, r *http.Request) {
		seen := map[string]string{}
		for _, h := range hop {
			seen[h] = r.Header.Get(h)
		}
		h := w.Header()
		h.Set("Connection", "X-Listed-In-Connection")
		h.Set("X-Listed-In-Connection", "leak")
		h.Set("Keep-Alive", "timeout=600")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("Upgrade", "h2c")
		h.Set("X-Normal", "kept")
		_ = json.NewEncoder(w).Encode(seen)
	})
	gw := New(Options{})
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{prefixRoute("r", "/", "up")},
		fixed(map[string][]registry.Instance{"up": {inst}}), nil))
	srv := serve(t, gw)

	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	for _, h := range hop {
		req.Header.Set(h, "client-value")
	}
	req.Header.Set("Connection", "X-Listed-In-Connection")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var seen map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
		t.Fatal(err)
	}
	for _, h := range hop {
		if seen[h] != "" {
			t.Errorf("upstream received hop-by-hop request header %s: %q", h, seen[h])
		}
	}
	for _, h := range []string{"X-Listed-In-Connection", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("client received hop-by-hop response header %s: %q", h, v)
		}
	}
	if resp.Header.Get("X-Normal") != "kept" {
		t.Error("an end-to-end response header was dropped")
	}
}
