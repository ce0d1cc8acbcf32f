package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/policy"
)

const (
	msgAuthUnavailable     = "auth service unavailable"
	msgMultipleCredentials = "multiple credentials"
)

type claimsKey struct{}

// claimsFrom returns the verified claims of the request, or nil.
func claimsFrom(ctx context.Context) jwt.MapClaims {
	c, _ := ctx.Value(claimsKey{}).(jwt.MapClaims)
	return c
}

// oneCredential refuses a request carrying more than one Authorization
// header with 400: auth would verify one of them and the upstream might
// use another, so it must never see a token nobody checked. challenge,
// when set, is sent as WWW-Authenticate.
func oneCredential(w http.ResponseWriter, r *http.Request, route, challenge string) bool {
	if len(r.Header.Values("Authorization")) <= 1 {
		return true
	}
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	exchange.WriteError(w, http.StatusBadRequest, msgMultipleCredentials, route)
	return false
}

// jwtAuthenticated lets through only requests with exactly one valid
// bearer token. Client-sent copies of the forward_claims headers are
// always removed, so an upstream can trust them; the verified values are
// recorded in the exchange and set on the upstream request by the proxy.
// A claim that cannot be a header value (a control character) makes the
// token invalid: forwarding it is impossible, and dropping it would hand
// the upstream a partial identity.
func jwtAuthenticated(route string, cfg *config.JWT, v *policy.Verifier, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range cfg.ForwardClaims {
			r.Header.Del(h)
		}
		if !oneCredential(w, r, route, `Bearer error="invalid_request"`) {
			return
		}
		claims, err := v.Verify(r.Context(), r.Header.Get("Authorization"))
		if err == nil {
			err = forwardClaims(exchange.From(r.Context()), cfg.ForwardClaims, claims)
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			exchange.WriteError(w, http.StatusUnauthorized, policy.Reason(err), route)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
	})
}

// forwardClaims records the claims named in forward (claim → header) for
// the upstream request; exchange.ErrHeaderValue when one cannot be a header value.
func forwardClaims(ex *exchange.Exchange, forward map[string]string, claims jwt.MapClaims) error {
	for claim, h := range forward {
		if c, ok := claims[claim]; ok {
			if err := ex.SetUpstreamHeader(h, claimString(c)); err != nil {
				return err
			}
		}
	}
	return nil
}

// claimString renders a claim for a header: strings as they are, anything
// else as JSON.
func claimString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// hopHeaders are connection-level headers never passed to the auth call
// or back from it.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length",
}

// forwardAuthenticated asks the auth service about each request: GET
// cfg.Path with the client's headers and X-Forwarded-Method/-Uri/-Host/
// -Proto/-For. A 2xx lets the request through with cfg.CopyHeaders copied
// from the answer (recorded in the exchange, set on the upstream request
// by the proxy); any other answer is returned to the client as is. No
// answer at all (no instance, connection error, timeout), or a 2xx whose
// copy_headers value is not a valid header value, is 503: auth fails
// closed. A request with two Authorization headers is refused with 400
// before the auth service is asked.
func forwardAuthenticated(route string, cfg *config.ForwardAuth, up *upstream, trusted []netip.Prefix, logger hclog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range cfg.CopyHeaders {
			r.Header.Del(h)
		}
		if !oneCredential(w, r, route, "") {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), cfg.Timeout)
		defer cancel()
		areq, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cfg.Service+cfg.Path, nil)
		if err != nil {
			exchange.WriteError(w, http.StatusServiceUnavailable, msgAuthUnavailable, route)
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
		resp, err := up.RoundTrip(areq)
		if err != nil {
			status := http.StatusServiceUnavailable
			if errors.Is(r.Context().Err(), context.Canceled) {
				status = exchange.StatusClientClosed
			}
			exchange.WriteError(w, status, msgAuthUnavailable, route)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			ex := exchange.From(r.Context())
			for _, h := range cfg.CopyHeaders {
				if vs := resp.Header.Values(h); len(vs) > 0 {
					if err := ex.SetUpstreamHeader(h, vs...); err != nil {
						logger.Warn("auth service answered a header that cannot be forwarded; refusing the request", "route", route, "service", cfg.Service, "error", err)
						exchange.WriteError(w, http.StatusServiceUnavailable, msgAuthUnavailable, route)
						return
					}
				}
			}
			_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
			next.ServeHTTP(w, r)
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
