// Package grpctest is the gRPC upstream the end-to-end tests and the
// benchmark put behind the gateway: grpc-go's interop TestService
// (unary, server streaming, full duplex), implemented so a test can see
// what reached the upstream (metadata, the deadline) and make it answer
// what it needs (a status, a wait for the deadline).
package grpctest

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Metadata keys the Service understands.
const (
	// EchoKey's values come back in the response headers, and in the
	// trailers under EchoTrailerKey.
	EchoKey        = "x-echo"
	EchoTrailerKey = "x-echo-trailer"
	// WaitKey, with any value, makes UnaryCall wait for its deadline (or
	// cancellation) instead of answering.
	WaitKey = "x-wait"
	// InstanceKey is the header naming the instance that answered.
	InstanceKey = "x-instance"
)

// Service implements grpc.testing.TestService. The zero value is usable;
// Name labels its answers.
type Service struct {
	testpb.UnimplementedTestServiceServer
	// Name is sent in the InstanceKey header of every answer.
	Name string
	// Deadlines, when set, receives how long each UnaryCall that has a
	// deadline had left when it started (-1 for none); never blocks.
	Deadlines chan time.Duration
}

// Register adds s to srv.
func (s *Service) Register(srv *grpc.Server) { testpb.RegisterTestServiceServer(srv, s) }

// Serve runs a grpc-go server of s (its own HTTP/2 transport, cleartext)
// listening on addr ("127.0.0.1:0" for any loopback port). It returns the
// address it listens on and stop, which closes the server and waits for
// it to end.
func Serve(addr string, s *Service) (string, func(), error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := grpc.NewServer()
	s.Register(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	return lis.Addr().String(), func() { srv.Stop(); <-done }, nil
}

// headers sends the echo headers and sets the echo trailers.
func (s *Service) headers(ctx context.Context, send func(metadata.MD) error, trailer func(metadata.MD)) error {
	md, _ := metadata.FromIncomingContext(ctx)
	out := metadata.Pairs(InstanceKey, s.Name)
	tr := metadata.MD{}
	for _, v := range md.Get(EchoKey) {
		out.Append(EchoKey, v)
		tr.Append(EchoTrailerKey, v)
	}
	trailer(tr)
	return send(out)
}

// UnaryCall echoes the payload. A ResponseStatus in the request is
// answered as that status (after the echo headers and trailers).
func (s *Service) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if s.Deadlines != nil {
		left := time.Duration(-1)
		if d, ok := ctx.Deadline(); ok {
			left = time.Until(d)
		}
		select {
		case s.Deadlines <- left:
		default:
		}
	}
	if err := s.headers(ctx, func(md metadata.MD) error { return grpc.SetHeader(ctx, md) },
		func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) }); err != nil {
		return nil, err
	}
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get(WaitKey)) > 0 {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if st := req.GetResponseStatus(); st != nil && st.GetCode() != 0 {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

// StreamingOutputCall sends one message per response parameter, each of
// the size it asks for.
func (s *Service) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	if err := s.headers(stream.Context(), stream.SendHeader, stream.SetTrailer); err != nil {
		return err
	}
	for _, p := range req.GetResponseParameters() {
		body := make([]byte, p.GetSize())
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
	return nil
}

// FullDuplexCall answers each message as it arrives with its payload,
// until the client closes its side.
func (s *Service) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	if err := s.headers(stream.Context(), stream.SendHeader, stream.SetTrailer); err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}
