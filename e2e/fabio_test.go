package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/gatewayco/gateway/internal/grpctest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// fabioRoute is the /routes entry made from a tag of service, if any.
func fabioRoute(rb routesBody, service string) (name string, instances int) {
	for _, r := range rb.Routes {
		if r.SourceKey == "fabio:"+service {
			return r.Name, len(r.Instances)
		}
	}
	return "", 0
}

// hasTagError reports whether /routes lists a tag left out of key whose
// message holds every part.
func hasTagError(rb routesBody, key string, parts ...string) bool {
	for _, e := range rb.Errors {
		if e.Key != key {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(e.Message, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// TestFabioTags runs the gateway with -fabio-tags against services
// registered for Fabio: a tag route serves with strip=, a KV document
// with the same matcher wins over a tag, garbage tags are listed and hurt
// no other route, and removing a tag removes its route live.
func TestFabioTags(t *testing.T) {
	client, addr := startConsul(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"instance":"web-1","path":"` + r.URL.Path + `"}`))
	}))
	t.Cleanup(web.Close)
	garbage := []string{"urlprefix-/db proto=tcp", "urlprefix-/${env.HOME}", "urlprefix-/x tlsskipverify=true"}
	registerInstance(t, client, "web", "web-1", web.Listener.Addr().String(),
		append([]string{"urlprefix-/web strip=/web", "unrelated"}, garbage...)...)
	tagged := startBackend(t, client, "tagged-api", "tagged-api-1")
	registerInstance(t, client, "tagged-api", "tagged-api-1", tagged.addr(), "urlprefix-/api")
	startBackend(t, client, "kv-api", "kv-api-1")
	putRoute(t, client, "api.hcl", routeDoc("api", "/api", "kv-api"))

	gw := startGateway(t, addr, "-fabio-tags")
	testkit.WaitFor(t, "the web tag route with its instance", func() bool {
		_, n := fabioRoute(getRoutes(t, gw), "web")
		return n == 1
	})

	t.Run("a tag route serves, with strip", func(t *testing.T) {
		resp, err := http.Get(gw.url("/web/hello"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Instance, Path string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 || body.Instance != "web-1" || body.Path != "/hello" {
			t.Fatalf("got %d %+v (%v), want web-1 to see /hello", resp.StatusCode, body, err)
		}
	})

	t.Run("the KV route with the same matcher wins", func(t *testing.T) {
		if st, inst := getInstance(t, gw, "/api/users"); st != 200 || inst != "kv-api-1" {
			t.Fatalf("got %d from %q, want kv-api-1", st, inst)
		}
		rb := getRoutes(t, gw)
		if name, _ := fabioRoute(rb, "tagged-api"); name != "" {
			t.Fatalf("shadowed tag route %q is served", name)
		}
		if !hasTagError(rb, "fabio:tagged-api", "shadowed", `"api"`, "gateway/routes/api.hcl") {
			t.Fatalf("/routes does not list the shadowed tag route: %+v", rb.Errors)
		}
	})

	t.Run("garbage tags are listed, naming the service", func(t *testing.T) {
		rb := getRoutes(t, gw)
		for _, tag := range garbage {
			if !hasTagError(rb, "fabio:web", `service "web"`, "ignored") || !strings.Contains(errorsText(rb), tag) {
				t.Errorf("/routes does not list %q: %+v", tag, rb.Errors)
			}
		}
		for _, line := range []string{"proto=tcp", "tlsskipverify=true"} {
			if !strings.Contains(gw.logText(), line) {
				t.Errorf("log does not name %q", line)
			}
		}
	})

	t.Run("the KV route going away lets the tag route in", func(t *testing.T) {
		if _, err := client.KV().Delete(routesPrefix+"api.hcl", nil); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, "the tagged-api route", func() bool {
			st, inst := getInstance(t, gw, "/api/users")
			return st == 200 && inst == "tagged-api-1"
		})
	})

	t.Run("removing the tag removes the route live", func(t *testing.T) {
		start := time.Now()
		registerInstance(t, client, "web", "web-1", web.Listener.Addr().String(), garbage...)
		testkit.WaitFor(t, "the web route gone", func() bool {
			name, _ := fabioRoute(getRoutes(t, gw), "web")
			st, _ := getInstance(t, gw, "/web/hello")
			return name == "" && st == http.StatusNotFound
		})
		t.Logf("route gone %v after the tag was removed", time.Since(start).Round(time.Millisecond))
		if st, inst := getInstance(t, gw, "/api/users"); st != 200 || inst != "tagged-api-1" {
			t.Fatalf("other tag route: %d from %q", st, inst)
		}
	})

	t.Run("adding the tag back adds the route live", func(t *testing.T) {
		start := time.Now()
		registerInstance(t, client, "web", "web-1", web.Listener.Addr().String(), "urlprefix-/web strip=/web")
		testkit.WaitFor(t, "the web route served", func() bool {
			st, inst := getInstance(t, gw, "/web/hello")
			return st == 200 && inst == "web-1"
		})
		t.Logf("route served %v after the tag was added", time.Since(start).Round(time.Millisecond))
		if rb := getRoutes(t, gw); strings.Contains(errorsText(rb), "proto=tcp") {
			t.Fatalf("errors of removed tags still listed: %+v", rb.Errors)
		}
	})
}

// TestFabioTagGRPC routes a real grpc-go call by a proto=grpc tag, which
// the gateway speaks to the instance as h2c.
func TestFabioTagGRPC(t *testing.T) {
	client, addr := startConsul(t)
	addrGRPC, stop, err := grpctest.Serve("127.0.0.1:0", &grpctest.Service{Name: "grpc-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	registerInstance(t, client, "grpc", "grpc-1", addrGRPC, "urlprefix-"+grpcPrefix+" proto=grpc")
	gw := startGateway(t, addr, "-h2c", "-fabio-tags")
	testkit.WaitFor(t, "the grpc tag route with its instance", func() bool {
		_, n := fabioRoute(getRoutes(t, gw), "grpc")
		return n == 1
	})
	tc := testpb.NewTestServiceClient(dialGRPC(t, gw.public, nil))
	resp, err := tc.UnaryCall(context.Background(), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hi")}}, grpc.WaitForReady(false))
	if err != nil || string(resp.GetPayload().GetBody()) != "hi" {
		t.Fatalf("unary call through the tag route: %v, %v", resp, err)
	}
}

func errorsText(rb routesBody) string {
	var b strings.Builder
	for _, e := range rb.Errors {
		b.WriteString(e.Message + "\n")
	}
	return b.String()
}
