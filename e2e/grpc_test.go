package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gatewayco/gateway/internal/grpctest"
	"github.com/gatewayco/gateway/internal/testkit"
)

// grpcPrefix is the path every TestService method lives under.
const grpcPrefix = "/grpc.testing.TestService/"

// startGRPCBackend serves svc with a real grpc-go server (its own HTTP/2
// transport, cleartext) on a loopback port registered in Consul as
// service, instance id.
func startGRPCBackend(t *testing.T, client *api.Client, service, id string, svc *grpctest.Service) string {
	t.Helper()
	addr, stop, err := grpctest.Serve("127.0.0.1:0", svc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	registerInstance(t, client, service, id, addr)
	return addr
}

// dialGRPC is a real grpc-go client of target with creds (nil: cleartext
// HTTP/2 with prior knowledge). Retries are off so that each call the test
// makes is one call through the gateway.
func dialGRPC(t *testing.T, target string, creds credentials.TransportCredentials, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithDisableRetry()}, opts...)
	conn, err := grpc.NewClient("passthrough:///"+target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// grpcRoutes routes TestService to service "grpc" over h2c, and, by host,
// to the same service behind each policy whose refusal a gRPC client must
// read as a gRPC status.
const grpcRoutes = `
route "grpc" {
  path_prefix = "` + grpcPrefix + `"
  service     = "grpc"
  protocol    = "h2c"
}
route "grpc-timeout" {
  host        = "timeout.test"
  path_prefix = "` + grpcPrefix + `"
  service     = "grpc"
  protocol    = "h2c"
  timeout     = "300ms"
}
route "grpc-limited" {
  host        = "limited.test"
  path_prefix = "` + grpcPrefix + `"
  service     = "grpc"
  protocol    = "h2c"
  rate_limit {
    requests_per_second = 0.001
    burst               = 1
  }
}
route "grpc-jwt" {
  host        = "jwt.test"
  path_prefix = "` + grpcPrefix + `"
  service     = "grpc"
  protocol    = "h2c"
  jwt {
    algorithms = ["HS256"]
    secret_env = "` + authEnvSecret + `"
  }
}
route "grpc-denied" {
  host        = "denied.test"
  path_prefix = "` + grpcPrefix + `"
  service     = "grpc"
  protocol    = "h2c"
  forward_auth {
    service = "denier"
    path    = "/check"
  }
}
route "grpc-empty" {
  host        = "empty.test"
  path_prefix = "` + grpcPrefix + `"
  service     = "nobody"
  protocol    = "h2c"
}
route "grpc-dead" {
  host        = "dead.test"
  path_prefix = "` + grpcPrefix + `"
  service     = "dead"
  protocol    = "h2c"
  circuit_breaker {
    failure_ratio = 0.5
    min_requests  = 1
    open_timeout  = "1h"
  }
}
`

// grpcRig is a gateway with -h2c in front of one grpc-go upstream, with
// grpcRoutes.
type grpcRig struct {
	gw  *gatewayProc
	svc *grpctest.Service
}

func startGRPCRig(t *testing.T, extra ...string) *grpcRig {
	t.Helper()
	client, addr := startConsul(t)
	r := &grpcRig{svc: &grpctest.Service{Name: "grpc-1", Deadlines: make(chan time.Duration, 64)}}
	startGRPCBackend(t, client, "grpc", "grpc-1", r.svc)
	startBackendWith(t, client, "denier", "denier-1", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	})
	// An instance nobody listens on: every call to it is refused.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := lis.Addr().String()
	lis.Close()
	registerInstance(t, client, "dead", "dead-1", deadAddr)
	putRoute(t, client, "grpc.hcl", grpcRoutes)
	r.gw = startGateway(t, addr, append([]string{"-h2c", "-max-body-bytes", "4096"}, extra...)...)
	testkit.WaitFor(t, "grpc routes with their instances", func() bool {
		n := 0
		for _, rt := range getRoutes(t, r.gw).Routes {
			if len(rt.Instances) == 1 {
				n++
			}
		}
		return n == 6 // every route but grpc-empty
	})
	return r
}

