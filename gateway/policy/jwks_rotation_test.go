package policy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/hashicorp/go-hclog"
)

// TestJWKSAcceptsAJustPublishedKeyWithinTenSeconds measures, on the
// injected clock, how long a token signed with a newly published key is
// refused in the worst case: the issuer publishes right after the gateway
// fetched the set, and clients present the new kid every 100 ms.
func TestJWKSAcceptsAJustPublishedKeyWithinTenSeconds(t *testing.T) {
	k := testKeys()
	clk := testkit.NewClock()
	srv := startJWKS(t, jwkOf("old", &k.rsa.PublicKey))
	set := NewJWKS(srv.URL, JWKSOptions{Now: clk.Now})
	ctx := context.Background()
	if _, err := set.Key(ctx, "old", "RS256"); err != nil {
		t.Fatalf("first fetch: %v", err)
	}
	srv.set(false, jwkOf("old", &k.rsa.PublicKey), jwkOf("new", &k.rsa2.PublicKey))
	published := clk.Now()
	var delay time.Duration
	for {
		_, err := set.Key(ctx, "new", "RS256")
		if err == nil {
			delay = clk.Now().Sub(published)
			break
		}
		if !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("new kid: %v", err)
		}
		if clk.Now().Sub(published) > 2*time.Minute {
			t.Fatal("the new key was never accepted")
		}
		clk.Advance(100 * time.Millisecond)
	}
	t.Logf("key published right after a fetch: accepted after %v (simulated), %d fetches", delay, srv.fetches.Load())
	if delay > 10*time.Second {
		t.Fatalf("a just-published key was refused for %v, want at most 10s", delay)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2: the first, and one refresh when it was due", n)
	}

	// Published long after the last fetch: accepted on first sight.
	clk.Advance(time.Minute)
	srv.set(false, jwkOf("newer", &k.ec.PublicKey))
	if _, err := set.Key(ctx, "newer", "ES256"); err != nil {
		t.Fatalf("a key published a minute after the last fetch is not accepted at once: %v", err)
	}
}

// TestJWKSFloodOfUnknownKidsCostsAFewFetchesAMinute sends 10,000 tokens
// with random kids over one simulated minute and counts the fetches; while
// a fetch hangs, requests with a known kid are answered without waiting.
func TestJWKSFloodOfUnknownKidsCostsAFewFetchesAMinute(t *testing.T) {
	k := testKeys()
	clk := testkit.NewClock()
	srv := startJWKS(t, jwkOf("good", &k.rsa.PublicKey))
	set := NewJWKS(srv.URL, JWKSOptions{Now: clk.Now})
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(1, 2))
	const tokens = 10_000
	step := time.Minute / tokens
	for range tokens {
		kid := fmt.Sprintf("forged-%016x", rnd.Uint64())
		if _, err := set.Key(ctx, kid, "RS256"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("random kid %s: %v, want ErrUnknownKey", kid, err)
		}
		clk.Advance(step)
	}
	fetches := srv.fetches.Load()
	t.Logf("%d tokens with random kids over %v (simulated): %d fetches", tokens, time.Duration(tokens)*step, fetches)
	if fetches > 7 {
		t.Fatalf("%d fetches in a minute, want at most 7 (one per 10s)", fetches)
	}

	// A fetch that hangs holds only the requests that need it.
	release := make(chan struct{})
	hanging := &hangingJWKS{srv: srv, release: release}
	slow := NewJWKS(srv.URL, JWKSOptions{Now: clk.Now, Client: &http.Client{Transport: hanging}})
	if _, err := slow.Key(ctx, "good", "RS256"); err != nil {
		t.Fatalf("first fetch: %v", err)
	}
	clk.Advance(time.Minute)
	hanging.hang()
	var wg sync.WaitGroup
	for range 100 {
		kid := fmt.Sprintf("forged-%d", rnd.Uint64())
		wg.Go(func() { _, _ = slow.Key(ctx, kid, "RS256") })
	}
	hanging.waitStarted()
	for range 100 {
		if _, err := slow.Key(ctx, "good", "RS256"); err != nil {
			t.Fatalf("known kid while a refresh hangs: %v", err)
		}
	}
	close(release)
	wg.Wait()
}

// hangingJWKS forwards to srv, except that once hang is called the next
// fetch blocks until release is closed.
type hangingJWKS struct {
	srv     *jwksServer
	release chan struct{}
	mu      sync.Mutex
	hung    bool
	started chan struct{}
}

func (h *hangingJWKS) hang() {
	h.mu.Lock()
	h.hung, h.started = true, make(chan struct{})
	h.mu.Unlock()
}

func (h *hangingJWKS) waitStarted() {
	h.mu.Lock()
	ch := h.started
	h.mu.Unlock()
	<-ch
}

func (h *hangingJWKS) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	hung := h.hung
	h.hung = false
	h.mu.Unlock()
	if hung {
		close(h.started)
		<-h.release
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestJWKSNeverLogsTheURLsPassword: a jwks_url may carry userinfo; the
// password is sent to the issuer but never written to the log, nor into
// errors that reach it.
func TestJWKSNeverLogsTheURLsPassword(t *testing.T) {
	srv := startJWKS(t)
	srv.set(true)
	var log strings.Builder
	logger := hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Trace})
	url := strings.Replace(srv.URL, "http://", "http://user:s3cr3t@", 1)
	set := NewJWKS(url, JWKSOptions{Logger: logger})
	if _, err := set.Key(context.Background(), "k", "RS256"); err == nil {
		t.Fatal("key from a failing JWKS")
	}
	if !strings.Contains(log.String(), "JWKS refresh failed") {
		t.Fatalf("the failure is not logged:\n%s", log.String())
	}
	if strings.Contains(log.String(), "s3cr3t") {
		t.Fatalf("the password is logged:\n%s", log.String())
	}
}
