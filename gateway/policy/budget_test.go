package policy

import (
	"fmt"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
)

func TestRetryBudget(t *testing.T) {
	tests := []struct {
		requests int
		want     int // retries granted when asking for many
	}{
		{0, DefaultMinRetries},   // the floor lets a quiet route retry
		{10, DefaultMinRetries},  // 20% of 10 is below the floor
		{100, DefaultMinRetries}, // 20% of 100 is below the floor too
		{1000, 200},              // 20% of recent requests
		{5000, 1000},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.requests), func(t *testing.T) {
			clk := testkit.NewClock()
			b := NewRetryBudget(DefaultRetryRatio, DefaultMinRetries, clk.Now)
			for range tc.requests {
				b.Request()
			}
			got := 0
			for range 10 * (tc.requests + 10) {
				if b.TryRetry() {
					got++
				}
			}
			if got != tc.want {
				t.Fatalf("%d requests granted %d retries, want %d", tc.requests, got, tc.want)
			}
			// Once the window has passed, the old retries no longer count.
			clk.Advance(budgetWindow * time.Second)
			if !b.TryRetry() {
				t.Fatal("budget did not recover after the window")
			}
		})
	}
}

func TestStaleCacheIsBounded(t *testing.T) {
	c := NewStaleCache(2, 4)
	c.Put(&StaleEntry{Key: "a", Body: []byte("1")})
	c.Put(&StaleEntry{Key: "b", Body: []byte("2")})
	c.Get("a") // a is now the most recently used
	c.Put(&StaleEntry{Key: "c", Body: []byte("3")})
	c.Put(&StaleEntry{Key: "big", Body: []byte("12345")})
	if c.Get("b") != nil || c.Get("big") != nil || c.Get("a") == nil || c.Get("c") == nil || c.Len() != 2 {
		t.Fatalf("cache holds the wrong entries: len %d", c.Len())
	}
}
