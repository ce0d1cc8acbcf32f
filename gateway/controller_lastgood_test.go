package gateway

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/internal/registrytest"
	"github.com/gatewayco/gateway/registry"
)

// fakeStore stands in for registry.State: the tests set what is stored
// and read back what the controller asked for; registry's own tests run
// the check-and-set against a real agent.
type fakeStore struct {
	mu       sync.Mutex
	loaded   bool
	ok       bool
	stored   map[string]registry.StoredVersion
	recorded []registry.StoredVersion
	forgot   []string
}

func (f *fakeStore) Loaded() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.loaded }

func (f *fakeStore) Stored() (map[string]registry.StoredVersion, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stored, f.ok
}

func (f *fakeStore) Record(v registry.StoredVersion) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recorded = append(f.recorded, v)
}

func (f *fakeStore) Forget(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = append(f.forgot, key)
}

// store sets the stored version of key (a new StateIndex each time).
func (f *fakeStore) store(key, src string, index uint64, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stored == nil {
		f.stored = map[string]registry.StoredVersion{}
	}
	f.stored = maps.Clone(f.stored) // a published snapshot never changes
	f.stored[key] = registry.StoredVersion{Key: key, Source: []byte(src), SourceIndex: index, AcceptedAt: at, StateIndex: index*1000 + uint64(len(f.stored))}
	f.loaded, f.ok = true, true
}

const badDoc = "route \"a\" {\n  path_prefix = \n}\n"

var acceptedAt = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// lastGoodController returns a controller using store, its gateway (whose
// clock reads now) and its log.
func lastGoodController(store *fakeStore, now time.Time) (*Controller, *Gateway, *bytes.Buffer) {
	gw := New(Options{Now: func() time.Time { return now }})
	var logs bytes.Buffer
	c := NewController(gw, hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug}))
	c.SetLastGoodStore(store)
	return c, gw, &logs
}

func TestControllerNewReplicaServesStoredLastGood(t *testing.T) {
	store := &fakeStore{}
	store.store("k1", docA, 10, acceptedAt)
	c, gw, _ := lastGoodController(store, acceptedAt.Add(time.Hour))
	docs := &registrytest.Docs{}
	docs.Set("k1", badDoc, 11, 10)
	c.reload(context.Background(), docs, &registrytest.Instances{})

	if got := routeNames(gw.Table()); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("routes = %v, want the stored version's [a]", got)
	}
	errs := gw.Table().Errors()
	if len(errs) != 1 || errs[0].Serving != servingLastGood || errs[0].LastGoodIndex != 10 || !errs[0].LastGoodSince.Equal(acceptedAt) {
		t.Fatalf("errors = %+v, want k1 serving last_good index 10 since %v", errs, acceptedAt)
	}
	if !strings.Contains(errs[0].Message, "k1:2:") {
		t.Errorf("message %q does not name the bad version's position", errs[0].Message)
	}
	if len(store.recorded) != 0 {
		t.Errorf("recorded %+v; the stored version is already the one served", store.recorded)
	}
}

func TestControllerWaitsForTheStoredVersions(t *testing.T) {
	store := &fakeStore{}
	c, gw, _ := lastGoodController(store, acceptedAt)
	docs := &registrytest.Docs{}
	docs.Set("k1", badDoc, 11, 10)
	c.reload(context.Background(), docs, &registrytest.Instances{})
	if gw.Table().Loaded() {
		t.Fatal("table published before the stored versions were read")
	}
	// A failed first read releases the build too (Loaded without ok).
	store.loaded = true
	c.reload(context.Background(), docs, &registrytest.Instances{})
	if !gw.Table().Loaded() || len(gw.Table().Errors()) != 1 || gw.Table().Errors()[0].Serving != servingNothing {
		t.Fatalf("after a failed state read: loaded %v errors %+v; want a table serving nothing for k1", gw.Table().Loaded(), gw.Table().Errors())
	}
}

func TestControllerRecordsAcceptedVersionsOnlyWhenNewer(t *testing.T) {
	store := &fakeStore{loaded: true, ok: true}
	now := acceptedAt
	c, gw, _ := lastGoodController(store, now)
	docs := &registrytest.Docs{}
	docs.Set("k1", docA, 5, 5)
	c.reload(context.Background(), docs, &registrytest.Instances{})
	if len(store.recorded) != 1 {
		t.Fatalf("recorded %+v, want one entry", store.recorded)
	}
	if r := store.recorded[0]; r.Key != "k1" || string(r.Source) != docA || r.SourceIndex != 5 || !r.AcceptedAt.Equal(now) {
		t.Fatalf("recorded %+v, want k1's source at index 5 accepted now", r)
	}
	// Once stored (by anyone), rebuilds do not ask again.
	store.store("k1", docA, 5, now.Add(-time.Minute))
	c.reload(context.Background(), docs, &registrytest.Instances{})
	// A bad write keeps the version and shows the stored acceptance time,
	// the same on every replica, rather than this one's.
	docs.Set("k1", badDoc, 6, 5)
	c.reload(context.Background(), docs, &registrytest.Instances{})
	if len(store.recorded) != 1 {
		t.Fatalf("recorded %d times, want once", len(store.recorded))
	}
	if e := gw.Table().Errors(); len(e) != 1 || !e[0].LastGoodSince.Equal(now.Add(-time.Minute)) {
		t.Fatalf("errors %+v, want last_good_since from the stored entry", e)
	}
}

