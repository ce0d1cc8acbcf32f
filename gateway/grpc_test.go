package gateway

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

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
