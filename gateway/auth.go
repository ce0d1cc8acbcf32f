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

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/policy"
)

const msgAuthUnavailable = "auth service unavailable"

type claimsKey struct{}

// claimsFrom returns the verified claims of the request, or nil.
func claimsFrom(ctx context.Context) jwt.MapClaims {
	c, _ := ctx.Value(claimsKey{}).(jwt.MapClaims)
	return c
}

// jwtAuthenticated lets through only requests with a valid bearer token.
// Client-sent copies of the forward_claims headers are always removed, so
// an upstream can trust them.
func jwtAuthenticated(route string, cfg *config.JWT, v *policy.Verifier, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range cfg.ForwardClaims {
			r.Header.Del(h)
		}
		claims, err := v.Verify(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, policy.Reason(err), route)
			return
		}
		for claim, h := range cfg.ForwardClaims {
			if v, ok := claims[claim]; ok {
				r.Header.Set(h, claimString(v))
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, claims)))
	})
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
// from the answer; any other answer is returned to the client as is. No
// answer at all (no instance, connection error, timeout) is 503: auth
// fails closed.
func forwardAuthenticated(route string, cfg *config.ForwardAuth, up *upstream, trusted []netip.Prefix, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range cfg.CopyHeaders {
			r.Header.Del(h)
		}
		ctx, cancel := context.WithTimeout(r.Context(), cfg.Timeout)
		defer cancel()
		areq, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cfg.Service+cfg.Path, nil)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, msgAuthUnavailable, route)
			return
		}
		areq.Header = r.Header.Clone()
		for _, h := range hopHeaders {
			areq.Header.Del(h)
		}
		dropSpoofable(areq.Header, trustedPeer(r, trusted))
		areq.Host = r.Host
		proto := "http"
		if r.TLS != nil {
			proto = "https"
		}
		areq.Header.Set("X-Forwarded-Method", r.Method)
		areq.Header.Set("X-Forwarded-Uri", r.URL.RequestURI())
		areq.Header.Set("X-Forwarded-Host", r.Host)
		areq.Header.Set("X-Forwarded-Proto", proto)
		areq.Header.Set("X-Forwarded-For", clientAddr(r, trusted))
		resp, err := up.RoundTrip(areq)
		if err != nil {
			status := http.StatusServiceUnavailable
			if errors.Is(r.Context().Err(), context.Canceled) {
				status = statusClientClosed
			}
			writeError(w, status, msgAuthUnavailable, route)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			for _, h := range cfg.CopyHeaders {
				if vs := resp.Header.Values(h); len(vs) > 0 {
					r.Header[h] = vs
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
