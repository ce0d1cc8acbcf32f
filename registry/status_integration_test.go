package registry

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/hashicorp/consul/api"
)

func TestStatusDegradedWhenConsulStopsAndRecovers(t *testing.T) {
	verifyNoLeaks(t)
	agent := consultest.Start(t)
	client := testClient(t, agent.HTTPAddr)
	put := func(key string) {
		t.Helper()
		if _, err := client.KV().Put(&api.KVPair{Key: key, Value: []byte("x")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	put("routes/a")
	register(t, client, &api.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 80})

	status := &Status{}
	// Short backoff so recovery is noticed quickly after the restart.
	opts := Options{Status: status, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	kv := NewKV(client, "routes/", opts, nil)
	runKV(t, kv)
	h := NewHealth(client, opts, nil)
	defer h.Stop()
	web := ServiceKey{Name: "web"}
	h.Ensure(context.Background(), []ServiceKey{web})
	testkit.WaitWithin(t, 10*time.Second, "both watches healthy", func() bool {
		return status.Err() == nil && slices.Equal(docKeys(kv), []string{"routes/a"}) &&
			slices.Equal(instanceIDs(h, web), []string{"web-1"})
	})
	healthyAt := status.LastSuccess()
	if healthyAt.IsZero() {
		t.Fatal("LastSuccess is zero after answers")
	}

	agent.Stop(t)
	testkit.WaitWithin(t, 10*time.Second, "degraded status", func() bool { return status.Err() != nil })
	if err := status.Err(); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Err() = %v, want ErrUnreachable", err)
	}
	t.Logf("while stopped: %v", status.Err())
	// The last snapshots survive the outage.
	if keys := docKeys(kv); !slices.Equal(keys, []string{"routes/a"}) {
		t.Errorf("documents during outage = %q", keys)
	}
	if ids := instanceIDs(h, web); !slices.Equal(ids, []string{"web-1"}) {
		t.Errorf("instances during outage = %q", ids)
	}

	agent.Restart(t)
	testkit.WaitWithin(t, 15*time.Second, "recovered status", func() bool { return status.Err() == nil })
	if !status.LastSuccess().After(healthyAt) {
		t.Errorf("LastSuccess did not advance: %v", status.LastSuccess())
	}
	put("routes/b") // the watch is live again, not just answering stale data
	testkit.WaitWithin(t, 10*time.Second, "a write after the restart", func() bool {
		return slices.Equal(docKeys(kv), []string{"routes/a", "routes/b"})
	})
}