// deadline is what the upstream saw of the next call's deadline.
func (r *grpcRig) deadline(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-r.svc.Deadlines:
		return d
	case <-time.After(testkit.Timeout):
		t.Fatal("the upstream saw no call")
		return 0
	}
}

// TestGRPCThroughTheGatewayOverH2C proxies a real grpc-go client's calls
// over h2c on the plain listener to a real grpc-go server found in
// Consul: unary, server streaming and full duplex, with metadata both
// ways, trailers, upstream statuses and deadlines.
func TestGRPCThroughTheGatewayOverH2C(t *testing.T) {
	r := startGRPCRig(t)
	checkGRPCCalls(t, r, func(host string) *grpc.ClientConn {
		if host == "" {
			return dialGRPC(t, r.gw.public, nil)
		}
		return dialGRPC(t, r.gw.public, nil, grpc.WithAuthority(host))
	})

	t.Run("HTTP/1.1 keeps working on the same port", func(t *testing.T) {
		resp, err := http.Get(r.gw.url("/nowhere"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.ProtoMajor != 1 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("HTTP/1.1 answer %d %s %q, want the JSON 404", resp.StatusCode, resp.Proto, resp.Header.Get("Content-Type"))
		}
	})
}

// TestGRPCThroughTheGatewayOverTLS makes the same calls on the TLS
// listener, HTTP/2 by ALPN.
func TestGRPCThroughTheGatewayOverTLS(t *testing.T) {
	pair := newCertPair(t, t.TempDir(), "gw", "gw.test", "*.test")
	r := startGRPCRig(t, "-tls-listen", "127.0.0.1:0", "-tls-cert", pair.certFile, "-tls-key", pair.keyFile)
	checkGRPCCalls(t, r, func(host string) *grpc.ClientConn {
		if host == "" {
			host = "gw.test"
		}
		return dialGRPC(t, r.gw.tlsAddr, credentials.NewTLS(&tls.Config{RootCAs: pair.pool, ServerName: host}))
	})
}

// checkGRPCCalls runs every call the gRPC tests make, on connections
// dial makes to the gateway for a host ("": any).
func checkGRPCCalls(t *testing.T, r *grpcRig, dial func(host string) *grpc.ClientConn) {
	conn := dial("")
	tc := testpb.NewTestServiceClient(conn)
	t.Run("unary with metadata and trailers", func(t *testing.T) {
		ctx := metadata.AppendToOutgoingContext(context.Background(), grpctest.EchoKey, "v1", grpctest.EchoKey, "v2")
		var header, trailer metadata.MD
		resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hello")}},
			grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.GetPayload().GetBody()) != "hello" {
			t.Errorf("payload %q, want hello", resp.GetPayload().GetBody())
		}
		if got := header.Get(grpctest.EchoKey); strings.Join(got, ",") != "v1,v2" {
			t.Errorf("echo header %v, want [v1 v2]", got)
		}
		if got := header.Get(grpctest.InstanceKey); len(got) != 1 || got[0] != "grpc-1" {
			t.Errorf("instance header %v", got)
		}
		if got := trailer.Get(grpctest.EchoTrailerKey); strings.Join(got, ",") != "v1,v2" {
			t.Errorf("echo trailer %v, want [v1 v2]", got)
		}
		if d := r.deadline(t); d != -1 {
			t.Errorf("the upstream saw a deadline of %v for a call without one", d)
		}
	})

	t.Run("an upstream's error status and trailers reach the client", func(t *testing.T) {
		ctx := metadata.AppendToOutgoingContext(context.Background(), grpctest.EchoKey, "e")
		var trailer metadata.MD
		_, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{
			Code: int32(codes.FailedPrecondition), Message: "not now: 100% ünïcode"}}, grpc.Trailer(&trailer))
		st := status.Convert(err)
		if st.Code() != codes.FailedPrecondition || st.Message() != "not now: 100% ünïcode" {
			t.Errorf("status %v %q, want FAILED_PRECONDITION as the upstream said", st.Code(), st.Message())
		}
		if got := trailer.Get(grpctest.EchoTrailerKey); len(got) != 1 || got[0] != "e" {
			t.Errorf("echo trailer %v, want [e]", got)
		}
		r.deadline(t)
	})

	t.Run("server streaming", func(t *testing.T) {
		params := make([]*testpb.ResponseParameters, 5)
		for i := range params {
			params[i] = &testpb.ResponseParameters{Size: int32(1000 * (i + 1))}
		}
		ctx := metadata.AppendToOutgoingContext(context.Background(), grpctest.EchoKey, "s")
		stream, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: params})
		if err != nil {
			t.Fatal(err)
		}
		for i := range params {
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if len(m.GetPayload().GetBody()) != 1000*(i+1) {
				t.Fatalf("message %d has %d bytes", i, len(m.GetPayload().GetBody()))
			}
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the last message: %v, want EOF", err)
		}
		if got := stream.Trailer().Get(grpctest.EchoTrailerKey); len(got) != 1 || got[0] != "s" {
			t.Errorf("echo trailer %v, want [s]", got)
		}
	})

	t.Run("full duplex, each answer before the next message", func(t *testing.T) {
		ctx := metadata.AppendToOutgoingContext(context.Background(), grpctest.EchoKey, "d")
		stream, err := tc.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			msg := fmt.Sprintf("ping %d", i)
			if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(msg)}}); err != nil {
				t.Fatal(err)
			}
			// The answer must arrive while the request stream is still
			// open: neither direction is buffered by the gateway.
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			if string(m.GetPayload().GetBody()) != msg {
				t.Fatalf("answer %q, want %q", m.GetPayload().GetBody(), msg)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("after CloseSend: %v, want EOF", err)
		}
		if got := stream.Trailer().Get(grpctest.EchoTrailerKey); len(got) != 1 || got[0] != "d" {
			t.Errorf("echo trailer %v, want [d]", got)
		}
	})

	t.Run("the client's deadline reaches the upstream", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
		if d := r.deadline(t); d <= 0 || d > 20*time.Second {
			t.Errorf("the upstream had %v left, want at most the client's 20s", d)
		}
	})

	t.Run("the route timeout caps the client's deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, grpctest.WaitKey, "1")
		_, err := testpb.NewTestServiceClient(dial("timeout.test")).
			UnaryCall(ctx, &testpb.SimpleRequest{})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("status %v, want DEADLINE_EXCEEDED", err)
		}
		if d := r.deadline(t); d <= 0 || d > 300*time.Millisecond {
			t.Errorf("the upstream had %v left, want at most the route's 300ms", d)
		}
	})

	t.Run("gateway errors in gRPC form", func(t *testing.T) {
		token := hsToken(t, map[string]any{"sub": "u"})
		cases := []struct {
			name, host string
			call       func(testpb.TestServiceClient) error
			want       codes.Code
			msg        string
		}{
			{"no route", "", func(testpb.TestServiceClient) error {
				_, err := testpb.NewUnimplementedServiceClient(conn).UnimplementedCall(context.Background(), &testpb.Empty{})
				return err
			}, codes.Unimplemented, "no route matches the request"},
			{"no healthy instance", "empty.test", unary, codes.Unavailable, "no healthy instance"},
			{"upstream refused", "dead.test", unary, codes.Unavailable, "upstream unavailable"},
			{"breaker open", "dead.test", unary, codes.Unavailable, "circuit breaker open"},
			{"route timeout", "timeout.test", func(c testpb.TestServiceClient) error {
				_, err := c.UnaryCall(metadata.AppendToOutgoingContext(context.Background(), grpctest.WaitKey, "1"), &testpb.SimpleRequest{})
				return err
			}, codes.DeadlineExceeded, ""},
			{"rate limit, first call passes", "limited.test", unary, codes.OK, ""},
			{"rate limit", "limited.test", unary, codes.ResourceExhausted, "rate limit exceeded"},
			{"no token", "jwt.test", unary, codes.Unauthenticated, ""},
			{"with a token", "jwt.test", func(c testpb.TestServiceClient) error {
				_, err := c.UnaryCall(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token), &testpb.SimpleRequest{})
				return err
			}, codes.OK, ""},
			{"forward_auth denies", "denied.test", unary, codes.PermissionDenied, "denied by the auth service"},
			{"body too large", "", func(c testpb.TestServiceClient) error {
				_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 8192)}})
				return err
			}, codes.ResourceExhausted, "request body too large"},
		}
		for _, c := range cases {
			cc := conn
			if c.host != "" {
				cc = dial(c.host)
			}
			err := c.call(testpb.NewTestServiceClient(cc))
			st := status.Convert(err)
			if st.Code() != c.want || (c.msg != "" && st.Message() != c.msg) {
				t.Errorf("%s: status %v %q, want %v %q", c.name, st.Code(), st.Message(), c.want, c.msg)
			}
		}
		// Calls that reached the upstream left their deadlines behind.
		for len(r.svc.Deadlines) > 0 {
			<-r.svc.Deadlines
		}
	})
}

