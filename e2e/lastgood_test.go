package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/hashicorp/consul/api"
)

// lastGoodView is what the replicas must agree on: the routes /routes
// lists, its errors with what each rejected key serves, and the answer to
// one request.
type lastGoodView struct {
	Routes []struct {
		Name       string `json:"name"`
		SourceKey  string `json:"source_key"`
		PathPrefix string `json:"path_prefix"`
		Service    string `json:"service"`
	} `json:"routes"`
	Errors []struct {
		Key           string `json:"key"`
		Message       string `json:"message"`
		Serving       string `json:"serving"`
		LastGoodIndex uint64 `json:"last_good_index"`
		LastGoodSince string `json:"last_good_since"`
	} `json:"errors"`
	Status int
	Answer string
}

// viewOf reads a gateway process's /routes and sends it one request; ok is
// false while it cannot answer.
func viewOf(p *gatewayProc, path string) (v lastGoodView, ok bool) {
	resp, err := http.Get("http://" + p.admin + "/routes")
	if err != nil {
		return v, false
	}
	defer resp.Body.Close()
	if json.NewDecoder(resp.Body).Decode(&v) != nil {
		return v, false
	}
	r, err := http.Get(p.url(path))
	if err != nil {
		return v, false
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	v.Status, v.Answer = r.StatusCode, string(b)
	return v, true
}

// TestReplicasAgreeOnLastGoodVersion runs the real binary three times on
// one Consul: two replicas see a good document and then a bad write to the
// same key; a third started afterwards must serve exactly what they serve,
// which it can only learn from Consul. Deleting the key must then remove
// the stored version, so a re-created bad key serves nothing anywhere.
func TestReplicasAgreeOnLastGoodVersion(t *testing.T) {
	t.Parallel()
	client, consulAddr := startConsul(t)
	startBackend(t, client, "users", "users-1")
	putRoute(t, client, "users.hcl", routeDoc("users", "/api/users", "users"))
	pair, _, err := client.KV().Get(routesPrefix+"users.hcl", nil)
	if err != nil || pair == nil {
		t.Fatalf("read back the good version: %v", err)
	}
	goodIndex := pair.ModifyIndex

	first := startGateway(t, consulAddr)
	second := startGateway(t, consulAddr)
	for _, g := range []*gatewayProc{first, second} {
		testkit.WaitFor(t, "the good version served", func() bool {
			v, ok := viewOf(g, "/api/users/1")
			return ok && len(v.Routes) == 1 && v.Status == 200
		})
	}

	const bad = "route \"users\" {\n  path_prefix = \n}\n"
	putRoute(t, client, "users.hcl", bad)
	var want lastGoodView
	testkit.WaitFor(t, "both replicas report the bad write and keep the old version, alike", func() bool {
		a, ok1 := viewOf(first, "/api/users/1")
		b, ok2 := viewOf(second, "/api/users/1")
		if !ok1 || !ok2 || len(a.Errors) != 1 || !reflect.DeepEqual(a, b) {
			return false
		}
		want = a
		return true
	})
	if len(want.Routes) != 1 || want.Routes[0].Name != "users" || want.Status != 200 {
		t.Fatalf("replicas serve %+v; want the good version's route answering 200", want)
	}
	if e := want.Errors[0]; e.Key != "gateway/routes/users.hcl" || e.Serving != "last_good" || e.LastGoodIndex != goodIndex || e.LastGoodSince == "" {
		t.Errorf("error entry %+v; want the key, serving last_good, last_good_index %d and a last_good_since", e, goodIndex)
	}

	third := startGateway(t, consulAddr)
	var got lastGoodView
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("first two serve %+v\nthe third serves %+v", want, got)
		}
	})
	took := testkit.WaitFor(t, "the third replica serves what the first two serve", func() bool {
		var ok bool
		got, ok = viewOf(third, "/api/users/1")
		return ok && reflect.DeepEqual(got, want)
	})
	t.Logf("third replica agreed %v after its /health first answered 200; all three: %+v", took.Round(time.Millisecond), got)

	// The version they agree on is the one kept in Consul.
	p, _, err := client.KV().Get("gateway/state/lastgood/users.hcl", nil)
	if err != nil || p == nil {
		t.Fatalf("no stored last good version (err %v)", err)
	}
	var stored struct {
		SourceIndex uint64 `json:"source_index"`
		Source      []byte `json:"source"`
	}
	if err := json.Unmarshal(p.Value, &stored); err != nil || stored.SourceIndex != goodIndex || string(stored.Source) != routeDoc("users", "/api/users", "users") {
		t.Fatalf("stored entry %s (err %v); want the good version at index %d", p.Value, err, goodIndex)
	}

	// Deleting the key forgets its stored version ...
	if _, err := client.KV().Delete("gateway/routes/users.hcl", nil); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the stored last good version deleted with the key", func() bool {
		p, _, err := client.KV().Get("gateway/state/lastgood/users.hcl", nil)
		return err == nil && p == nil
	})
	// ... so a bad document under the same key brings nothing back.
	if _, err := client.KV().Put(&api.KVPair{Key: "gateway/routes/users.hcl", Value: []byte(bad)}, nil); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*gatewayProc{first, second, third} {
		testkit.WaitFor(t, "the re-created bad key serves nothing", func() bool {
			v, ok := viewOf(g, "/api/users/1")
			return ok && len(v.Routes) == 0 && len(v.Errors) == 1 && v.Errors[0].Serving == "nothing" && v.Status == 404
		})
	}
}
