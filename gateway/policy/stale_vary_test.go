package policy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestStaleAnswerIsReplayedOnlyToRequestsItVariesOnAlike: an answer that
// says Vary: Accept-Language (or X-Api-Key, or any header) was for that
// request's value; replaying it to a request sending another value would
// hand one client's answer to another.
func TestStaleAnswerIsReplayedOnlyToRequestsItVariesOnAlike(t *testing.T) {
	c := NewStaleCache(0, 0)
	req := func(lang, key string) *http.Request {
		r := httptest.NewRequest("GET", "http://api.example.com/x?q=1", nil)
		if lang != "" {
			r.Header.Set("Accept-Language", lang)
		}
		if key != "" {
			r.Header.Set("X-Api-Key", key)
		}
		return r
	}
	first := req("en", "alice")
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Vary": {"Accept-Language, x-api-key"}},
		Body: io.NopCloser(strings.NewReader("alice's answer in English"))}
	if !shareable(first, resp) {
		t.Fatal("an answer that varies on request headers is not shareable at all")
	}
	c.record(first, resp)
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		lang, key string
		hit       bool
	}{
		{"en", "alice", true},
		{"de", "alice", false},
		{"en", "bob", false},
		{"", "", false},
	} {
		if got := c.lookup(req(tc.lang, tc.key)) != nil; got != tc.hit {
			t.Errorf("Accept-Language %q, X-Api-Key %q: replayed %v, want %v", tc.lang, tc.key, got, tc.hit)
		}
	}
}
