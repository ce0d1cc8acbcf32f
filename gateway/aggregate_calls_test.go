package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway/aggregate"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

// serveAggregateWith is serveAggregate with the gateway's options.
func serveAggregateWith(t *testing.T, opts Options, ag config.Aggregate, insts map[string][]registry.Instance) (*Gateway, *httptest.Server) {
	t.Helper()
	gw := New(opts)
	t.Cleanup(func() { closeIdle(gw.deps.transport) })
	gw.Publish(newTableBuilder(gw.deps).buildAll(nil, []config.Aggregate{ag}, fixed(insts), nil, nil))
	return gw, serve(t, gw)
}

// TestAggregateSequenceFillsPathFromAnswer: a call with after waits for
// the answer it names and takes a value from it into its path and query,
// escaped as request values are; a call waiting for nobody runs
// concurrently with the first (each handler needs the other started).
func TestAggregateSequenceFillsPathFromAnswer(t *testing.T) {
	verifyNoLeaks(t)
	userStarted, otherStarted := make(chan struct{}), make(chan struct{})
	var gotPath, gotQuery atomic.Value
	users := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(userStarted)
		<-otherStarted
		fmt.Fprint(w, `{"id":"7","account":{"id":"a 1","region":"eu&x=1"},"n":42}`)
	}))
	defer users.Close()
	others := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(otherStarted)
		<-userStarted
		fmt.Fprint(w, `{"other":true}`)
	}))
	defer others.Close()
	accounts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath.Store(r.URL.EscapedPath())
		gotQuery.Store(r.URL.RawQuery)
		fmt.Fprint(w, `{"balance":10}`)
	}))
	defer accounts.Close()
	ag := testAggregate("/dash/{id}",
		config.Call{Name: "accounts", Service: "accounts", Path: "/accounts/{user.account.id}?region={user.account.region}&n={user.n}", After: []string{"user"}},
		config.Call{Name: "user", Service: "users", Path: "/users/{id}"},
		config.Call{Name: "other", Service: "others", Path: "/o"},
	)
	ag.MaxConcurrency = 2 // the waiting call, declared first, must not starve the one it waits for
	srv := serveAggregate(t, ag, map[string][]registry.Instance{
		"users": {instanceOf(t, "u", users.Listener.Addr())}, "others": {instanceOf(t, "o", others.Listener.Addr())},
		"accounts": {instanceOf(t, "a", accounts.Listener.Addr())},
	})
	a := getAggregate(t, srv.URL+"/dash/7", nil)
	if a.status != 200 || len(a.errors) != 0 {
		t.Fatalf("status %d, errors %v", a.status, a.errors)
	}
	if string(a.body["accounts"]) != `{"balance":10}` || string(a.body["other"]) != `{"other":true}` {
		t.Errorf("body %v", a.body)
	}
	if p := gotPath.Load(); p != "/accounts/a%201" {
		t.Errorf("accounts path %v, want /accounts/a%%201", p)
	}
	if q := gotQuery.Load(); q != "region=eu%26x%3D1&n=42" {
		t.Errorf("accounts query %v", q)
	}
}

// TestAggregateSequenceFailures: a missing or non-scalar value, or one
// that would leave its path segment, fails the dependent call as a system
// error without calling it; a failed dependency fails it with that
// call's kind and status; neither is the client's fault (200, partial).
func TestAggregateSequenceFailures(t *testing.T) {
	verifyNoLeaks(t)
	cases := []struct {
		name, userBody string
		userStatus     int
		wantKind       string
		wantStatus     int
	}{
		{"missing", `{"id":1}`, 200, aggregate.KindSystem, 502},
		{"object", `{"account_id":{"x":1}}`, 200, aggregate.KindSystem, 502},
		{"null", `{"account_id":null}`, 200, aggregate.KindSystem, 502},
		{"slash", `{"account_id":"../admin"}`, 200, aggregate.KindSystem, 502},
		{"too long", `{"account_id":"` + strings.Repeat("x", config.MaxRefValueBytes+1) + `"}`, 200, aggregate.KindSystem, 502},
		{"dependency failed", `{}`, 404, aggregate.KindBusiness, 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			users := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.userStatus)
				fmt.Fprint(w, tc.userBody)
			}))
			defer users.Close()
			var called atomic.Int32
			accounts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				called.Add(1)
				fmt.Fprint(w, `{}`)
			}))
			defer accounts.Close()
			ag := testAggregate("/d",
				config.Call{Name: "user", Service: "users", Path: "/u"},
				config.Call{Name: "acct", Service: "accounts", Path: "/a/{user.account_id}", After: []string{"user"}},
			)
			srv := serveAggregate(t, ag, map[string][]registry.Instance{
				"users": {instanceOf(t, "u", users.Listener.Addr())}, "accounts": {instanceOf(t, "a", accounts.Listener.Addr())},
			})
			a := getAggregate(t, srv.URL+"/d", nil)
			if a.status != 200 {
				t.Fatalf("status %d", a.status)
			}
			e := a.errors["acct"]
			if e.Kind != tc.wantKind || e.Status != tc.wantStatus {
				t.Errorf("acct error %+v, want %s %d", e, tc.wantKind, tc.wantStatus)
			}
			if n := called.Load(); n != 0 {
				t.Errorf("the dependent call was made %d times", n)
			}
		})
	}
}

