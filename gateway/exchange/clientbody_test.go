package exchange

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"testing/iotest"
)

// TestClassifyNamesWhoseFaultItWas: a body read error, returned or only
// recorded by the exchange, is the client's whatever the transport made of
// it; so is a client that went away; anything else is the upstream's.
func TestClassifyNamesWhoseFaultItWas(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	stalled := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	cases := []struct {
		name     string
		recorded error // the exchange's body recorded it; nil: nothing
		err      error
		gone     bool // the client's context is cancelled
		want     Fault
	}{
		{"upstream reset", nil, reset, false, FaultUpstream},
		{"route timeout", nil, context.DeadlineExceeded, false, FaultUpstream},
		{"client gone", nil, context.Canceled, true, FaultClientGone},
		{"limit crossed", nil, &http.MaxBytesError{Limit: 1}, false, FaultBodyTooLarge},
		{"short body", nil, &clientBodyError{io.ErrUnexpectedEOF}, false, FaultBodyMalformed},
		{"stalled body", nil, &clientBodyError{stalled}, false, FaultBodyTimeout},
		{"recorded, reported as the deadline", &clientBodyError{stalled}, context.DeadlineExceeded, false, FaultBodyTimeout},
		{"recorded, reported as a reset", &clientBodyError{io.ErrUnexpectedEOF}, reset, false, FaultBodyMalformed},
		{"recorded beats a cancelled client", &clientBodyError{&http.MaxBytesError{Limit: 1}}, context.Canceled, true, FaultBodyTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ex := &Exchange{}
			if c.recorded != nil {
				ex.body.failed.Store(c.recorded.(*clientBodyError))
			}
			ctx, cancel := context.WithCancel(NewContext(context.Background(), ex))
			defer cancel()
			if c.gone {
				cancel()
			}
			req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
			got := Classify(req, c.err)
			if got != c.want {
				t.Fatalf("Classify = %d, want %d", got, c.want)
			}
			if ClientFault(req, c.err) != (c.want != FaultUpstream) || got.InBody() != (c.want >= FaultBodyTooLarge) {
				t.Fatalf("ClientFault/InBody disagree with %d", got)
			}
		})
	}
}

// TestGuardedBodyMarksItsErrorsAsTheClients: what a guarded body's read
// fails with is recognisable as a client body error, and stays recorded.
func TestGuardedBodyMarksItsErrorsAsTheClients(t *testing.T) {
	ex := &Exchange{}
	req := httptest.NewRequest("PUT", "/", iotest.ErrReader(io.ErrUnexpectedEOF))
	req = req.WithContext(NewContext(req.Context(), ex))
	ex.GuardBody(httptest.NewRecorder(), req, 0)
	_, err := io.ReadAll(req.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) || BodyError(req, err) == nil {
		t.Fatalf("read error %v is not a client body error", err)
	}
	if BodyError(req, context.DeadlineExceeded) == nil {
		t.Fatal("the recorded body error was lost")
	}
	_ = req.Body.Close()
	if _, err := req.Body.Read(make([]byte, 1)); BodyError(httptest.NewRequest("GET", "/", nil), err) != nil {
		t.Fatal("a read after Close was blamed on the client")
	}
}

// TestDeadlineWhileWaitingOnTheBodyIsTheClients: the route deadline and
// the body's read deadline are the same instant, and the transport may
// report the deadline while the read waiting on the client has not yet
// returned its timeout. The body was not in by the deadline: 408, never
// a failure of the upstream.
func TestDeadlineWhileWaitingOnTheBodyIsTheClients(t *testing.T) {
	release := make(chan struct{})
	waiting := make(chan struct{})
	body := readerFunc(func(p []byte) (int, error) {
		close(waiting)
		<-release
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	})
	ex := &Exchange{}
	ctx, cancel := context.WithTimeout(NewContext(context.Background(), ex), 0)
	defer cancel()
	req := httptest.NewRequest("PUT", "/", io.NopCloser(body)).WithContext(ctx)
	ex.GuardBody(httptest.NewRecorder(), req, 0)
	done := make(chan error, 1)
	go func() { _, err := req.Body.Read(make([]byte, 1)); done <- err }()
	<-waiting
	if got := Classify(req, context.DeadlineExceeded); got != FaultBodyTimeout {
		t.Fatalf("while the read waits: Classify = %d, want FaultBodyTimeout (%d)", got, FaultBodyTimeout)
	}
	// The read's own timeout, arriving after the transport closed the
	// body, still names the client.
	_ = req.Body.Close()
	close(release)
	<-done
	if got := Classify(req, context.DeadlineExceeded); got != FaultBodyTimeout {
		t.Fatalf("after the read timed out: Classify = %d, want FaultBodyTimeout (%d)", got, FaultBodyTimeout)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