func unary(c testpb.TestServiceClient) error {
	_, err := c.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	return err
}

// TestUpstreamOverHTTPS reaches a TLS upstream (an httptest server with
// HTTP/2 on, serving gRPC and plain HTTP) over protocol "https": verified
// against the test CA with server_name, HTTP/2 by ALPN. A CA the
// upstream's certificate does not chain to fails with 502 at once, and an
// unusable CA file is listed with the document's errors.
func TestUpstreamOverHTTPS(t *testing.T) {
	client, addr := startConsul(t)
	svc := &grpctest.Service{Name: "secure-1"}
	gs := grpc.NewServer()
	svc.Register(gs)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		_, _ = io.WriteString(w, r.Proto)
	}))
	up.EnableHTTP2 = true
	up.StartTLS()
	t.Cleanup(func() { up.Close(); gs.Stop() })
	registerInstance(t, client, "secure", "secure-1", up.Listener.Addr().String())

	caFile := writeFile(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw})))
	wrongFile := writeFile(t, "wrong.pem", string(selfSignedPEM(t)))
	junkFile := writeFile(t, "junk.pem", "not a certificate\n")
	route := func(name, host, prefix, ca string) string {
		return fmt.Sprintf(`route %q {
  host        = %q
  path_prefix = %q
  service     = "secure"
  protocol    = "https"
  upstream_tls {
    ca_file     = %q
    server_name = "example.com"
  }
}
`, name, host, prefix, ca)
	}
	putRoute(t, client, "secure.hcl", route("secure", "secure.test", "/", caFile)+
		route("wrong-ca", "wrong.test", "/", wrongFile)+route("junk-ca", "junk.test", "/", junkFile))
	gw := startGateway(t, addr, "-h2c")
	testkit.WaitFor(t, "secure routes with their instance", func() bool {
		n := 0
		for _, rt := range getRoutes(t, gw).Routes {
			if len(rt.Instances) == 1 {
				n++
			}
		}
		return n == 3
	})
	get := func(host string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, gw.url("/plain"), nil)
		req.Host = host
		resp, err := (&http.Client{Timeout: testkit.Timeout}).Do(req)
		if err != nil {
			t.Fatalf("GET via %s: %v", host, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, body := get("secure.test"); code != http.StatusOK || body != "HTTP/2.0" {
		t.Errorf("plain request over https: %d %q, want 200 HTTP/2.0 (h2 by ALPN)", code, body)
	}
	conn := dialGRPC(t, gw.public, nil, grpc.WithAuthority("secure.test"))
	var header metadata.MD
	if _, err := testpb.NewTestServiceClient(conn).UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.Header(&header)); err != nil {
		t.Fatalf("gRPC over https: %v", err)
	}
	if got := header.Get(grpctest.InstanceKey); len(got) != 1 || got[0] != "secure-1" {
		t.Errorf("instance header %v", got)
	}
	if code, body := get("wrong.test"); code != http.StatusBadGateway {
		t.Errorf("with the wrong CA: %d %q, want 502", code, body)
	}
	if code, body := get("junk.test"); code != http.StatusBadGateway {
		t.Errorf("with an unusable CA file: %d %q, want 502", code, body)
	}
	errs := getRoutes(t, gw).Errors
	if len(errs) != 1 || errs[0].Key != routesPrefix+"secure.hcl" || !strings.Contains(errs[0].Message, "secure.hcl:26:3") ||
		!strings.Contains(errs[0].Message, "junk-ca") {
		t.Errorf("errors %+v, want the junk-ca route's upstream_tls block named", errs)
	}
}

// selfSignedPEM is a CA certificate nothing was signed by.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, DNSNames: []string{"example.com"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