// TestAggregateSequenceWaitsUnderConcurrencyCapOne: with one call in
// flight at a time, the calls run one after another in dependency order,
// whatever their declaration order.
func TestAggregateSequenceWaitsUnderConcurrencyCapOne(t *testing.T) {
	verifyNoLeaks(t)
	var mu sync.Mutex
	var order []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		order = append(order, r.URL.Path)
		mu.Unlock()
		fmt.Fprint(w, `{"next":"x"}`)
	}))
	defer up.Close()
	ag := testAggregate("/d",
		config.Call{Name: "c", Service: "s", Path: "/c/{b.next}", After: []string{"b"}},
		config.Call{Name: "b", Service: "s", Path: "/b/{a.next}", After: []string{"a"}},
		config.Call{Name: "a", Service: "s", Path: "/a"},
	)
	ag.MaxConcurrency = 1
	srv := serveAggregate(t, ag, map[string][]registry.Instance{"s": {instanceOf(t, "s", up.Listener.Addr())}})
	if a := getAggregate(t, srv.URL+"/d", nil); a.status != 200 || len(a.errors) != 0 {
		t.Fatalf("status %d errors %v", a.status, a.errors)
	}
	if got := strings.Join(order, " "); got != "/a /b/x /c/x" {
		t.Errorf("calls made in order %q", got)
	}
}

