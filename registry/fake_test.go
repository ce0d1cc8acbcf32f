package registry

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
)

// fakeConsul is a scripted stand-in for the two Consul endpoints the watches
// use, for faults a real agent cannot be made to show on demand.
type fakeConsul struct {
	URL    string
	script func(n int, req fakeRequest) fakeAnswer
	quit   chan struct{} // releases handlers that hold requests

	mu   sync.Mutex
	reqs []fakeRequest
}

// fakeRequest is what the fake saw of one request.
type fakeRequest struct {
	Path  string
	Index string // "" when the index parameter was absent (index 0)
	Wait  string // "" when absent
	// Consistent is true for ?consistent reads.
	Consistent bool
	Token      string
	At         time.Time
}

// fakeAnswer scripts one response.
type fakeAnswer struct {
	Status int    // 0 means 200
	Index  uint64 // X-Consul-Index
	Body   any    // JSON-encoded; nil encodes as null
	Hang   bool   // never answer: only the client giving up ends the request
	Block  bool   // hold for the request's wait, like Consul when nothing changed
}

// newFakeConsul serves script(n, req) for the n-th request (0-based).
func newFakeConsul(t *testing.T, script func(n int, req fakeRequest) fakeAnswer) *fakeConsul {
	t.Helper()
	f := &fakeConsul{script: script, quit: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = srv.URL
	t.Cleanup(func() {
		close(f.quit)
		srv.Close()
	})
	return f
}

func (f *fakeConsul) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := fakeRequest{
		Path:       r.URL.Path,
		Index:      q.Get("index"),
		Wait:       q.Get("wait"),
		Consistent: q.Has("consistent"),
		Token:      r.Header.Get("X-Consul-Token"),
		At:         time.Now(),
	}
	f.mu.Lock()
	n := len(f.reqs)
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()

	a := f.script(n, req)
	switch {
	case a.Hang:
		select {
		case <-r.Context().Done():
		case <-f.quit:
		}
		return
	case a.Block:
		wait, _ := time.ParseDuration(req.Wait)
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		case <-f.quit:
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Consul-Index", strconv.FormatUint(a.Index, 10))
	w.Header().Set("X-Consul-LastContact", "0")
	w.Header().Set("X-Consul-KnownLeader", "true")
	if a.Status != 0 {
		w.WriteHeader(a.Status)
		_, _ = w.Write([]byte("scripted failure"))
		return
	}
	_ = json.NewEncoder(w).Encode(a.Body)
}

// requests returns a copy of the requests seen so far.
func (f *fakeConsul) requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.reqs...)
}

func (f *fakeConsul) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// waitRequests waits until the fake has seen at least n requests.
func (f *fakeConsul) waitRequests(t *testing.T, n int) []fakeRequest {
	t.Helper()
	testkit.WaitWithin(t, 10*time.Second, strconv.Itoa(n)+" requests", func() bool { return f.count() >= n })
	return f.requests()
}
