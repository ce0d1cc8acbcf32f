// Package testkit holds the helpers every test package shares: waiting on
// a condition, a clock tests move by hand, signing tokens, and a log
// buffer safe to share with servers. Keeping one
// copy means one polling interval, one timeout rule and one token format
// across unit and end-to-end tests.
package testkit

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Timeout bounds every wait: generous for a loaded 2-core CI machine, yet
// a condition that never comes fails the test instead of hanging it.
const Timeout = 15 * time.Second

// pollEvery is the resolution of the delays tests report.
const pollEvery = time.Millisecond

// WaitFor polls cond until it holds and returns how long that took,
// failing the test after Timeout. Tests wait on conditions, never on
// fixed sleeps.
func WaitFor(tb testing.TB, what string, cond func() bool) time.Duration {
	tb.Helper()
	return WaitWithin(tb, Timeout, what, cond)
}

// WaitWithin is WaitFor with its own bound, for conditions that must come
// sooner than Timeout (or may take longer).
func WaitWithin(tb testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			tb.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(pollEvery)
	}
	return time.Since(start)
}

// WaitValue polls cond until it reports ok and returns the value it
// reported then; on timeout the failure shows the last value seen.
func WaitValue[T any](tb testing.TB, what string, cond func() (T, bool)) T {
	tb.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		v, ok := cond()
		if ok {
			return v
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for: %s; last value: %v", Timeout, what, v)
		}
		time.Sleep(pollEvery)
	}
}

// Clock is a clock that moves only when told to, for limiters, budgets,
// breakers, token expiry and timers (AfterFunc). It is safe for
// concurrent use.
type Clock struct {
	mu     sync.Mutex
	t      time.Time
	timers []*clockTimer
}

type clockTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

// NewClock returns a clock at a fixed instant, so tests are reproducible.
func NewClock() *Clock { return &Clock{t: time.Unix(1_700_000_000, 0)} }

// Now returns the clock's time; pass the method value as a now func.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d and runs, in order, the AfterFunc
// functions that came due (each on its own goroutine, as time.AfterFunc
// does).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	var due []*clockTimer
	kept := c.timers[:0]
	for _, tm := range c.timers {
		switch {
		case tm.stopped:
		case !tm.at.After(c.t):
			tm.stopped = true
			due = append(due, tm)
		default:
			kept = append(kept, tm)
		}
	}
	c.timers = kept
	c.mu.Unlock()
	for _, tm := range due {
		go tm.f()
	}
}

// AfterFunc runs f once the clock has been advanced by d, and returns a
// function that stops it, reporting whether that prevented the call, like
// time.AfterFunc's Timer.Stop.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tm := &clockTimer{at: c.t.Add(d), f: f}
	c.timers = append(c.timers, tm)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !tm.stopped
		tm.stopped = true
		return was
	}
}

// Timers counts the AfterFunc functions waiting, so a test can wait for
// a timer to be set before it advances the clock past it.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, tm := range c.timers {
		if !tm.stopped {
			n++
		}
	}
	return n
}

// SignJWT signs claims with key using m, with kid in the header unless it
// is empty.
func SignJWT(tb testing.TB, m jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Buffer is a bytes.Buffer that a server or child process may write to
// while the test reads it: a log sink to wait on.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
