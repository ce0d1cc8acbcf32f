package registry

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/consultest"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/hashicorp/consul/api"
)

// startStoreConsul starts an agent whose sessions may be as short as one
// second, so a dead holder's lock frees within seconds.
func startStoreConsul(t *testing.T) *api.Client {
	t.Helper()
	agent := consultest.StartWithConfig(t, map[string]any{"session_ttl_min": "1s"})
	return testClient(t, agent.HTTPAddr)
}

func closeStore(t *testing.T, s *Store) {
	t.Helper()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
}

func TestStoreValuesListStat(t *testing.T) {
	verifyNoLeaks(t)
	client := startStoreConsul(t)
	now := time.Unix(1_700_000_000, 42)
	s := NewStore(client, "acme/", StoreOptions{MaxValueBytes: 64, MaxListKeys: 3, Now: func() time.Time { return now }})
	closeStore(t, s)
	ctx := context.Background()

	if _, err := s.Load(ctx, "certs/a.crt"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v, want os.ErrNotExist", err)
	}
	for _, k := range []string{"certs/a/a.crt", "certs/a/a.key", "certs/b/b.crt", "certsx"} {
		if err := s.Store(ctx, k, []byte("v:"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Load(ctx, "/certs/a/a.crt"); err != nil || string(got) != "v:certs/a/a.crt" {
		t.Fatalf("Load = %q, %v", got, err)
	}
	info, err := s.Stat(ctx, "certs/a/a.key")
	if err != nil || !info.Terminal || info.Size != int64(len("v:certs/a/a.key")) || !info.Modified.Equal(now) {
		t.Errorf("Stat(value) = %+v, %v", info, err)
	}
	if info, err := s.Stat(ctx, "certs/a"); err != nil || info.Terminal || info.Key != "certs/a" {
		t.Errorf("Stat(folder) = %+v, %v", info, err)
	}
	if _, err := s.Stat(ctx, "certs/c"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat(missing) err = %v", err)
	}

	if got, err := s.List(ctx, "certs", false); err != nil || !slices.Equal(got, []string{"certs/a", "certs/b"}) {
		t.Errorf("List(certs) = %q, %v; want the two folders, not certsx", got, err)
	}
	if got, err := s.List(ctx, "certs/", true); err != nil || !slices.Equal(got, []string{"certs/a/a.crt", "certs/a/a.key", "certs/b/b.crt"}) {
		t.Errorf("List(certs, recursive) = %q, %v", got, err)
	}
	if _, err := s.List(ctx, "", true); !errors.Is(err, ErrTooMany) {
		t.Errorf("List of 4 keys with MaxListKeys 3: %v, want ErrTooMany", err)
	}
	if _, err := s.List(ctx, "nothing", false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("List(missing) err = %v", err)
	}

	if err := s.Store(ctx, "big", []byte(strings.Repeat("x", 65))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Store over MaxValueBytes: %v", err)
	}
	// A value written by someone else past the bound is refused on read.
	if _, err := client.KV().Put(&api.KVPair{Key: "acme/data/hostile", Value: []byte(strings.Repeat("x", 65))}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "hostile"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Load over MaxValueBytes: %v", err)
	}

	if err := s.Delete(ctx, "certs/a"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.List(ctx, "certs", true); err != nil || !slices.Equal(got, []string{"certs/b/b.crt"}) {
		t.Errorf("after Delete(folder) List = %q, %v", got, err)
	}
	if err := s.Delete(ctx, "certs/a"); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
	if _, err := s.Load(ctx, "certsx"); err != nil {
		t.Errorf("Delete(certs/a) took a sibling: %v", err)
	}
}

func TestStoreLocksExcludeEachOther(t *testing.T) {
	verifyNoLeaks(t)
	client := startStoreConsul(t)
	opts := StoreOptions{SessionTTL: time.Second, LockDelay: 100 * time.Millisecond, LockPoll: time.Second}
	a, b := NewStore(client, "acme/", opts), NewStore(client, "acme/", opts)
	closeStore(t, a)
	closeStore(t, b)
	ctx := context.Background()

	if err := a.Lock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "issue_cert_x") }()
	// Held well past the session TTL: renewal keeps it, so b must still
	// be waiting (its lock attempt cannot be observed directly; a timeout
	// here is the claim).
	select {
	case err := <-got:
		t.Fatalf("second locker got the lock while the first held it: %v", err)
	case <-time.After(3 * opts.SessionTTL):
	}
	if err := a.Unlock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	if err := testkit.WaitValue(t, "second locker gets the lock", func() (error, bool) {
		select {
		case err := <-got:
			return err, true
		default:
			return nil, false
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(ctx, "issue_cert_x"); !errors.Is(err, ErrNotLocked) {
		t.Errorf("Unlock of a lock not held: %v", err)
	}
	// Another name is independent.
	if err := a.Lock(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	// Unlocked cleanly, the key is gone from Consul.
	testkit.WaitWithin(t, 5*time.Second, "released lock key deleted", func() bool {
		p, _, err := client.KV().Get("acme/locks/issue_cert_x", nil)
		return err == nil && p == nil
	})
}

func TestStoreDeadHoldersLockExpires(t *testing.T) {
	verifyNoLeaks(t)
	client := startStoreConsul(t)
	opts := StoreOptions{SessionTTL: time.Second, LockDelay: 100 * time.Millisecond, LockPoll: 500 * time.Millisecond}
	dead, live := NewStore(client, "acme/", opts), NewStore(client, "acme/", opts)
	closeStore(t, live)
	ctx := context.Background()
	if err := dead.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	// The holder dies: its renewal stops and nothing releases the lock.
	dead.mu.Lock()
	h := dead.held["n"]
	dead.mu.Unlock()
	h.stop()
	<-h.done

	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	start := time.Now()
	if err := live.Lock(lctx, "n"); err != nil {
		t.Fatalf("lock of a dead holder never freed: %v", err)
	}
	t.Logf("lock of a dead holder (TTL %v) taken over after %v", opts.SessionTTL, time.Since(start).Round(10*time.Millisecond))
	if s, _, err := client.Session().Info(h.session, nil); err != nil || s != nil {
		t.Errorf("dead holder's session still there: %+v, %v", s, err)
	}
}

func TestStoreCloseReleasesLocks(t *testing.T) {
	verifyNoLeaks(t)
	client := startStoreConsul(t)
	opts := StoreOptions{SessionTTL: 10 * time.Second, LockDelay: 10 * time.Second}
	a, b := NewStore(client, "acme/", opts), NewStore(client, "acme/", opts)
	closeStore(t, b)
	ctx := context.Background()
	if err := a.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Lock(ctx, "m"); !errors.Is(err, ErrStoreClosed) {
		t.Errorf("Lock after Close: %v", err)
	}
	// Released, not expired: no lock delay, so well within the 10s TTL.
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.Lock(lctx, "n"); err != nil {
		t.Fatalf("lock not released by Close: %v", err)
	}
}
