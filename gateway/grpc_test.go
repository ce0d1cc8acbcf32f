package gateway

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/internal/grpctest"
	"github.com/gatewayco/gateway/registry"
)

// TestClientDeadlineNeverEjectsTheInstance: gRPC calls that run out of
// their client's own (short) grpc-timeout say nothing about the instance,
// while the same calls running out of the route timeout eject it. A real
// grpc-go server, outlier ejection after one failure.
func TestClientDeadlineNeverEjectsTheInstance(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	(&grpctest.Service{Name: "g-1"}).Register(srv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	host, port, _ := net.SplitHostPort(lis.Addr().String())
	p, _ := strconv.Atoi(port)
	insts := fixed(map[string][]registry.Instance{"g": {{ID: "g-1", Address: host, Port: p, Passing: true}}})

	for _, routeTimeout := range []time.Duration{0, 100 * time.Millisecond} {
		gw := New(Options{Proxy: ProxyOptions{OutlierFailures: 1}})
		gw.Publish(newTableBuilder(gw.deps).build([]config.Route{{Name: "g", PathPrefix: "/", Service: "g",
			Balancer: "round_robin", Protocol: config.ProtocolH2C, Timeout: routeTimeout}}, insts, nil))
		glis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: gw, Protocols: new(http.Protocols)}
		hs.Protocols.SetUnencryptedHTTP2(true)
		go func() { _ = hs.Serve(glis) }()
		// A raw HTTP/2 client: it sends grpc-timeout but, unlike grpc-go,
		// never cancels the call itself, so only the gateway's deadline
		// can end it.
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		// The client's deadline is the shorter without a route timeout,
		// the longer with one.
		clientTimeout := "100m"
		if routeTimeout > 0 {
			clientTimeout = "1M"
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+glis.Addr().String()+"/grpc.testing.TestService/UnaryCall",
			bytes.NewReader([]byte{0, 0, 0, 0, 0})) // one empty message
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		req.Header.Set("Grpc-Timeout", clientTimeout)
		req.Header.Set(grpctest.WaitKey, "1")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		code := resp.Header.Get("Grpc-Status") + resp.Trailer.Get("Grpc-Status")
		if code != strconv.Itoa(int(codes.DeadlineExceeded)) {
			t.Errorf("route timeout %v: grpc-status %q, want DEADLINE_EXCEEDED", routeTimeout, code)
		}
		ejected := gw.Table().Routes()[0].InstanceStates(time.Now())[0].Ejected
		if want := routeTimeout > 0; ejected != want {
			t.Errorf("route timeout %v: ejected %v, want %v", routeTimeout, ejected, want)
		}
		tr.CloseIdleConnections()
		hs.Close()
	}
}

// TestGRPCRetriedOnlyWhenNeverSent: with retries, a gRPC call whose
// connection is refused goes to the next instance (it provably never
// reached the first), carrying its whole streamed body; a call an
// instance answered, even with UNAVAILABLE, is never sent again.
func TestGRPCRetriedOnlyWhenNeverSent(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	calls := make(chan time.Duration, 64)
	(&grpctest.Service{Name: "live", Deadlines: calls}).Register(srv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().(*net.TCPAddr)
	dead.Close()
	liveAddr := lis.Addr().(*net.TCPAddr)
	insts := fixed(map[string][]registry.Instance{"g": {
		{ID: "dead", Address: "127.0.0.1", Port: deadAddr.Port, Passing: true},
		{ID: "live", Address: "127.0.0.1", Port: liveAddr.Port, Passing: true},
	}})
	gw := New(Options{Proxy: ProxyOptions{OutlierFailures: -1}})
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{{Name: "g", PathPrefix: "/", Service: "g",
		Balancer: "round_robin", Protocol: config.ProtocolH2C, Policy: config.Policy{Retries: 1}}}, insts, nil))
	glis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: gw, Protocols: new(http.Protocols)}
	hs.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = hs.Serve(glis) }()
	t.Cleanup(func() { hs.Close() })
	cc, err := grpc.NewClient("passthrough:///"+glis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDisableRetry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	client := testpb.NewTestServiceClient(cc)
	for i := range 6 { // round robin starts on each instance three times
		resp, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("body")}})
		if err != nil || string(resp.GetPayload().GetBody()) != "body" {
			t.Fatalf("call %d: %v, %v; want the live instance's echo", i, resp, err)
		}
	}
	if n := len(calls); n != 6 {
		t.Errorf("the live instance got %d calls, want 6", n)
	}
	for len(calls) > 0 {
		<-calls
	}
	// An UNAVAILABLE answer is the instance's: not retried.
	_, err = client.UnaryCall(context.Background(), &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Unavailable), Message: "busy"}})
	if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != "busy" {
		t.Errorf("status %v, want the instance's UNAVAILABLE", err)
	}
	if n := len(calls); n > 1 {
		t.Errorf("an answered call was sent %d times", n)
	}
}

// TestGRPCStreamCutOffEndsInTrailers: an answer already streaming when the
// route timeout passes, or when the upstream resets it, ends with
// grpc-status trailers (DEADLINE_EXCEEDED, UNAVAILABLE) after the
// messages that got through, rather than a reset stream, which gRPC
// clients read as INTERNAL. The upstream here ignores grpc-timeout, as a
// non-Go server may, so only the gateway can end the call.
func TestGRPCStreamCutOffEndsInTrailers(t *testing.T) {
	msg := []byte{0, 0, 0, 0, 1, 'x'} // one 1-byte message
	up := &http.Server{Protocols: new(http.Protocols), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		_, _ = w.Write(msg)
		http.NewResponseController(w).Flush()
		if r.Header.Get("X-Reset") != "" {
			panic(http.ErrAbortHandler)
		}
		<-r.Context().Done()
	})}
	up.Protocols.SetUnencryptedHTTP2(true)
	ulis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = up.Serve(ulis) }()
	t.Cleanup(func() { up.Close() })
	uaddr := ulis.Addr().(*net.TCPAddr)

	gw := New(Options{})
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{{Name: "g", PathPrefix: "/", Service: "g",
		Balancer: "round_robin", Protocol: config.ProtocolH2C, Timeout: 200 * time.Millisecond}},
		fixed(map[string][]registry.Instance{"g": {{ID: "u", Address: "127.0.0.1", Port: uaddr.Port, Passing: true}}}), nil))
	glis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: gw, Protocols: new(http.Protocols)}
	hs.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = hs.Serve(glis) }()
	t.Cleanup(func() { hs.Close() })
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)

	for reset, want := range map[bool]codes.Code{false: codes.DeadlineExceeded, true: codes.Unavailable} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+glis.Addr().String()+"/s.S/M", bytes.NewReader(msg))
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		if reset {
			req.Header.Set("X-Reset", "1")
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(body, msg) {
			t.Errorf("reset %v: body %q, %v; want the message that got through, then a clean end", reset, body, err)
		}
		if got := resp.Trailer.Get("Grpc-Status"); got != strconv.Itoa(int(want)) {
			t.Errorf("reset %v: grpc-status trailer %q, want %d", reset, got, want)
		}
	}
}
