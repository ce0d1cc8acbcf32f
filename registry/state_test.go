package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/hashicorp/consul/api"
)

func TestStatePrefix(t *testing.T) {
	tests := []struct {
		routes, flag, want string
	}{
		{"gateway/routes/", "", "gateway/state/lastgood/"},
		{"gateway/routes", "", "gateway/state/lastgood/"},
		{"a/b/routes/", "", "a/b/state/lastgood/"},
		{"routes/", "", "state/lastgood/"},
		{"gateway/routes/", "ops/lastgood", "ops/lastgood/"},
		{"gateway/routes/", "ops/lastgood/", "ops/lastgood/"},
		// The default would sit inside the routes prefix: refused.
		{"gateway/state/", "", ""},
		{"gateway/routes/", "gateway/routes/state/", ""},
		{"gateway/routes/x/", "gateway/routes/", ""},
		{"", "", ""},
	}
	for _, tc := range tests {
		got, err := StatePrefix(tc.routes, tc.flag)
		if tc.want == "" {
			if !errors.Is(err, ErrStatePrefix) {
				t.Errorf("StatePrefix(%q, %q) = %q, %v; want ErrStatePrefix", tc.routes, tc.flag, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("StatePrefix(%q, %q) = %q, %v; want %q", tc.routes, tc.flag, got, err, tc.want)
		}
	}
}

func TestDecodeStoredFlagsUnusableEntries(t *testing.T) {
	good, _ := json.Marshal(storedJSON{SourceIndex: 7, AcceptedAt: time.Unix(100, 0).UTC(), Source: []byte("route \"a\" {}\n\xff")})
	huge := make([]byte, MaxStateValueBytes+1)
	tests := []struct {
		name  string
		value []byte
		ok    bool
	}{
		{"good (bytes kept exactly)", good, true},
		{"not JSON", []byte("route \"a\" {}"), false},
		{"no source index", []byte(`{"source":"eA=="}`), false},
		{"over the size bound", huge, false},
	}
	for _, tc := range tests {
		v := decodeStored("routes/k", &api.KVPair{Key: "state/k", Value: tc.value, ModifyIndex: 3})
		if v.Key != "routes/k" || v.StateIndex != 3 {
			t.Errorf("%s: key %q state index %d", tc.name, v.Key, v.StateIndex)
		}
		if tc.ok != (v.Err == nil) {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, v.Err, tc.ok)
			continue
		}
		if !tc.ok && !errors.Is(v.Err, ErrStateEntry) {
			t.Errorf("%s: err %v does not wrap ErrStateEntry", tc.name, v.Err)
		}
		if tc.ok && (v.SourceIndex != 7 || string(v.Source) != "route \"a\" {}\n\xff" || !v.AcceptedAt.Equal(time.Unix(100, 0))) {
			t.Errorf("%s: decoded %+v", tc.name, v)
		}
	}
}

// newTestState returns a State for routes under "routes/" kept under
// "state/", not running: tests call record and forget directly.
func newTestState(t *testing.T, client *api.Client) *State {
	t.Helper()
	return NewState(client, "routes/", "state/", Options{}, nil)
}

// storedIndex reads the SourceIndex in the state entry of key; 0 if none.
func storedIndex(t *testing.T, client *api.Client, key string) uint64 {
	t.Helper()
	p, _, err := client.KV().Get("state/"+key, &api.QueryOptions{RequireConsistent: true})
	if err != nil {
		t.Fatal(err)
	}
	if p == nil {
		return 0
	}
	v := decodeStored("routes/"+key, p)
	if v.Err != nil {
		t.Fatalf("stored entry: %v", v.Err)
	}
	return v.SourceIndex
}

func version(key string, index uint64) StoredVersion {
	return StoredVersion{Key: "routes/" + key, Source: fmt.Appendf(nil, "version %d", index), SourceIndex: index, AcceptedAt: time.Unix(int64(index), 0)}
}

// TestStateRecordRacingReplicasNewestWins has replicas record versions in
// random order at once: the entry ends at the highest index, and a reader
// following it with blocking queries never sees it go back.
func TestStateRecordRacingReplicasNewestWins(t *testing.T) {
	verifyNoLeaks(t)
	srv := startConsul(t)
	client := testClient(t, srv.HTTPAddr)
	const replicas, versions = 8, 48
	order := rand.Perm(versions)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seen []uint64
	followed := make(chan error, 1)
	go func() {
		var index uint64
		for {
			p, meta, err := client.KV().Get("state/k", (&api.QueryOptions{WaitIndex: index, WaitTime: 2 * time.Second}).WithContext(ctx))
			if ctx.Err() != nil {
				followed <- nil
				return
			}
			if err != nil {
				followed <- err
				return
			}
			index = meta.LastIndex
			if p != nil {
				seen = append(seen, decodeStored("routes/k", p).SourceIndex)
			}
		}
	}()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	start := make(chan struct{})
	var casTries, writes atomic.Int64
	for r := range replicas {
		s := newTestState(t, client)
		s.beforeCAS = func() { casTries.Add(1) }
		wg.Go(func() {
			<-start
			for i := r; i < versions; i += replicas {
				// A record that gives up under contention is asked again,
				// as the controller does on its next rebuild.
				for range 10 {
					wrote, err := s.record(ctx, version("k", uint64(order[i]+1)))
					if wrote {
						writes.Add(1)
					}
					if err == nil {
						break
					}
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	close(start)
	wg.Wait()
	// Contention may make a writer give up (bounded attempts), never
	// fail otherwise.
	for _, err := range errs {
		if !errors.Is(err, ErrStateContention) {
			t.Errorf("record: %v", err)
		}
	}
	if got := storedIndex(t, client, "k"); got != versions {
		t.Fatalf("stored index %d after the race, want the highest, %d", got, versions)
	}
	cancel()
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] {
			t.Fatalf("stored index went back: %v", seen)
		}
	}
	t.Logf("observed %v; %d writes from %d check-and-sets; %d records gave up under contention and were asked again", seen, writes.Load(), casTries.Load(), len(errs))
}

func TestStateRecordRereadsAfterAFailedCAS(t *testing.T) {
	verifyNoLeaks(t)
	srv := startConsul(t)
	client := testClient(t, srv.HTTPAddr)
	ctx := context.Background()
	other := newTestState(t, client)

	s := newTestState(t, client)
	// Another replica stores a newer version between our read and our CAS:
	// the CAS fails, the re-read shows the newer version, we stop.
	calls := 0
	s.beforeCAS = func() {
		calls++
		if calls == 1 {
			if _, err := other.record(ctx, version("k", 9)); err != nil {
				t.Error(err)
			}
		}
	}
	wrote, err := s.record(ctx, version("k", 5))
	if err != nil || wrote {
		t.Fatalf("record = %v, %v; want false, nil after losing to index 9", wrote, err)
	}
	if got := storedIndex(t, client, "k"); got != 9 || calls != 1 {
		t.Fatalf("stored %d after %d CAS attempts; want 9 after one", got, calls)
	}

	// An entry that changes under every attempt (always older than ours):
	// the writer gives up after maxCASAttempts instead of looping.
	calls = 0
	s.beforeCAS = func() {
		calls++
		older := version("j", 1)
		older.AcceptedAt = older.AcceptedAt.Add(time.Duration(calls) * time.Second) // Consul skips writes that change nothing
		if _, err := client.KV().Put(&api.KVPair{Key: "state/j", Value: mustJSON(t, older)}, nil); err != nil {
			t.Error(err)
		}
	}
	if _, err := client.KV().Put(&api.KVPair{Key: "state/j", Value: mustJSON(t, version("j", 1))}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.record(ctx, version("j", 5)); !errors.Is(err, ErrStateContention) || calls != maxCASAttempts {
		t.Fatalf("record under constant contention: %v after %d attempts; want ErrStateContention after %d", err, calls, maxCASAttempts)
	}
}

func mustJSON(t *testing.T, v StoredVersion) []byte {
	t.Helper()
	b, err := json.Marshal(storedJSON{SourceIndex: v.SourceIndex, AcceptedAt: v.AcceptedAt, Source: v.Source})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStateForgetDeletesTheEntryWithItsKey: the entry goes when its routes
// key goes, or when the key was re-created after the stored version; it
// stays while the key lives, even if a forget races a record.
func TestStateForgetDeletesTheEntryWithItsKey(t *testing.T) {
	verifyNoLeaks(t)
	srv := startConsul(t)
	client := testClient(t, srv.HTTPAddr)
	ctx := context.Background()
	s := newTestState(t, client)
	putKey := func() uint64 {
		t.Helper()
		if _, err := client.KV().Put(&api.KVPair{Key: "routes/k", Value: []byte("doc")}, nil); err != nil {
			t.Fatal(err)
		}
		p, _, err := client.KV().Get("routes/k", nil)
		if err != nil || p == nil {
			t.Fatal(err)
		}
		return p.ModifyIndex
	}
	index := putKey()
	if _, err := s.record(ctx, version("k", index)); err != nil {
		t.Fatal(err)
	}
	if deleted, err := s.forget(ctx, "routes/k"); err != nil || deleted || storedIndex(t, client, "k") != index {
		t.Fatalf("forget while the key exists: deleted=%v err=%v; the entry must stay", deleted, err)
	}

	if _, err := client.KV().Delete("routes/k", nil); err != nil {
		t.Fatal(err)
	}
	if deleted, err := s.forget(ctx, "routes/k"); err != nil || !deleted || storedIndex(t, client, "k") != 0 {
		t.Fatalf("forget after the key was deleted: deleted=%v err=%v; want the entry gone", deleted, err)
	}

	// A lagging replica stores the removed key's version after the key
	// came back: that entry belongs to the old key and goes.
	newIndex := putKey()
	if _, err := s.record(ctx, version("k", index)); err != nil {
		t.Fatal(err)
	}
	if deleted, err := s.forget(ctx, "routes/k"); err != nil || !deleted {
		t.Fatalf("forget of a version older than the re-created key: deleted=%v err=%v; want deleted", deleted, err)
	}

	// A replica records the new key's version between our read and our
	// delete: the CAS delete fails, the re-read keeps the live entry.
	if _, err := s.record(ctx, version("k", index)); err != nil {
		t.Fatal(err)
	}
	other := newTestState(t, client)
	s.beforeCAS = func() {
		s.beforeCAS = nil
		if _, err := other.record(ctx, version("k", newIndex)); err != nil {
			t.Error(err)
		}
	}
	if deleted, err := s.forget(ctx, "routes/k"); err != nil || deleted || storedIndex(t, client, "k") != newIndex {
		t.Fatalf("forget racing a record of the live key: deleted=%v err=%v stored=%d; want the live entry kept", deleted, err, storedIndex(t, client, "k"))
	}
}

// TestStateRunLoadsRecordsAndForgets runs a State as the gateway does:
// existing entries load (bad ones flagged), and Record and Forget reach
// Consul from the writer goroutine.
func TestStateRunLoadsRecordsAndForgets(t *testing.T) {
	verifyNoLeaks(t)
	srv := startConsul(t)
	client := testClient(t, srv.HTTPAddr)
	if _, err := client.KV().Put(&api.KVPair{Key: "state/team/a.hcl", Value: mustJSON(t, version("team/a.hcl", 4))}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.KV().Put(&api.KVPair{Key: "state/junk", Value: []byte("{")}, nil); err != nil {
		t.Fatal(err)
	}
	var notes counter
	s := NewState(client, "routes/", "state/", Options{}, notes.notify)
	if s.Loaded() {
		t.Fatal("loaded before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("State.Run did not return within 5s of cancel")
		}
	}()

	testkit.WaitWithin(t, 5*time.Second, "the first read", func() bool { _, ok := s.Stored(); return ok && s.Loaded() })
	got, _ := s.Stored()
	if a := got["routes/team/a.hcl"]; a.Err != nil || a.SourceIndex != 4 || string(a.Source) != "version 4" {
		t.Errorf("routes/team/a.hcl = %+v", a)
	}
	if j := got["routes/junk"]; !errors.Is(j.Err, ErrStateEntry) {
		t.Errorf("routes/junk = %+v, want ErrStateEntry", j)
	}
	if notes.count() == 0 {
		t.Error("no notice after the first read")
	}

	if _, err := client.KV().Put(&api.KVPair{Key: "routes/b.hcl", Value: []byte("doc")}, nil); err != nil {
		t.Fatal(err)
	}
	s.Record(version("b.hcl", 100))
	s.Forget("routes/team/a.hcl") // its routes key does not exist
	testkit.WaitWithin(t, 10*time.Second, "b.hcl recorded and team/a.hcl forgotten", func() bool {
		got, _ := s.Stored()
		_, a := got["routes/team/a.hcl"]
		return got["routes/b.hcl"].SourceIndex == 100 && !a
	})
}

// TestStateDoesNotRetryWhatConsulRefuses: an entry over Consul's value
// limit (512 KiB by default) is refused with 413; the same version is not
// sent again however often the controller asks, a newer one is.
func TestStateDoesNotRetryWhatConsulRefuses(t *testing.T) {
	verifyNoLeaks(t)
	srv := startConsul(t)
	client := testClient(t, srv.HTTPAddr)
	var logs testkit.Buffer
	s := NewState(client, "routes/", "state/", Options{Logger: newTestLogger(&logs)}, nil)
	var tries atomic.Int64
	s.beforeCAS = func() { tries.Add(1) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	big := version("big", 5)
	big.Source = make([]byte, 600<<10)
	s.Record(big)
	testkit.WaitWithin(t, 10*time.Second, "the refusal logged", func() bool { return strings.Contains(logs.String(), "consul refused") })
	if n := tries.Load(); n != 1 {
		t.Fatalf("%d attempts; a 4xx must not be retried", n)
	}
	s.Record(big)
	s.mu.Lock()
	_, queued := s.pending["routes/big"]
	s.mu.Unlock()
	if queued {
		t.Fatal("the refused version was queued again")
	}
	s.Record(version("big", 6))
	testkit.WaitWithin(t, 10*time.Second, "the newer version stored", func() bool { return storedIndex(t, client, "big") == 6 })
}
