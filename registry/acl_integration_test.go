package registry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// tokenClient is testClient for an agent with ACLs, sending token.
func tokenClient(t *testing.T, a *consultest.Agent, token string) *api.Client {
	t.Helper()
	t.Setenv("CONSUL_HTTP_TOKEN", token)
	return testClient(t, a.HTTPAddr)
}

// Consul's ACLs do not answer 403 to a KV list or a health read the token
// may not make: they answer 200 with the hidden entries left out. Both
// watches must see that as a refusal, reported to Status as
// ErrPermissionDenied naming the permission, never as an empty prefix or
// a service without instances.
func TestWatchesReportACLFilteringAsPermissionDenied(t *testing.T) {
	verifyNoLeaks(t)
	agent := consultest.StartWithACL(t, nil)
	admin := tokenClient(t, agent, agent.Token)
	if _, err := admin.KV().Put(&api.KVPair{Key: "gateway/routes/a", Value: []byte("route")}, nil); err != nil {
		t.Fatal(err)
	}
	register(t, admin, &api.AgentServiceRegistration{ID: "web-1", Name: "web", Address: "192.0.2.1", Port: 80})

	cases := []struct {
		name, rules string
		wantKV      bool   // the KV watch gets the document
		wantInsts   bool   // the health watch gets the instance
		wantErr     string // in Status.Err; "" means healthy
	}{
		{"minimal policy", `key_prefix "gateway/" { policy = "read" }
service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }`, true, true, ""},
		{"no service read", `key_prefix "gateway/" { policy = "read" }
node_prefix "" { policy = "read" }`, true, false, `the health of service web`},
		{"no key read", `service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }`, false, true, `KV prefix "gateway/routes/"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := tokenClient(t, agent, agent.CreateToken(t, tc.rules))
			status := &Status{}
			opts := Options{Status: status, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
			kv := NewKV(client, "gateway/routes/", opts, nil)
			runKV(t, kv)
			h := NewHealth(client, opts, nil)
			defer h.Stop()
			web := ServiceKey{Name: "web"}
			h.Ensure(context.Background(), []ServiceKey{web})
			testkit.WaitWithin(t, 10*time.Second, "both watches answered or failed", func() bool {
				_, kvOK := kv.Documents()
				insts, _ := h.Instances(web)
				return (kvOK == tc.wantKV) && (len(insts) > 0) == tc.wantInsts && (status.Err() != nil) == (tc.wantErr != "")
			})
			err := status.Err()
			if tc.wantErr == "" {
				if docs, _ := kv.Documents(); len(docs) != 1 {
					t.Errorf("documents %v, want the one written", docs)
				}
				return
			}
			if !errors.Is(err, ErrPermissionDenied) || errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Status.Err() = %v, want ErrPermissionDenied naming %s (and not unreachable)", err, tc.wantErr)
			}
		})
	}
}
