package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/policy"
	"github.com/gatewayco/gateway/gateway/upstream"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
	"github.com/golang-jwt/jwt/v5"
)

// forgingAuth answers every request to the auth instance at host itself,
// with a 200 whose X-User-Id is value; other requests go to next.
type forgingAuth struct {
	host, value string
	next        http.RoundTripper
}

func (f forgingAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != f.host {
		return f.next.RoundTrip(r)
	}
	return &http.Response{StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"X-User-Id": {f.value}}, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

// TestForwardAuthHeaderThatCannotBeSentIsRefusedByTheGateway: net/http's
// own client never lets such a value through, but any transport might; a
// copy_headers value with a control character is the auth answer's fault,
// answered 503 like no answer, and never reaches (or counts against) the
// route's upstream.
func TestForwardAuthHeaderThatCannotBeSentIsRefusedByTheGateway(t *testing.T) {
	hits, inst := countingUpstream(t, "api-1")
	auth := registry.Instance{ID: "auth-1", Address: "127.0.0.1", Port: 1}
	doc := `
route "api" {
  path_prefix = "/api"
  service     = "api"
  forward_auth {
    service      = "auth"
    path         = "/verify"
    copy_headers = ["X-User-Id"]
  }
}`
	for _, value := range []string{"u-1\r\nX-Admin: 1", "u\x00", "u\x7f"} {
		opts := Options{Proxy: ProxyOptions{Transport: forgingAuth{host: auth.HostPort(), value: value, next: upstream.NewTransport(0, 0)}}}
		pg := startPolicyGateway(t, opts, doc, map[string][]registry.Instance{"api": {inst}, "auth": {auth}})
		for range balancer.DefaultOutlierFailures + 1 {
			r := do(t, "GET", pg.url+"/api/x")
			if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, policy.MsgAuthUnavailable) {
				t.Errorf("auth answered X-User-Id %q: %d %s, want 503 %s", value, r.status, r.body, policy.MsgAuthUnavailable)
			}
		}
		if pg.route("api").InstanceStates(time.Now())[0].Ejected {
			t.Errorf("auth answered X-User-Id %q: the route's instance was ejected", value)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d requests with an unsendable header reached the upstream", n)
	}
}

// TestUnderscoreSpellingsOfVerifiedHeadersNeverReachTheUpstream: CGI-style
// frameworks read X_User_Email as X-User-Email, so a client-sent
// underscore copy of a forward_claims header would stand beside (or, for
// a claim the token lacks, instead of) the verified value.
func TestUnderscoreSpellingsOfVerifiedHeadersNeverReachTheUpstream(t *testing.T) {
	secret := "an-underscore-test-secret-32-byte"
	t.Setenv("TEST_UNDERSCORE_SECRET", secret)
	echo := &headerEcho{}
	_, inst := startUpstream(t, "api-1", echo.ServeHTTP)
	pg := startPolicyGateway(t, Options{}, `
route "api" {
  path_prefix = "/api"
  service     = "api"
  jwt {
    algorithms     = ["HS256"]
    secret_env     = "TEST_UNDERSCORE_SECRET"
    forward_claims = { sub = "X-User-Id", email = "X-User-Email" }
  }
}`, map[string][]registry.Instance{"api": {inst}})
	tok := testkit.SignJWT(t, jwt.SigningMethodHS256, "", []byte(secret), jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix()})
	req, _ := http.NewRequest("GET", pg.url+"/api/x", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header["X_User_Id"] = []string{"alice"}
	req.Header["X_USER_EMAIL"] = []string{"admin@corp"}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	got := echo.got()
	for k, v := range got {
		if n := strings.ToLower(strings.ReplaceAll(k, "_", "-")); (n == "x-user-id" && k != "X-User-Id") || n == "x-user-email" {
			t.Errorf("upstream got %s: %q from the client", k, v)
		}
	}
	if v := got.Values("X-User-Id"); len(v) != 1 || v[0] != "bob" {
		t.Errorf("upstream X-User-Id %q, want the verified [bob]", v)
	}
}
