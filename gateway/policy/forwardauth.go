package policy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/tracing"
)

// MsgAuthUnavailable is the 503 a route with forward_auth answers when the
// auth service gives no usable answer.
const MsgAuthUnavailable = "auth service unavailable"

// MsgAuthDenied is the grpc-message of a gRPC call the auth service
// refused; HTTP clients get the auth service's own answer instead.
const MsgAuthDenied = "denied by the auth service"

// hopHeaders are connection-level headers never passed to the auth call
// or back from it.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length",
}

// ForwardAuthenticated asks the auth service, through up, about each
// request: GET cfg.Path with the client's headers and
// X-Forwarded-Method/-Uri/-Host/-Proto/-For. up is the auth service's
// upstream, so the call gets the same instance selection, outlier
// ejection and metrics as any other. A 2xx lets the request through with
// cfg.CopyHeaders copied from the answer (recorded in the exchange, set on
// the upstream request by the proxy); any other answer is returned to the
// client as is. No answer at all (no instance, connection error, timeout),
// or a 2xx whose copy_headers value is not a valid header value, is 503:
// auth fails closed. A request with two Authorization headers is refused
// with 400 before the auth service is asked.
func ForwardAuthenticated(route string, cfg *config.ForwardAuth, up http.RoundTripper, trusted []netip.Prefix, logger hclog.Logger, next http.Handler) http.Handler {
	own := exchange.NewHeaderSet(cfg.CopyHeaders...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		own.Strip(r.Header)
		if !oneCredential(w, r, route, "") {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), cfg.Timeout)
		defer cancel()
		areq, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cfg.Service+cfg.Path, nil)
		if err != nil {
			exchange.WriteError(w, http.StatusServiceUnavailable, MsgAuthUnavailable, route)
			return
		}
		areq.Header = r.Header.Clone()
		for _, h := range hopHeaders {
			areq.Header.Del(h)
		}
		exchange.DropSpoofable(areq.Header, exchange.TrustedPeer(r, trusted))
		areq.Host = r.Host
		proto := "http"
		if r.TLS != nil {
			proto = "https"
		}
		areq.Header.Set("X-Forwarded-Method", r.Method)
		areq.Header.Set("X-Forwarded-Uri", r.URL.RequestURI())
		areq.Header.Set("X-Forwarded-Host", r.Host)
		areq.Header.Set("X-Forwarded-Proto", proto)
		areq.Header.Set("X-Forwarded-For", exchange.ClientAddr(r, trusted))
		var span trace.Span
		if tracing.On() {
			var sctx context.Context
			sctx, span = tracing.Start(ctx, "forward_auth", tracing.KeyRoute.String(route), tracing.KeyService.String(cfg.Service))
			areq = areq.WithContext(sctx)
		}
		resp, err := up.RoundTrip(areq)
		if span != nil {
			tracing.EndAttempt(span, resp, err)
		}
		if err != nil {
			status := http.StatusServiceUnavailable
			if errors.Is(r.Context().Err(), context.Canceled) {
				status = exchange.StatusClientClosed
			}
			exchange.WriteError(w, status, MsgAuthUnavailable, route)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			ex := exchange.From(r.Context())
			for _, h := range cfg.CopyHeaders {
				if vs := resp.Header.Values(h); len(vs) > 0 {
					if err := ex.SetUpstreamHeader(h, vs...); err != nil {
						logger.Warn("auth service answered a header that cannot be forwarded; refusing the request", "route", route, "service", cfg.Service, "error", err)
						exchange.WriteError(w, http.StatusServiceUnavailable, MsgAuthUnavailable, route)
						return
					}
				}
			}
			// The call ends before the request goes on: held open, it
			// would keep the auth instance's connection and in-flight
			// count (what least_request weighs) for as long as the
			// upstream takes.
			_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
			resp.Body.Close()
			next.ServeHTTP(w, r)
			return
		}
		if exchange.IsGRPC(r) {
			// The auth service's answer is HTTP; a gRPC client reads its
			// verdict from grpc-status (401 UNAUTHENTICATED, 403
			// PERMISSION_DENIED, see exchange.GRPCCode).
			exchange.WriteError(w, resp.StatusCode, MsgAuthDenied, route)
			return
		}
		out := w.Header()
		for k, vs := range resp.Header {
			out[k] = vs
		}
		for _, h := range hopHeaders[:len(hopHeaders)-1] { // the length is kept
			out.Del(h)
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
}
