package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/registry"
)

type fakeHealth struct{ err error }

func (f *fakeHealth) Err() error { return f.err }

func TestHealthEndpointStates(t *testing.T) {
	gw := New(Options{})
	h := &fakeHealth{}
	admin := AdminHandler(gw, h)
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
	c := NewController(gw, nil)
	c.reload(context.Background(), &fakeDocs{ok: true}, &fakeInsts{})
	check(200, "ok")
	h.err = errors.New("consul unreachable: connection refused")
	check(200, "degraded")
}

func TestRoutesEndpointListsRoutesInstancesAndErrors(t *testing.T) {
	gw := New(Options{})
	c := NewController(gw, nil)
	docs := &fakeDocs{}
	docs.put("gateway/routes/a.hcl", docA)
	docs.put("gateway/routes/bad.hcl", "route \"z\" {\n  nonsense = 1\n}\n")
	insts := &fakeInsts{insts: map[string][]registry.Instance{"svc-a": {{ID: "a1", Address: "10.0.0.1", Port: 9000}}}}
	c.reload(context.Background(), docs, insts)

	rec := httptest.NewRecorder()
	AdminHandler(gw, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/routes", nil))
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
	gw := New(Options{})
	c := NewController(gw, nil)
	c.reload(context.Background(), &fakeDocs{ok: true}, &fakeInsts{})
	for _, p := range []string{"/health", "/routes"} {
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("public %s = %d, want 404", p, rec.Code)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
