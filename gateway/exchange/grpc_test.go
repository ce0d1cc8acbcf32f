package exchange

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestParseGRPCTimeoutIsStrict: only 1 to 8 digits and one unit pass;
// everything else, including what strconv would accept, is malformed.
func TestParseGRPCTimeoutIsStrict(t *testing.T) {
	good := map[string]time.Duration{
		"1S": time.Second, "250m": 250 * time.Millisecond, "0n": 0, "99999999H": math.MaxInt64, "2562047H": 2562047 * time.Hour,
		"5M": 5 * time.Minute, "7u": 7 * time.Microsecond, "00000001S": time.Second,
	}
	for v, want := range good {
		if d, err := ParseGRPCTimeout(v); err != nil || d != want {
			t.Errorf("%q: %v, %v; want %v", v, d, err, want)
		}
	}
	for _, v := range []string{"", "S", "1", "1s", "1h", "-1S", "+1S", " 1S", "1S ", "1.5S", "123456789S", "0x1S", "1SS", "１S"} {
		if _, err := ParseGRPCTimeout(v); !errors.Is(err, ErrGRPCTimeout) {
			t.Errorf("%q accepted", v)
		}
	}
}

// TestFormatGRPCTimeoutRoundTrips: what the gateway sends upstream parses
// back to at least the duration it stands for, within one unit.
func TestFormatGRPCTimeoutRoundTrips(t *testing.T) {
	for _, d := range []time.Duration{time.Nanosecond, 300 * time.Millisecond, 99 * time.Millisecond, 2 * time.Minute, 100 * 24 * time.Hour, 1<<63 - 1} {
		v := FormatGRPCTimeout(d)
		got, err := ParseGRPCTimeout(v)
		if err != nil {
			t.Fatalf("%v formats as %q: %v", d, v, err)
		}
		if got < d {
			t.Errorf("%v formats as %q, which is shorter", d, v)
		}
	}
	if v := FormatGRPCTimeout(-time.Second); v != "0n" {
		t.Errorf("an expired deadline formats as %q", v)
	}
}

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc": true, "application/grpc+proto": true, "application/grpc;charset=utf-8": true,
		"application/grpc-web": false, "application/grpc-web+proto": false, "application/json": false, "": false,
	} {
		r := httptest.NewRequest("POST", "/", nil)
		r.Header.Set("Content-Type", ct)
		if IsGRPC(r) != want {
			t.Errorf("IsGRPC(%q) = %v", ct, !want)
		}
	}
}

// TestWriteErrorAnswersGRPCClientsInGRPCForm: a gRPC request's error,
// written through any wrapper of its exchange, is HTTP 200 with the
// status in headers and no body, while the exchange records the
// gateway's own status for logs and metrics.
func TestWriteErrorAnswersGRPCClientsInGRPCForm(t *testing.T) {
	rec := httptest.NewRecorder()
	ex := &Exchange{ResponseWriter: rec, GRPC: true, RequestID: "id"}
	WriteError(wrapper{ex}, http.StatusTooManyRequests, "slow down: 100%\n", "r")
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("wire: %d with %d body bytes, want 200 and none", rec.Code, rec.Body.Len())
	}
	h := rec.Header()
	if h.Get("Content-Type") != "application/grpc" || h.Get("Grpc-Status") != "8" || h.Get("Grpc-Message") != "slow down: 100%25%0A" {
		t.Errorf("headers %v", h)
	}
	if ex.Status != http.StatusTooManyRequests || h.Get(HeaderRequestID) != "id" {
		t.Errorf("recorded status %d, request id %q", ex.Status, h.Get(HeaderRequestID))
	}

	rec = httptest.NewRecorder()
	WriteError(&Exchange{ResponseWriter: rec}, http.StatusNotFound, MsgNoRoute, "")
	if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("an HTTP client got %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

type wrapper struct{ http.ResponseWriter }

func (w wrapper) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestGRPCCodes(t *testing.T) {
	for status, want := range map[int]int{
		404: grpcUnimplemented, 503: grpcUnavailable, 502: grpcUnavailable, 504: grpcDeadlineExceeded,
		429: grpcResourceExhausted, 401: grpcUnauthenticated, 403: grpcPermissionDenied, 413: grpcResourceExhausted,
		400: grpcInternal, 408: grpcDeadlineExceeded, 418: grpcUnknown,
	} {
		if got := GRPCCode(status); got != want {
			t.Errorf("GRPCCode(%d) = %d, want %d", status, got, want)
		}
	}
}

// TestClientDeadlineIsTheClients: a call bound by the client's own
// grpc-timeout that runs out is the client's fault; bound by the route
// timeout, the upstream's.
func TestClientDeadlineIsTheClients(t *testing.T) {
	for _, client := range []bool{true, false} {
		ex := &Exchange{GRPC: true, ClientDeadline: client}
		ctx, cancel := context.WithDeadline(NewContext(context.Background(), ex), time.Now().Add(-time.Second))
		req := httptest.NewRequest("POST", "/", nil).WithContext(ctx)
		want := FaultUpstream
		if client {
			want = FaultClientDeadline
		}
		if got := Classify(req, context.DeadlineExceeded); got != want {
			t.Errorf("client deadline %v: Classify = %d, want %d", client, got, want)
		}
		cancel()
	}
}
