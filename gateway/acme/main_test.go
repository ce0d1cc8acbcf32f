package acme_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks no test leaves goroutines behind, except certmagic's
// process-wide rate limiter, which it never stops (one per CA and
// account, by design).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/caddyserver/certmagic.(*RingBufferRateLimiter).permitNext"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*RingBufferRateLimiter).loop"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/consul/sdk/freeport.checkFreedPorts"),
	)
}
