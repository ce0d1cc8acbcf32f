package gateway

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

func TestErrorsAreJSONWithTheRightStatus(t *testing.T) {
	_, ok := startUpstream(t, "ok-1", nil)
	cancelled := make(chan struct{}, 1)
	_, slow := startUpstream(t, "slow-1", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	})
	// A port that was open a moment ago and is closed now refuses connections.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := instanceOf(t, "gone-1", ln.Addr())
	ln.Close()

	gw := New(Options{})
	b := newTableBuilder(gw.deps)
	slowRoute := prefixRoute("slow", "/slow", "slow")
	slowRoute.Timeout = 100 * time.Millisecond
	getOnly := prefixRoute("getonly", "/getonly", "ok")
	getOnly.Methods = []string{"GET"}
	gw.Publish(b.build([]config.Route{
		prefixRoute("ok", "/ok", "ok"), getOnly, slowRoute,
		prefixRoute("empty", "/empty", "nobody"),
		prefixRoute("refused", "/refused", "gone"),
	}, fixed(map[string][]registry.Instance{"ok": {ok}, "slow": {slow}, "gone": {refused}}), nil))
	srv := serve(t, gw)

	tests := []struct {
		method, path string
		status       int
		errMsg       string
		route        string
	}{
		{"GET", "/ok/x", 200, "", ""},
		{"GET", "/nowhere", 404, exchange.MsgNoRoute, ""},
		{"POST", "/getonly", 405, exchange.MsgMethodNotAllowed, ""},
		{"GET", "/empty", 503, exchange.MsgNoInstance, "empty"},
		{"GET", "/refused", 502, exchange.MsgUpstreamDown, "refused"},
		{"GET", "/slow", 504, exchange.MsgUpstreamTimeout, "slow"},
	}
	for _, tc := range tests {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.errMsg == "" {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var body exchange.ErrorBody
			if err := decodeJSON(resp.Body, &body); err != nil {
				t.Fatal(err)
			}
			if body.Error != tc.errMsg || body.Route != tc.route {
				t.Errorf("body = %+v, want error %q route %q", body, tc.errMsg, tc.route)
			}
		})
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow upstream's request context was not cancelled by the route timeout")
	}
}

func TestProxyStripsPrefixAndSetsForwardedHeaders(t *testing.T) {
	_, inst := startUpstream(t, "users-1", nil)
	gw := New(Options{})
	r := prefixRoute("users", "/api/users", "users")
	r.StripPrefix = "/api"
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{r}, fixed(map[string][]registry.Instance{"users": {inst}}), nil))
	srv := serve(t, gw)

	req, _ := http.NewRequest("GET", srv.URL+"/api/users/42", nil)
	req.Host = "api.example.com"
	req.Header.Set("X-Forwarded-For", "6.6.6.6") // forged by the client
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "secret")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]string
	if err := decodeJSON(resp.Body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"path": "/users/42", "host": "api.example.com",
		"xff": "127.0.0.1", "xfh": "api.example.com", "xfp": "http", "conn_hdr": "",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("upstream saw %s = %q, want %q", k, got[k], v)
		}
	}
}

func TestMostSpecificRouteWins(t *testing.T) {
	var insts = map[string][]registry.Instance{}
	for _, name := range []string{"short", "long", "exact", "hosted"} {
		_, in := startUpstream(t, name, nil)
		insts[name] = []registry.Instance{in}
	}
	exact := config.Route{Name: "exact", Path: "/api/users/{id}", Service: "exact", Balancer: "round_robin"}
	hosted := prefixRoute("hosted", "/", "hosted")
	hosted.Host = "admin.example.com"
	gw := New(Options{})
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{
		prefixRoute("short", "/api", "short"), prefixRoute("long", "/api/users", "long"), exact, hosted,
	}, fixed(insts), nil))
	srv := serve(t, gw)

	for _, tc := range []struct{ host, path, want string }{
		{"", "/api/x", "short"},
		{"", "/api/users", "long"},
		{"", "/api/users/7/orders", "long"},
		{"", "/api/users/7", "exact"},
		{"admin.example.com", "/api/users/7", "hosted"},
	} {
		req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]string
		err = decodeJSON(resp.Body, &got)
		resp.Body.Close()
		if err != nil || got["instance"] != tc.want {
			t.Errorf("%s%s served by %q (err %v), want %q", tc.host, tc.path, got["instance"], err, tc.want)
		}
	}
}

func TestAccessLogRecordsRouteUpstreamAndClientGone(t *testing.T) {
	started := make(chan struct{})
	_, inst := startUpstream(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})
	var buf testkit.Buffer
	gw := New(Options{AccessLog: accessLogTo(t, &buf)})
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{prefixRoute("slow", "/", "slow")},
		fixed(map[string][]registry.Instance{"slow": {inst}}), nil))
	srv := serve(t, gw)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/hang?q=1", nil)
	go func() { <-started; cancel() }()
	if _, err := srv.Client().Do(req); err == nil {
		t.Fatal("request succeeded; want the client's cancellation")
	}
	line := testkit.WaitValue(t, "the access-log line", func() (string, bool) {
		s := buf.String()
		return s, strings.Contains(s, `"status"`)
	})
	for _, want := range []string{`"method":"GET"`, `"path":"/hang"`, `"query":"q=1"`, `"route":"slow"`, `"service":"slow"`, `"instance":"` + inst.HostPort() + `"`, `"status":499`, `"client_ip":"127.0.0.1"`, `"duration_ms":`} {
		if !strings.Contains(line, want) {
			t.Errorf("access log %q lacks %q", line, want)
		}
	}
}
