package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// serve runs one request through the handler of the named service and
// decodes the JSON answer, failing the test on anything that is not JSON.
func serve(t *testing.T, name, method, target string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	h, err := newHandler(name, name+"-test", hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("newHandler(%q): %v", name, err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type = %q, want application/json", method, target, ct)
	}
	if got := rec.Header().Get("X-Instance"); got != name+"-test" {
		t.Errorf("%s %s: X-Instance = %q, want %q", method, target, got, name+"-test")
	}
	body, _ := io.ReadAll(rec.Body)
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s %s: body is not a JSON object: %v\n%s", method, target, err, body)
	}
	return rec, v
}

func TestRoutes(t *testing.T) {
	tests := []struct {
		service, method, target string
		status                  int
		// want lists top-level fields and their expected values; a nil value
		// only asserts that the field is present.
		want map[string]any
	}{
		{"users", "GET", "/users/42", 200, map[string]any{"id": "42", "name": "User 42", "instance": "users-test"}},
		{"users", "GET", "/users", 200, map[string]any{"users": nil, "instance": "users-test"}},
		{"users", "POST", "/users/42", 404, map[string]any{"error": nil}},
		{"users", "GET", "/orders?user=1", 404, map[string]any{"error": nil, "instance": "users-test"}},
		{"orders", "GET", "/orders?user=42", 200, map[string]any{"user": "42", "orders": nil, "instance": "orders-test"}},
		{"orders", "GET", "/orders", 400, map[string]any{"error": nil}},
		{"products", "GET", "/products/recommended?user=42", 200, map[string]any{"user": "42", "products": nil, "instance": "products-test"}},
		{"products", "GET", "/products/recommended", 400, map[string]any{"error": nil}},
		{"products", "GET", "/products", 200, map[string]any{"products": nil}},
		{"products", "GET", "/nope", 404, map[string]any{"error": "not found", "path": "/nope"}},
		{"users", "GET", "/health", 200, map[string]any{"status": "ok"}},
		{"orders", "GET", "/health", 200, map[string]any{"status": "ok"}},
		{"products", "GET", "/health", 200, map[string]any{"status": "ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.service+" "+tt.method+" "+tt.target, func(t *testing.T) {
			rec, got := serve(t, tt.service, tt.method, tt.target)
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			for k, want := range tt.want {
				v, ok := got[k]
				if !ok {
					t.Errorf("field %q missing in %v", k, got)
					continue
				}
				if want != nil && v != want {
					t.Errorf("field %q = %v, want %v", k, v, want)
				}
			}
		})
	}
}

// The demo's round-robin story relies on every instance answering the same
// data for the same user; only the instance field may differ.
func TestDataIsDeterministic(t *testing.T) {
	_, a := serve(t, "orders", "GET", "/orders?user=7")
	_, b := serve(t, "orders", "GET", "/orders?user=7")
	ja, _ := json.Marshal(a["orders"])
	jb, _ := json.Marshal(b["orders"])
	if string(ja) != string(jb) {
		t.Errorf("orders differ between calls:\n%s\n%s", ja, jb)
	}
	if n := len(a["orders"].([]any)); n < 1 || n > 3 {
		t.Errorf("got %d orders, want 1..3", n)
	}
	_, p := serve(t, "products", "GET", "/products/recommended?user=7")
	if n := len(p["products"].([]any)); n != 2 {
		t.Errorf("got %d recommended products, want 2", n)
	}
}

func TestUnknownService(t *testing.T) {
	if _, err := newHandler("payments", "x", hclog.NewNullLogger()); err == nil {
		t.Fatal("newHandler accepted an unknown service name")
	}
}

func TestHealthOnEveryMethodIsNotRouted(t *testing.T) {
	// Only GET is a health check; anything else falls to the JSON 404 so a
	// misconfigured probe is noticed rather than silently passing.
	rec, _ := serve(t, "users", http.MethodPost, "/health")
	if rec.Code != http.StatusNotFound {
		t.Errorf("POST /health = %d, want 404", rec.Code)
	}
}
