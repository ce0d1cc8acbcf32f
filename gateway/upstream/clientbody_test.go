package upstream

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
	"time"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/policy"
)

// TestClassifyIsOneVerdictForEveryConsumer: each kind of failed exchange
// gets one verdict, and the breaker, outlier ejection, retries and the
// proxy's answer all follow it.
func TestClassifyIsOneVerdictForEveryConsumer(t *testing.T) {
	refused := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	cases := []struct {
		name      string
		body      error // the client's body fails reading with it; nil: no body
		transport error // what the transport returned; nil: what the body read returned
		want      exchange.Fault
		status    int
	}{
		{"upstream reset", nil, refused, exchange.FaultUpstream, http.StatusBadGateway},
		{"malformed chunked", errors.New("invalid byte in chunk length"), nil, exchange.FaultBodyMalformed, http.StatusBadRequest},
		{"short body", io.ErrUnexpectedEOF, nil, exchange.FaultBodyMalformed, http.StatusBadRequest},
		{"body too large", &http.MaxBytesError{Limit: 1}, nil, exchange.FaultBodyTooLarge, http.StatusRequestEntityTooLarge},
		{"stalled body", timeout, nil, exchange.FaultBodyTimeout, http.StatusRequestTimeout},
		// The transport reports the route deadline, not the body read it
		// cut off; the exchange's record still names the client.
		{"body cut off by the route timeout", timeout, context.DeadlineExceeded, exchange.FaultBodyTimeout, http.StatusRequestTimeout},
		{"body broken, reported as a broken connection", io.ErrUnexpectedEOF, refused, exchange.FaultBodyMalformed, http.StatusBadRequest},
	}
	p := NewProxy(nil, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ex := &exchange.Exchange{Route: "r"}
			var body io.Reader
			if c.body != nil {
				body = iotest.ErrReader(c.body)
			}
			req := httptest.NewRequest("PUT", "/", body)
			req = req.WithContext(exchange.NewContext(req.Context(), ex))
			ex.GuardBody(httptest.NewRecorder(), req, 0)
			err := c.transport
			if c.body != nil {
				_, berr := io.ReadAll(req.Body)
				if err == nil {
					err = berr
				}
			}
			if got := exchange.Classify(req, err); got != c.want {
				t.Fatalf("classify = %d, want %d", got, c.want)
			}
			upstreamFault := c.want == exchange.FaultUpstream
			br := policy.NewRouteBreaker(policy.NewBreaker("r", &config.CircuitBreaker{FailureRatio: 1, MinRequests: 1, OpenTimeout: time.Hour}, nil, nil), &config.CircuitBreaker{})
			_, _ = br.RoundTrip(req, func(*http.Request) (*http.Response, error) { return nil, err })
			if got := br.State() == policy.BreakerOpen; got != upstreamFault {
				t.Errorf("breaker open after one failure = %v, want %v", got, upstreamFault)
			}
			if got := retryWorthy(req, nil, err); got != upstreamFault {
				t.Errorf("retryWorthy = %v, want %v", got, upstreamFault)
			}
			if got := instanceFailed(req, nil, err); got != upstreamFault {
				t.Errorf("outlier verdict = %v, want %v", got, upstreamFault)
			}
			o := balancer.NewOutlierTracker(1, time.Minute, nil)
			h := &balancer.InstanceHealth{}
			o.Record(h, "i", instanceFailed(req, nil, err), err, time.Now())
			if got := h.Ejected(time.Now()); got != upstreamFault {
				t.Errorf("ejected after one failure = %v, want %v", got, upstreamFault)
			}
			rec := httptest.NewRecorder()
			ex.ResponseWriter = rec
			p.upstreamError(rec, req, err)
			if rec.Code != c.status {
				t.Errorf("answer %d, want %d", rec.Code, c.status)
			}
		})
	}
}