// TestAggregateWriteForwardsClientBody: the call with body = "client"
// gets the client's body, method and Content-Type; the other calls get
// no body; a write answering 201 without a body merges as null.
func TestAggregateWriteForwardsClientBody(t *testing.T) {
	verifyNoLeaks(t)
	type seen struct{ method, ctype, body string }
	var orders, users atomic.Value
	record := func(v *atomic.Value, status int, answer string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			v.Store(seen{r.Method, r.Header.Get("Content-Type"), string(b)})
			w.WriteHeader(status)
			fmt.Fprint(w, answer)
		}
	}
	o := httptest.NewServer(record(&orders, 201, ""))
	defer o.Close()
	u := httptest.NewServer(record(&users, 200, `{"id":1}`))
	defer u.Close()
	ag := testAggregate("/checkout",
		config.Call{Name: "order", Service: "orders", Path: "/orders", Method: "POST", Body: config.BodyClient},
		config.Call{Name: "user", Service: "users", Path: "/u"},
	)
	srv := serveAggregate(t, ag, map[string][]registry.Instance{
		"orders": {instanceOf(t, "o", o.Listener.Addr())}, "users": {instanceOf(t, "u", u.Listener.Addr())},
	})
	resp, err := http.Post(srv.URL+"/checkout", "application/json", strings.NewReader(`{"item":3}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(raw) != `{"order":null,"user":{"id":1}}` {
		t.Fatalf("status %d body %s", resp.StatusCode, raw)
	}
	if got := orders.Load(); got != (seen{"POST", "application/json", `{"item":3}`}) {
		t.Errorf("order call got %+v", got)
	}
	if got := users.Load(); got != (seen{"GET", "", ""}) {
		t.Errorf("user call got %+v", got)
	}
}

// TestAggregateWriteBodyOverLimitIsTheClients: a body over
// -max-body-bytes answers 413 and no call is made.
func TestAggregateWriteBodyOverLimitIsTheClients(t *testing.T) {
	verifyNoLeaks(t)
	var called atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called.Add(1)
		fmt.Fprint(w, `{}`)
	}))
	defer up.Close()
	ag := testAggregate("/w",
		config.Call{Name: "w", Service: "s", Path: "/w", Method: "PUT", Body: config.BodyClient},
		config.Call{Name: "r", Service: "s", Path: "/r"},
	)
	_, srv := serveAggregateWith(t, Options{MaxBodyBytes: 8}, ag, map[string][]registry.Instance{"s": {instanceOf(t, "s", up.Listener.Addr())}})
	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(strings.Repeat("x", 100))
		if chunked {
			body = io.MultiReader(body) // no length known: chunked
		}
		req, _ := http.NewRequest("PUT", srv.URL+"/w", body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked %v: status %d, want 413", chunked, resp.StatusCode)
		}
	}
	if n := called.Load(); n != 0 {
		t.Errorf("%d calls made", n)
	}
}

// TestAggregateCacheFollowsCacheControl: a cached call's answer is reused
// while its max-age (or s-maxage) lasts, by the gateway's clock; no-store,
// private, and requests with credentials are never served from it; a
// Vary header keeps variants apart.
func TestAggregateCacheFollowsCacheControl(t *testing.T) {
	verifyNoLeaks(t)
	cases := []struct {
		name, cacheControl, vary string
		hdr                      http.Header
		wantCalls                int // of three requests, the last after 30s
	}{
		{name: "max-age", cacheControl: "max-age=60", wantCalls: 1},
		{name: "s-maxage wins", cacheControl: "max-age=60, s-maxage=10", wantCalls: 2},
		{name: "no-store", cacheControl: "no-store, max-age=60", wantCalls: 3},
		{name: "private", cacheControl: "private, max-age=60", wantCalls: 3},
		{name: "none", wantCalls: 3},
		{name: "authorization", cacheControl: "max-age=60", hdr: http.Header{"Authorization": {"Bearer x"}}, wantCalls: 3},
		{name: "vary", cacheControl: "max-age=60", vary: "X-Tenant", wantCalls: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := calls.Add(1)
				if tc.cacheControl != "" {
					w.Header().Set("Cache-Control", tc.cacheControl)
				}
				if tc.vary != "" {
					w.Header().Set("Vary", tc.vary)
				}
				fmt.Fprintf(w, `{"n":%d}`, n)
			}))
			defer up.Close()
			clock := testkit.NewClock()
			ag := testAggregate("/c", config.Call{Name: "c", Service: "s", Path: "/c", Cache: true})
			ag.ForwardHeaders = []string{"X-Tenant"}
			_, srv := serveAggregateWith(t, Options{Now: clock.Now}, ag, map[string][]registry.Instance{"s": {instanceOf(t, "s", up.Listener.Addr())}})
			for i := range 3 {
				hdr := tc.hdr.Clone()
				if tc.vary != "" {
					hdr = http.Header{"X-Tenant": {fmt.Sprint(i % 2)}} // 0, 1, 0
				}
				if i == 2 {
					clock.Advance(30 * time.Second)
				}
				a := getAggregate(t, srv.URL+"/c", hdr)
				if a.status != 200 {
					t.Fatalf("status %d", a.status)
				}
			}
			if n := calls.Load(); int(n) != tc.wantCalls {
				t.Errorf("upstream called %d times, want %d", n, tc.wantCalls)
			}
		})
	}
}

// TestAggregateCachedAnswerFeedsSequence: a cached answer is an answer
// like any other, for the calls waiting for it too.
func TestAggregateCachedAnswerFeedsSequence(t *testing.T) {
	verifyNoLeaks(t)
	var userCalls atomic.Int32
	var paths sync.Map
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/u" {
			userCalls.Add(1)
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprint(w, `{"acct":"a9"}`)
			return
		}
		paths.Store(r.URL.Path, true)
		json.NewEncoder(w).Encode(map[string]string{"path": r.URL.Path})
	}))
	defer up.Close()
	ag := testAggregate("/d",
		config.Call{Name: "user", Service: "s", Path: "/u", Cache: true},
		config.Call{Name: "acct", Service: "s", Path: "/a/{user.acct}", After: []string{"user"}},
	)
	srv := serveAggregate(t, ag, map[string][]registry.Instance{"s": {instanceOf(t, "s", up.Listener.Addr())}})
	for range 2 {
		if a := getAggregate(t, srv.URL+"/d", nil); string(a.body["acct"]) != `{"path":"/a/a9"}` {
			t.Fatalf("body %v errors %v", a.body, a.errors)
		}
	}
	if n := userCalls.Load(); n != 1 {
		t.Errorf("user called %d times, want 1", n)
	}
}
