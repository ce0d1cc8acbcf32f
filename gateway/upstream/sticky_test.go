package upstream

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// TestStickyPinsWhileAvailableAndMovesOtherwise: a cookie keeps its
// instance under round robin; an ejected, failing-in-panic-mode, drained
// or refusing instance is left (a refusal by a retry), and the answer
// re-pins the client to the instance that served; a garbage cookie is
// ignored; Secure follows the forwarded protocol, and SameSite=None is
// always Secure.
func TestStickyPinsWhileAvailableAndMovesOtherwise(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	insts := []registry.Instance{
		{ID: "a", Node: "n1", Address: "127.0.0.1", Port: 9001, Passing: true},
		{ID: "b", Node: "n1", Address: "127.0.0.1", Port: 9002, Passing: true},
		{ID: "c", Node: "n2", Address: "127.0.0.1", Port: 9003, Passing: true},
	}
	refuse := map[string]bool{}
	tr := transportFunc(func(r *http.Request) (*http.Response, error) {
		if refuse[r.URL.Host] {
			return nil, &net.OpError{Op: "dial", Err: errors.New("refused")}
		}
		return &http.Response{StatusCode: 200, Header: http.Header{"X-Host": {r.URL.Host}}, Body: io.NopCloser(strings.NewReader(""))}, nil
	})
	build := func(insts []registry.Instance, sc config.Sticky) *Upstream {
		bal, _ := balancer.New(balancer.RoundRobin)
		u := New(Config{Service: registry.ServiceKey{Name: "svc"}, Instances: insts, Balancer: bal, Transport: tr,
			Retry: Retry{Retries: 1}, Outliers: balancer.NewOutlierTracker(5, time.Minute, nil), Now: func() time.Time { return now }})
		return u.WithSticky(&sc, false)
	}
	lax := config.Sticky{Cookie: "s", Path: "/", SameSite: config.SameSiteLax}
	u := build(insts, lax)
	send := func(u *Upstream, cookie string, hdr ...string) (host string, set *http.Cookie) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://gw/x", nil)
		if cookie != "" {
			req.Header.Set("Cookie", "other=1; s="+cookie)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := u.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range resp.Cookies() {
			if c.Name == "s" {
				set = c
			}
		}
		return resp.Header.Get("X-Host"), set
	}
	value := func(i int) string { return u.sticky.values[i] }

	for range 10 {
		if host, set := send(u, value(1)); host != "127.0.0.1:9002" || set != nil {
			t.Fatalf("pinned to b: served by %s, cookie %v", host, set)
		}
	}
	host, set := send(u, "garbage")
	if host == "" || set == nil || set.Value != value(map[string]int{"127.0.0.1:9001": 0, "127.0.0.1:9002": 1, "127.0.0.1:9003": 2}[host]) {
		t.Errorf("garbage cookie: served by %s, cookie %v", host, set)
	}
	if !set.HttpOnly || set.SameSite != http.SameSiteLaxMode || set.Path != "/" || set.Secure {
		t.Errorf("attributes over plain HTTP: %s", set)
	}
	if _, set := send(u, "", "X-Forwarded-Proto", "https"); set == nil || !set.Secure {
		t.Errorf("over HTTPS: cookie %v, want Secure", set)
	}
	none := build(insts, config.Sticky{Cookie: "s", Path: "/", SameSite: config.SameSiteNone, MaxAge: time.Hour})
	if _, set := send(none, ""); set == nil || !set.Secure || set.SameSite != http.SameSiteNoneMode || set.MaxAge != 3600 {
		t.Errorf("same_site none: cookie %v, want Secure, SameSite=None, Max-Age=3600", set)
	}

	moved := func(why string, u *Upstream) {
		t.Helper()
		host, set := send(u, value(1))
		if host == "127.0.0.1:9002" || host == "" || set == nil || set.Value == value(1) {
			t.Errorf("%s: served by %s with cookie %v; want another instance and its cookie", why, host, set)
		}
	}
	u.health[1].EjectUntil(now.Add(time.Minute))
	moved("ejected", u)
	u.health[1].EjectUntil(now)

	panicked := append([]registry.Instance(nil), insts...)
	panicked[1].Passing = false
	moved("critical in a panic-mode table", build(panicked, lax))
	drained := append([]registry.Instance(nil), insts...)
	drained[1].Passing, drained[1].Maintenance = false, true
	moved("in maintenance", build(drained, lax))

	refuse["127.0.0.1:9002"] = true
	moved("refusing, retried", u)
}

// TestStickyKeepsWarningInstanceWhenAllowed: on an allow_warning route a
// warning instance serves, so a client pinned to it stays there rather
// than being moved (and re-pinned) on every request; a route without
// allow_warning in a panic-mode table still moves it away.
func TestStickyKeepsWarningInstanceWhenAllowed(t *testing.T) {
	insts := []registry.Instance{
		{ID: "a", Node: "n1", Address: "127.0.0.1", Port: 9001, Passing: true, Weights: registry.Weights{Passing: 1, Warning: 1}},
		{ID: "b", Node: "n1", Address: "127.0.0.1", Port: 9002, Warning: true, Weights: registry.Weights{Passing: 1, Warning: 1}},
	}
	tr := transportFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{"X-Host": {r.URL.Host}}, Body: io.NopCloser(strings.NewReader(""))}, nil
	})
	sc := config.Sticky{Cookie: "s", Path: "/", SameSite: config.SameSiteLax}
	for _, allow := range []bool{true, false} {
		bal, _ := balancer.New(balancer.RoundRobin)
		u := New(Config{Service: registry.ServiceKey{Name: "svc"}, Instances: insts, Balancer: bal, Transport: tr}).WithSticky(&sc, allow)
		onB := 0
		for range 4 {
			req, _ := http.NewRequest(http.MethodGet, "http://gw/x", nil)
			req.Header.Set("Cookie", "s="+u.sticky.values[1])
			resp, err := u.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Header.Get("X-Host") == "127.0.0.1:9002" {
				onB++
			}
		}
		if (onB == 4) != allow {
			t.Errorf("allow_warning %v: %d of 4 requests pinned to the warning instance served by it", allow, onB)
		}
	}
}