func TestControllerPrefersTheNewerOfMemoryAndStore(t *testing.T) {
	store := &fakeStore{loaded: true, ok: true}
	c, gw, _ := lastGoodController(store, acceptedAt)
	docs := &registrytest.Docs{}
	docs.Set("k1", docA, 5, 5)
	c.reload(context.Background(), docs, &registrytest.Instances{})
	// Another replica accepted index 6 (docB), which this one missed: its
	// watch went from 5 straight to the bad 7.
	store.store("k1", docB, 6, acceptedAt)
	docs.Set("k1", badDoc, 7, 5)
	c.reload(context.Background(), docs, &registrytest.Instances{})
	if got := routeNames(gw.Table()); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("routes = %v, want the newer stored [b]", got)
	}
}

func TestControllerIgnoresUnusableStoredVersions(t *testing.T) {
	store := &fakeStore{}
	store.store("k1", "garbage {", 10, acceptedAt)
	store.store("k2", docB, 3, acceptedAt) // the key was re-created at 8
	c, gw, logs := lastGoodController(store, acceptedAt)
	docs := &registrytest.Docs{}
	docs.Set("k1", badDoc, 11, 10)
	docs.Set("k2", badDoc, 8, 8)
	for range 2 {
		c.reload(context.Background(), docs, &registrytest.Instances{})
	}
	if got := routeNames(gw.Table()); len(got) != 0 {
		t.Fatalf("routes = %v, want none", got)
	}
	for _, e := range gw.Table().Errors() {
		if e.Serving != servingNothing {
			t.Errorf("%s serves %q, want nothing", e.Key, e.Serving)
		}
	}
	if n := strings.Count(logs.String(), "stored last good version ignored"); n != 1 {
		t.Errorf("logged %d times that k1's stored version is ignored, want once:\n%s", n, logs)
	}
	if !slices.Contains(store.forgot, "k2") {
		t.Errorf("forgot %v; k2's entry belongs to a deleted incarnation", store.forgot)
	}
}

func TestControllerForgetsStoredVersionOfDeletedKey(t *testing.T) {
	store := &fakeStore{}
	store.store("k1", docA, 5, acceptedAt)
	c, _, _ := lastGoodController(store, acceptedAt)
	docs := &registrytest.Docs{}
	docs.Set("k1", docA, 5, 5)
	c.reload(context.Background(), docs, &registrytest.Instances{})
	if len(store.forgot) != 0 {
		t.Fatalf("forgot %v while the key exists", store.forgot)
	}
	docs.Delete("k1")
	c.reload(context.Background(), docs, &registrytest.Instances{})
	if !slices.Equal(store.forgot, []string{"k1"}) {
		t.Fatalf("forgot %v, want [k1]", store.forgot)
	}
}

func TestControllerDropsLastGoodOfARecreatedKey(t *testing.T) {
	c, gw, _ := lastGoodController(&fakeStore{loaded: true, ok: true}, acceptedAt)
	docs := &registrytest.Docs{}
	docs.Set("k1", docA, 5, 5)
	c.reload(context.Background(), docs, &registrytest.Instances{})
	// Deleted and re-created bad between two answers of the watch.
	docs.Set("k1", badDoc, 9, 9)
	c.reload(context.Background(), docs, &registrytest.Instances{})
	if got := routeNames(gw.Table()); len(got) != 0 {
		t.Fatalf("routes = %v; a re-created key must not bring back the removed one's version", got)
	}
}

// A replica that stored the current version (it saw no conflict) must not
// take away this replica's older fallback when the current one conflicts
// here.
func TestControllerStoredCurrentVersionIsNoFallback(t *testing.T) {
	store := &fakeStore{loaded: true, ok: true}
	c, gw, _ := lastGoodController(store, acceptedAt)
	docs := &registrytest.Docs{}
	docs.Set("k1", docA, 5, 5)
	docs.Set("k0", docB, 6, 6)
	c.reload(context.Background(), docs, &registrytest.Instances{})
	// k1 now also defines "b", taken by the older k0: rejected here.
	docs.Set("k1", docA+strings.Replace(docB, "/b", "/b2", 1), 7, 5)
	store.store("k1", docA+strings.Replace(docB, "/b", "/b2", 1), 7, acceptedAt)
	c.reload(context.Background(), docs, &registrytest.Instances{})
	if got := routeNames(gw.Table()); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("routes = %v, want k1 falling back to its version 5 beside k0", got)
	}
	if e := gw.Table().Errors(); len(e) != 1 || e[0].Key != "k1" || e[0].Serving != servingLastGood || e[0].LastGoodIndex != 5 {
		t.Fatalf("errors = %+v, want k1 serving last good 5", e)
	}
}
