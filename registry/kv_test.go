package registry

import (
	"slices"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/hashicorp/consul/api"
)

// docKeys returns the keys of the current snapshot, or nil before the first.
func docKeys(kv *KV) []string {
	docs, ok := kv.Documents()
	if !ok {
		return nil
	}
	keys := []string{}
	for _, d := range docs {
		keys = append(keys, d.Key)
	}
	return keys
}

func TestKVWatchSeesPutAndDelete(t *testing.T) {
	verifyNoLeaks(t)
	srv := startConsul(t)
	client := testClient(t, srv.HTTPAddr)
	put := func(key, value string) {
		t.Helper()
		if _, err := client.KV().Put(&api.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var notes counter
	kv := NewKV(client, "routes/", Options{}, notes.notify)
	stop := runKV(t, kv)

	testkit.WaitWithin(t, 5*time.Second, "the first (empty) snapshot", func() bool { return docKeys(kv) != nil })
	if keys := docKeys(kv); len(keys) != 0 {
		t.Fatalf("initial keys = %q, want none", keys)
	}

	// Written first, so by the time routes/a shows up these were seen too.
	put("other/x", "outside")
	put("routesX", "outside, despite the shared string prefix")
	put("routes/folder/", "") // UI folder marker, not a document
	put("routes/b", "B")
	put("routes/a", "A")
	want := []string{"routes/a", "routes/b"}
	testkit.WaitWithin(t, 5*time.Second, "routes/a and routes/b", func() bool { return slices.Equal(docKeys(kv), want) })
	docs, _ := kv.Documents()
	if string(docs[0].Value) != "A" || docs[0].ModifyIndex == 0 {
		t.Errorf("routes/a = %+v", docs[0])
	}

	if _, err := client.KV().Delete("routes/a", nil); err != nil {
		t.Fatal(err)
	}
	testkit.WaitWithin(t, 5*time.Second, "routes/a to be gone", func() bool { return slices.Equal(docKeys(kv), []string{"routes/b"}) })

	// Writes outside the prefix may wake the query (shared index) but must
	// not be reported as changes.
	before := notes.count()
	put("other/y", "outside")
	put("routes/c", "C")
	testkit.WaitWithin(t, 5*time.Second, "routes/c", func() bool { return len(docKeys(kv)) == 2 })
	if got := notes.count() - before; got != 1 {
		t.Errorf("notify called %d times for one change under the prefix", got)
	}
	stop()
}
