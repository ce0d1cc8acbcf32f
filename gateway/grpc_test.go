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

// startGRPCUpstream serves svc with a real grpc-go server on loopback
// until the test ends, and returns it as an instance named id.
func startGRPCUpstream(t *testing.T, id string, svc *grpctest.Service) registry.Instance {
	t.Helper()
	addr, stop, err := grpctest.Serve("127.0.0.1:0", svc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return registry.Instance{ID: id, Address: "127.0.0.1", Port: p, Passing: true}
}

// serveH2C serves h over HTTP/2 cleartext (prior knowledge) on loopback
// until the test ends, and returns its address.
func serveH2C(t *testing.T, h http.Handler) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, Protocols: new(http.Protocols)}
	hs.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = hs.Serve(lis) }()
	t.Cleanup(func() { hs.Close() })
	return lis.Addr().String()
}

// grpcGateway is a gateway with one h2c route "g" (rc fills in the rest)
// to insts, served over h2c; it returns the gateway and its address.
func grpcGateway(t *testing.T, opts Options, rc config.Route, insts ...registry.Instance) (*Gateway, string) {
	t.Helper()
	gw := New(opts)
	rc.Name, rc.PathPrefix, rc.Service, rc.Balancer, rc.Protocol = "g", "/", "g", "round_robin", config.ProtocolH2C
	gw.Publish(newTableBuilder(gw.deps).build([]config.Route{rc}, fixed(map[string][]registry.Instance{"g": insts}), nil))
	return gw, serveH2C(t, gw)
}

// rawGRPC sends one gRPC request with a raw HTTP/2 client, which, unlike
// grpc-go, never ends a call itself: only the gateway's deadline can.
// It returns the message bytes answered, the grpc-status (from the
// headers of a trailers-only answer, or the trailers), and the error
// reading the answer.
func rawGRPC(t *testing.T, addr, path string, header http.Header, body []byte) ([]byte, string, error) {
	t.Helper()
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return got, resp.Header.Get("Grpc-Status") + resp.Trailer.Get("Grpc-Status"), err
}

// emptyMessage is one length-prefixed empty gRPC message.
var emptyMessage = []byte{0, 0, 0, 0, 0}

// TestClientDeadlineNeverEjectsTheInstance: gRPC calls that run out of
// their client's own (short) grpc-timeout say nothing about the instance,
// while the same calls running out of the route timeout eject it. A real
// grpc-go server, outlier ejection after one failure.
func TestClientDeadlineNeverEjectsTheInstance(t *testing.T) {
	inst := startGRPCUpstream(t, "g-1", &grpctest.Service{Name: "g-1"})
	for _, routeTimeout := range []time.Duration{0, 100 * time.Millisecond} {
		gw, addr := grpcGateway(t, Options{Proxy: ProxyOptions{OutlierFailures: 1}}, config.Route{Timeout: routeTimeout}, inst)
		// The client's deadline is the shorter without a route timeout,
		// the longer with one.
		clientTimeout := "100m"
		if routeTimeout > 0 {
			clientTimeout = "1M"
		}
		_, code, _ := rawGRPC(t, addr, "/grpc.testing.TestService/UnaryCall",
			http.Header{"Grpc-Timeout": {clientTimeout}, grpctest.WaitKey: {"1"}}, emptyMessage)
		if code != strconv.Itoa(int(codes.DeadlineExceeded)) {
			t.Errorf("route timeout %v: grpc-status %q, want DEADLINE_EXCEEDED", routeTimeout, code)
		}
		ejected := gw.Table().Routes()[0].InstanceStates(time.Now())[0].Ejected
		if want := routeTimeout > 0; ejected != want {
			t.Errorf("route timeout %v: ejected %v, want %v", routeTimeout, ejected, want)
		}
	}
}

// TestMalformedGRPCTimeoutIsRefused: a grpc-timeout that is not 1 to 8
// digits and a unit is answered INTERNAL without calling the upstream.
func TestMalformedGRPCTimeoutIsRefused(t *testing.T) {
	calls := make(chan time.Duration, 8)
	_, addr := grpcGateway(t, Options{}, config.Route{}, startGRPCUpstream(t, "g-1", &grpctest.Service{Deadlines: calls}))
	for _, v := range []string{"1x", "123456789S", "-1S", "1.5S"} {
		if _, code, _ := rawGRPC(t, addr, "/grpc.testing.TestService/UnaryCall", http.Header{"Grpc-Timeout": {v}}, emptyMessage); code != strconv.Itoa(int(codes.Internal)) {
			t.Errorf("grpc-timeout %q: grpc-status %q, want INTERNAL", v, code)
		}
	}
	if _, code, _ := rawGRPC(t, addr, "/grpc.testing.TestService/UnaryCall", http.Header{"Grpc-Timeout": {"5S"}}, emptyMessage); code != "0" {
		t.Errorf("grpc-timeout 5S: grpc-status %q, want OK", code)
	}
	if n := len(calls); n != 1 {
		t.Errorf("the upstream got %d calls, want only the well-formed one", n)
	}
}

// TestGRPCRetriedOnlyWhenNeverSent: with retries, a gRPC call whose
// connection is refused goes to the next instance (it provably never
// reached the first), carrying its whole streamed body; a call an
// instance answered, even with UNAVAILABLE, is never sent again.
func TestGRPCRetriedOnlyWhenNeverSent(t *testing.T) {
	calls := make(chan time.Duration, 64)
	live := startGRPCUpstream(t, "live", &grpctest.Service{Name: "live", Deadlines: calls})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := registry.Instance{ID: "dead", Address: "127.0.0.1", Port: lis.Addr().(*net.TCPAddr).Port, Passing: true}
	lis.Close()
	_, addr := grpcGateway(t, Options{Proxy: ProxyOptions{OutlierFailures: -1}}, config.Route{Policy: config.Policy{Retries: 1}}, dead, live)
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDisableRetry())
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
	up := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		_, _ = w.Write(msg)
		_ = http.NewResponseController(w).Flush()
		if r.Header.Get("X-Reset") != "" {
			panic(http.ErrAbortHandler)
		}
		<-r.Context().Done()
	}))
	_, port, _ := net.SplitHostPort(up)
	p, _ := strconv.Atoi(port)
	_, addr := grpcGateway(t, Options{}, config.Route{Timeout: 200 * time.Millisecond},
		registry.Instance{ID: "u", Address: "127.0.0.1", Port: p, Passing: true})
	for reset, want := range map[bool]codes.Code{false: codes.DeadlineExceeded, true: codes.Unavailable} {
		h := http.Header{}
		if reset {
			h.Set("X-Reset", "1")
		}
		body, code, err := rawGRPC(t, addr, "/s.S/M", h, msg)
		if err != nil || !bytes.Equal(body, msg) {
			t.Errorf("reset %v: body %q, %v; want the message that got through, then a clean end", reset, body, err)
		}
		if code != strconv.Itoa(int(want)) {
			t.Errorf("reset %v: grpc-status %q, want %d", reset, code, want)
		}
	}
}
