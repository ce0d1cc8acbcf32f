package policy

import (
	"sync"
	"time"
)

// RetryBudget caps retries at a share of a route's recent requests, so a
// failing service sees at most Ratio more traffic from retries instead of a
// retry storm. Requests and retries are counted in one-second buckets over
// a sliding window; MinRetries per window are always allowed so a quiet
// route can still retry.
type RetryBudget struct {
	ratio   float64
	floor   int
	now     func() time.Time
	mu      sync.Mutex
	buckets [budgetWindow]budgetBucket
}

// budgetWindow is the number of one-second buckets considered "recent".
const budgetWindow = 10

type budgetBucket struct {
	sec               int64
	requests, retries int
}

// Defaults of a RetryBudget.
//
// The floor is Linkerd's and Finagle's default, 10 retries a second (100
// over the window): enough that a quiet route survives an instance dying
// until outlier ejection takes it out, yet a failing service still sees at
// most 20% more traffic once the route is busy.
const (
	DefaultRetryRatio = 0.2
	DefaultMinRetries = 10 * budgetWindow
)

// NewRetryBudget returns a budget of ratio retries per request with floor
// retries per window always allowed; now nil means time.Now.
func NewRetryBudget(ratio float64, floor int, now func() time.Time) *RetryBudget {
	if now == nil {
		now = time.Now
	}
	return &RetryBudget{ratio: ratio, floor: floor, now: now}
}

// Request records one client request (not a retry).
func (b *RetryBudget) Request() {
	b.mu.Lock()
	b.bucket().requests++
	b.mu.Unlock()
}

// TryRetry reports whether one more retry fits the budget and, if so,
// records it.
func (b *RetryBudget) TryRetry() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.bucket()
	sec := cur.sec
	requests, retries := 0, 0
	for i := range b.buckets {
		if bk := &b.buckets[i]; sec-bk.sec < budgetWindow {
			requests += bk.requests
			retries += bk.retries
		}
	}
	if retries >= b.floor && float64(retries+1) > b.ratio*float64(requests) {
		return false
	}
	cur.retries++
	return true
}

// bucket returns the current second's bucket, clearing it if it last held
// an older second. Called with b.mu held.
func (b *RetryBudget) bucket() *budgetBucket {
	sec := b.now().Unix()
	bk := &b.buckets[sec%budgetWindow]
	if bk.sec != sec {
		*bk = budgetBucket{sec: sec}
	}
	return bk
}
