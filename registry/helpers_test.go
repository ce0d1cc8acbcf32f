package registry

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// verifyNoLeaks fails the test if goroutines started during it outlive it.
// Call it first so its cleanup runs last, after servers and clients are gone.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	current := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, current,
			// freeport's process-wide port recycler starts on first use.
			goleak.IgnoreAnyFunction("github.com/hashicorp/consul/sdk/freeport.checkFreedPorts"))
	})
}

// startConsul starts a real Consul server for one test, or skips/fails per
// consultest.RequireBinary when the binary is missing.
func startConsul(t *testing.T) *consultest.Agent {
	t.Helper()
	return consultest.Start(t)
}

// testClient returns a client for addr whose idle connections are closed when
// the test ends, so leak checks see no transport goroutines.
func testClient(t *testing.T, addr string) *api.Client {
	t.Helper()
	client, transport, err := newClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(transport.CloseIdleConnections)
	return client
}

// counter is a notify func that counts calls.
type counter struct{ n atomic.Int64 }

func (c *counter) notify()      { c.n.Add(1) }
func (c *counter) count() int64 { return c.n.Load() }

func newTestLogger(out *testkit.Buffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "gw", Level: hclog.Debug, Output: out})
}

// runKV runs kv until the returned stop func (also run at cleanup) cancels
// it; stop fails the test if Run does not return promptly.
func runKV(t *testing.T, kv *KV) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		kv.Run(ctx)
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("KV.Run did not return within 5s of cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}
