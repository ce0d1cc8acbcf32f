package registry

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/hashicorp/consul/api"
	"golang.org/x/time/rate"
)

func kvBody(pairs ...string) []*api.KVPair {
	var out []*api.KVPair
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, &api.KVPair{Key: pairs[i], Value: []byte(pairs[i+1]), ModifyIndex: 1})
	}
	return out
}

func TestNextWaitIndex(t *testing.T) {
	tests := []struct {
		name      string
		held, got uint64
		want      uint64
	}{
		{"first answer is carried", 0, 7, 7},
		{"index moves forward", 7, 9, 9},
		{"unchanged index is carried", 9, 9, 9},
		{"backwards resets to 0", 9, 4, 0},
		{"zero answered is treated as 1", 0, 0, 1},
		{"zero after a real index is backwards", 9, 0, 0},
		{"one is fine", 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextWaitIndex(tt.held, tt.got); got != tt.want {
				t.Errorf("nextWaitIndex(%d, %d) = %d, want %d", tt.held, tt.got, got, tt.want)
			}
		})
	}
}

// TestLoopFollowsIndexRules checks the index and wait parameters actually
// sent for scripted X-Consul-Index sequences a healthy agent never produces.
func TestLoopFollowsIndexRules(t *testing.T) {
	idx := func(indexes ...uint64) []fakeAnswer {
		var out []fakeAnswer
		for _, i := range indexes {
			out = append(out, fakeAnswer{Index: i})
		}
		return out
	}
	tests := []struct {
		name    string
		answers []fakeAnswer // successive answers; then Consul blocks
		// index parameter of successive requests: "" absent, "c" absent
		// and the read ?consistent
		want []string
	}{
		{"first call is a consistent plain read, then the index is carried", idx(5, 7), []string{"c", "5", "7"}},
		{"index going backwards resets to a consistent read, then carries the new one", idx(10, 4, 4), []string{"c", "10", "c", "4"}},
		{"index 0 answered is waited on as 1", idx(0, 0), []string{"c", "1", "1"}},
		{"index falling to 0 resets, then waits on 1", idx(10, 0, 0), []string{"c", "10", "c", "1"}},
		{
			"a failure is followed by a consistent plain read, then the index again",
			append(idx(5), fakeAnswer{Status: 500}, fakeAnswer{Index: 5}),
			[]string{"c", "5", "c", "5"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verifyNoLeaks(t)
			fake := newFakeConsul(t, func(n int, _ fakeRequest) fakeAnswer {
				if n < len(tt.answers) {
					a := tt.answers[n]
					a.Body = kvBody("routes/a", "x")
					return a
				}
				last := tt.answers[len(tt.answers)-1]
				return fakeAnswer{Index: last.Index, Body: kvBody("routes/a", "x"), Block: true}
			})
			kv := NewKV(testClient(t, fake.URL), "routes/", Options{WaitTime: 5 * time.Second}, nil)
			stop := runKV(t, kv)
			reqs := fake.waitRequests(t, len(tt.want))
			stop()

			var got []string
			for i, r := range reqs {
				if i < len(tt.want) {
					v := r.Index
					if r.Consistent {
						v += "c"
					}
					got = append(got, v)
				}
				if r.Path != "/v1/kv/routes/" {
					t.Errorf("request %d path = %q", i, r.Path)
				}
				// A wait without an index (or on index 0) would be a
				// "blocking" query that Consul answers at once.
				if (r.Index == "") != (r.Wait == "") || r.Index == "0" {
					t.Errorf("request %d: index=%q wait=%q; want both or neither, never index 0", i, r.Index, r.Wait)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("index parameters = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoopRecoversFromHungConnection(t *testing.T) {
	verifyNoLeaks(t)
	fake := newFakeConsul(t, func(n int, _ fakeRequest) fakeAnswer {
		if n == 0 {
			return fakeAnswer{Hang: true}
		}
		return fakeAnswer{Index: 3, Body: kvBody("routes/a", "x"), Block: n > 1}
	})
	var logs testkit.Buffer
	status := &Status{}
	opts := Options{WaitTime: 200 * time.Millisecond, Margin: 50 * time.Millisecond, Status: status, Logger: newTestLogger(&logs)}
	kv := NewKV(testClient(t, fake.URL), "routes/", opts, nil)
	runKV(t, kv)

	testkit.WaitWithin(t, 5*time.Second, "documents after the hung call", func() bool {
		_, ok := kv.Documents()
		return ok
	})
	reqs := fake.requests()
	deadline := opts.withDefaults().callTimeout()
	if gap := reqs[1].At.Sub(reqs[0].At); gap < deadline {
		t.Errorf("retried after %s, before the per-call deadline %s", gap, deadline)
	}
	if err := status.Err(); err != nil {
		t.Errorf("status after recovery = %v, want nil", err)
	}
	if out := logs.String(); !strings.Contains(out, "[WARN]  gw.kv:") || !strings.Contains(out, ErrCallTimeout.Error()) {
		t.Errorf("want a warning from gw.kv naming the deadline, got log:\n%s", out)
	}
}

func TestLoopBackoffGrowsAndResetsOnSuccess(t *testing.T) {
	verifyNoLeaks(t)
	const fails = 6
	fake := newFakeConsul(t, func(n int, _ fakeRequest) fakeAnswer {
		switch {
		case n < fails, n == fails+1:
			return fakeAnswer{Status: 500}
		case n == fails:
			return fakeAnswer{Index: 2, Body: kvBody("routes/a", "kept")}
		}
		return fakeAnswer{Hang: true} // keep the status as the failure left it
	})
	var mu sync.Mutex
	var delays []time.Duration
	status := &Status{}
	opts := Options{
		WaitTime:   5 * time.Second,
		RateLimit:  rate.Inf, // isolate backoff from pacing
		BackoffMin: 10 * time.Millisecond,
		BackoffMax: 80 * time.Millisecond,
		Status:     status,
		Rand:       func() float64 { return 0 }, // lower edge of the jitter: step/2
		Sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			delays = append(delays, d)
			mu.Unlock()
			return ctx.Err()
		},
	}
	kv := NewKV(testClient(t, fake.URL), "routes/", opts, nil)
	runKV(t, kv)
	fake.waitRequests(t, fails+3)

	mu.Lock()
	got := slices.Clone(delays)
	mu.Unlock()
	ms := time.Millisecond
	want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 40 * ms, 40 * ms, 5 * ms}
	if !slices.Equal(got, want) {
		t.Errorf("backoff delays = %v, want %v", got, want)
	}
	if docs, ok := kv.Documents(); !ok || len(docs) != 1 || string(docs[0].Value) != "kept" {
		t.Errorf("snapshot after a failure = %v, %v; want the last good one kept", docs, ok)
	}
	if err := status.Err(); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "500") {
		t.Errorf("status = %v, want ErrUnreachable naming the 500", err)
	}
}

// TestLoopBoundsCallRate counts real requests over a fixed period: neither a
// failing Consul nor one answering instantly may make a loop spin.
func TestLoopBoundsCallRate(t *testing.T) {
	const period = 600 * time.Millisecond
	index := func(n int) uint64 { return uint64(n + 1) }
	tests := []struct {
		name     string
		answer   func(n int) fakeAnswer
		opts     Options
		min, max int
	}{
		{
			name:   "errors back off",
			answer: func(int) fakeAnswer { return fakeAnswer{Status: 500} },
			// Delays 10-20, 20-40, 40-80, then 50-100ms: about 10 calls.
			opts: Options{RateLimit: rate.Inf, BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond},
			min:  3, max: 20,
		},
		{
			name: "instant changing answers are rate limited",
			answer: func(n int) fakeAnswer {
				return fakeAnswer{Index: index(n), Body: kvBody("routes/a", string(rune('a'+n%26)))}
			},
			// Burst 5 then 20/s: about 5 + 12.
			opts: Options{},
			min:  3, max: 20,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verifyNoLeaks(t)
			fake := newFakeConsul(t, func(n int, _ fakeRequest) fakeAnswer { return tt.answer(n) })
			kv := NewKV(testClient(t, fake.URL), "routes/", tt.opts, nil)
			ctx, cancel := context.WithTimeout(context.Background(), period)
			defer cancel()
			kv.Run(ctx) // returns when the observation period ends
			if n := fake.count(); n < tt.min || n > tt.max {
				t.Errorf("%d requests in %s, want %d..%d", n, period, tt.min, tt.max)
			}
		})
	}
}

func TestLoopSkipsNotifyWhenNothingChanged(t *testing.T) {
	verifyNoLeaks(t)
	a, b := kvBody("routes/a", "1"), kvBody("routes/a", "2")
	answers := []fakeAnswer{
		{Index: 5, Body: a}, // first answer: notify
		{Index: 5, Body: a}, // wait timed out, same index: no notify
		{Index: 6, Body: a}, // unrelated write bumped the index: no notify
		{Index: 7, Body: b}, // real change: notify
	}
	fake := newFakeConsul(t, func(n int, _ fakeRequest) fakeAnswer {
		if n < len(answers) {
			return answers[n]
		}
		return fakeAnswer{Index: 7, Body: b, Block: true}
	})
	var notes counter
	kv := NewKV(testClient(t, fake.URL), "routes/", Options{WaitTime: 5 * time.Second}, notes.notify)
	runKV(t, kv)
	// The loop notifies before it sends the next request.
	fake.waitRequests(t, len(answers)+1)

	if got := notes.count(); got != 2 {
		t.Errorf("notify called %d times, want 2", got)
	}
	if docs, _ := kv.Documents(); len(docs) != 1 || string(docs[0].Value) != "2" {
		t.Errorf("documents = %+v, want the changed value", docs)
	}
}

func TestBackoffDelay(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		failures int
		rand     float64
		want     time.Duration
	}{
		{"first failure, low jitter", 1, 0, 25 * ms},
		{"first failure, high jitter", 1, 0.999999, 49_999_975 * time.Nanosecond},
		{"doubles per failure", 3, 0, 100 * ms},
		{"capped at max", 30, 0, DefaultBackoffMax / 2},
		{"never overflows", 1 << 20, 0.5, DefaultBackoffMax * 3 / 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Rand: func() float64 { return tt.rand }}.withDefaults()
			if got := o.backoff(tt.failures); got != tt.want {
				t.Errorf("backoff(%d) = %s, want %s", tt.failures, got, tt.want)
			}
		})
	}
}
