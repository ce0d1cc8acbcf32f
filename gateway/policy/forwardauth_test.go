package policy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway/config"
)

type authTransport func(*http.Request) (*http.Response, error)

func (f authTransport) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type closeFlag struct {
	io.Reader
	closed bool
}

func (c *closeFlag) Close() error { c.closed = true; return nil }

// TestForwardAuthEndsItsCallBeforeTheRequest: the auth service's answer is
// closed before the request goes on, so the auth instance's connection
// and in-flight count (what least_request weighs) are not held for as
// long as the upstream takes.
func TestForwardAuthEndsItsCallBeforeTheRequest(t *testing.T) {
	body := &closeFlag{Reader: strings.NewReader("ok")}
	up := authTransport(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: body}, nil
	})
	called := false
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		called = true
		if !body.closed {
			t.Error("the auth answer is still open while the upstream serves")
		}
	})
	h := ForwardAuthenticated("r", &config.ForwardAuth{Service: "auth", Path: "/check", Timeout: time.Second}, up, nil, nil, next)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if !called {
		t.Fatal("the request was not let through")
	}
}
