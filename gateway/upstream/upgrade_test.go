package upstream

import (
	"net/http"
	"testing"
)

// TestUpgradeTypeAllocatesNothing: every proxied request's headers are
// read for an upgrade, most with a Connection header.
func TestUpgradeTypeAllocatesNothing(t *testing.T) {
	for _, tc := range []struct {
		conn, up, want string
	}{
		{"keep-alive", "", ""},
		{"keep-alive, Upgrade", "websocket", "websocket"},
		{"close", "websocket", ""},
	} {
		h := http.Header{"Connection": {tc.conn}}
		if tc.up != "" {
			h.Set("Upgrade", tc.up)
		}
		if got := upgradeType(h); got != tc.want {
			t.Errorf("upgradeType(Connection %q, Upgrade %q) = %q, want %q", tc.conn, tc.up, got, tc.want)
		}
		if n := testing.AllocsPerRun(100, func() { _ = upgradeType(h) }); n != 0 {
			t.Errorf("Connection %q: %v allocations, want 0", tc.conn, n)
		}
	}
}
