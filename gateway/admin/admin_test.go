package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway"
	"github.com/gatewayco/gateway/internal/registrytest"
	"github.com/gatewayco/gateway/internal/testkit"
	"github.com/gatewayco/gateway/registry"
)

type fakeHealth struct{ err error }

func (f *fakeHealth) Err() error { return f.err }

func TestHealthEndpointStates(t *testing.T) {
	gw := gateway.New(gateway.Options{})
	h := &fakeHealth{}
	admin := Handler(gw, h)
	check := func(wantCode int, wantStatus string) {
		t.Helper()
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
		var body healthBody
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if rec.Code != wantCode || body.Status != wantStatus {
			t.Fatalf("/health = %d %+v, want %d %q", rec.Code, body, wantCode, wantStatus)
		}
		if wantStatus != "ok" && body.Reason == "" {
			t.Fatalf("/health %q without a reason", wantStatus)
		}
	}
	check(503, "starting")
	docs := &registrytest.Docs{}
	docs.Ready()
	load(t, gw, docs, &registrytest.Instances{})
	check(200, "ok")
	h.err = errors.New("consul unreachable: connection refused")
	check(200, "degraded")
}

func TestRoutesEndpointListsRoutesInstancesAndErrors(t *testing.T) {
	gw := gateway.New(gateway.Options{})
	docs := &registrytest.Docs{}
	docs.Put("gateway/routes/a.hcl", "route \"a\" {\n  path_prefix = \"/a\"\n  service     = \"svc-a\"\n}\n")
	docs.Put("gateway/routes/bad.hcl", "route \"z\" {\n  nonsense = 1\n}\n")
	insts := &registrytest.Instances{}
	insts.Set("svc-a", registry.Instance{ID: "a1", Address: "10.0.0.1", Port: 9000, Passing: true})
	load(t, gw, docs, insts)

	rec := httptest.NewRecorder()
	Handler(gw, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/routes", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	var body struct {
		Routes []struct {
			Name, SourceKey, Service, Tag, Balancer string
			Instances                               []struct {
				ID, Address string
				Port        int
			}
		}
		Errors []struct{ Key, Message string }
	}
	// Field names are matched case-insensitively, so check the raw keys too.
	raw := rec.Body.String()
	for _, k := range []string{`"name"`, `"source_key"`, `"service"`, `"tag"`, `"balancer"`, `"instances"`, `"id"`, `"address"`, `"port"`, `"errors"`, `"key"`, `"message"`} {
		if !contains(raw, k) {
			t.Errorf("/routes lacks %s: %s", k, raw)
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Routes) != 1 || body.Routes[0].Name != "a" || body.Routes[0].Balancer != "round_robin" ||
		len(body.Routes[0].Instances) != 1 || body.Routes[0].Instances[0].Port != 9000 {
		t.Fatalf("routes = %+v", body.Routes)
	}
	if len(body.Errors) != 1 || body.Errors[0].Key != "gateway/routes/bad.hcl" || !contains(body.Errors[0].Message, "gateway/routes/bad.hcl:2:3") {
		t.Fatalf("errors = %+v", body.Errors)
	}
}

func TestAdminIsNotServedOnThePublicHandler(t *testing.T) {
	gw := gateway.New(gateway.Options{})
	docs := &registrytest.Docs{}
	docs.Ready()
	load(t, gw, docs, &registrytest.Instances{})
	for _, p := range []string{"/health", "/routes"} {
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("public %s = %d, want 404", p, rec.Code)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// load runs a controller publishing to gw from docs and insts until the
// test ends, and waits for its first table.
func load(t *testing.T, gw *gateway.Gateway, docs gateway.Documents, insts gateway.Instances) *gateway.Controller {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := gateway.NewController(gw, nil)
	done := make(chan struct{})
	go func() { c.Run(ctx, docs, insts); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	testkit.WaitFor(t, "the first table", func() bool { return gw.Table().Loaded() })
	return c
}
