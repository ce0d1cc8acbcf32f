package router

import (
	"net/http"
	"testing"
)

func TestCleanPathAndIsCleanAgree(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"/api/users", "/api/users"},
		{"/api/users/", "/api/users/"},
		{"//api//users", "/api/users"},
		{"/api/../admin", "/admin"},
		{"/api/./users", "/api/users"},
		{"/api/users/..", "/api"},
		{"/..", "/"},
		{"/a/.hidden/..x", "/a/.hidden/..x"},
		{"", "/"},
		{"api", "/api"},
	} {
		if got := cleanPath(tc.in); got != tc.want {
			t.Errorf("cleanPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := isClean(tc.in); got != (tc.in == tc.want) {
			t.Errorf("isClean(%q) = %v, want %v", tc.in, got, tc.in == tc.want)
		}
	}
}

func TestCanonicalHost(t *testing.T) {
	for _, tc := range []struct {
		in   string
		tls  bool
		want string
	}{
		{"api.example.com", false, "api.example.com"},
		{"API.example.COM", false, "api.example.com"},
		{"api.example.com..", false, "api.example.com"},
		{"api.example.com:080", false, "api.example.com"},
		{"api.example.com:443", false, "api.example.com:443"},
		{"api.example.com:443", true, "api.example.com"},
		{"api.example.com:80", true, "api.example.com:80"},
		{"Api.Example.Com:8080", false, "api.example.com:8080"},
		{"[::1]:80", false, "[::1]"},
		{"[::1]", false, "[::1]"},
		{"[::1]:8080", false, "[::1]:8080"},
		{"127.0.0.1:80", false, "127.0.0.1"},
		{"", false, ""},
		{".", false, ""},
		{":80", false, ""},
	} {
		got, ok := canonicalHost(tc.in, tc.tls)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("canonicalHost(%q, tls %v) = %q, %v; want %q", tc.in, tc.tls, got, ok, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = canonicalHost("api.example.com:8080", false) }); n != 0 {
		t.Errorf("a canonical host allocated %v times", n)
	}
}

func BenchmarkNormalizeCleanPath(b *testing.B) {
	r, _ := http.NewRequest("GET", "http://x/api/users/42/orders", nil)
	b.ReportAllocs()
	for b.Loop() {
		normalizePath(r)
	}
}
