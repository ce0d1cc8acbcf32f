package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/gateway/policy"
)

// routeBreaker is a route's circuit breaker around its upstream, with what
// to answer while it is open. The breaker and the stale cache outlive table
// swaps while the route's circuit_breaker block is unchanged.
type routeBreaker struct {
	cb       *policy.Breaker
	fallback *config.Fallback   // nil: none
	stale    *policy.StaleCache // nil: serve_stale off
}

// errBreakerOpen is what an open breaker without an applicable fallback
// returns; the proxy answers 503 with Retry-After.
type errBreakerOpen struct{ retryAfter time.Duration }

func (e *errBreakerOpen) Error() string { return "circuit breaker open" }
func (e *errBreakerOpen) Unwrap() error { return policy.ErrOpen }

// staleHeader marks a response served from the stale cache.
const staleHeader = "X-Gateway-Stale"

// roundTrip runs send behind the breaker. While open, a GET is answered
// from the stale cache when possible, then the fallback, then an
// errBreakerOpen.
func (b *routeBreaker) roundTrip(req *http.Request, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	done, err := b.cb.Allow()
	if err != nil {
		return b.whenOpen(req)
	}
	resp, err := send(req)
	done(outcome(req, resp, err))
	if err == nil && b.stale != nil && req.Method == http.MethodGet && resp.StatusCode == http.StatusOK && shareable(req, resp) {
		h := resp.Header.Clone()
		h.Del("Set-Cookie")
		resp.Body = &staleRecorder{rc: resp.Body, cache: b.stale, entry: &policy.StaleEntry{
			Key: staleKey(req), Status: resp.StatusCode, Header: h,
		}}
	}
	return resp, err
}

// shareable reports whether an answer may be replayed to other clients
// while the breaker is open, by the rules a shared HTTP cache follows: not
// when the request was personal (credentials or cookies) or the response
// says it is (Set-Cookie, Cache-Control private or no-store, Vary: *).
func shareable(req *http.Request, resp *http.Response) bool {
	if req.Header.Get("Authorization") != "" || req.Header.Get("Cookie") != "" {
		return false
	}
	if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("Vary") == "*" {
		return false
	}
	for _, v := range resp.Header.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(d)) {
			case "private", "no-store":
				return false
			}
		}
	}
	return true
}

// outcome classifies a call for the breaker: 5xx, connection errors and
// timeouts fail; a client's fault (it went away, or its body broke, see
// classify) is excluded; the rest succeed.
func outcome(req *http.Request, resp *http.Response, err error) error {
	switch {
	case err != nil && exchange.ClientFault(req, err):
		return context.Canceled // excluded: not the upstream's doing
	case err != nil:
		return err
	case resp.StatusCode >= 500:
		return fmt.Errorf("%w: status %d", policy.ErrFailed, resp.StatusCode)
	}
	return nil
}

func (b *routeBreaker) whenOpen(req *http.Request) (*http.Response, error) {
	if b.stale != nil && req.Method == http.MethodGet && req.Header.Get("Authorization") == "" && req.Header.Get("Cookie") == "" {
		if e := b.stale.Get(staleKey(req)); e != nil {
			h := e.Header.Clone()
			h.Set(staleHeader, "1")
			return synthetic(req, e.Status, h, e.Body), nil
		}
	}
	if f := b.fallback; f != nil {
		h := http.Header{}
		if f.ContentType != "" {
			h.Set("Content-Type", f.ContentType)
		}
		return synthetic(req, f.Status, h, []byte(f.Body)), nil
	}
	return nil, &errBreakerOpen{retryAfter: b.cb.RetryAfter()}
}

// staleKey names a cached answer: host and request target, so tenants
// behind one host-template route never see each other's answers.
func staleKey(req *http.Request) string { return req.Host + " " + req.URL.RequestURI() }

func synthetic(req *http.Request, status int, h http.Header, body []byte) *http.Response {
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return &http.Response{
		Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), StatusCode: status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}
}

// staleRecorder copies a successful body as it streams to the client and
// caches it once complete; bodies over the cache's limit are not kept.
type staleRecorder struct {
	rc    io.ReadCloser
	cache *policy.StaleCache
	entry *policy.StaleEntry
	buf   bytes.Buffer
	over  bool
}

func (s *staleRecorder) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	if !s.over {
		if s.buf.Len()+n > s.cache.MaxBody() {
			s.over = true
			s.buf = bytes.Buffer{}
		} else {
			s.buf.Write(p[:n])
		}
	}
	if err == io.EOF && !s.over {
		s.entry.Body = bytes.Clone(s.buf.Bytes())
		s.cache.Put(s.entry)
		s.over = true // store once
	}
	return n, err
}

func (s *staleRecorder) Close() error { return s.rc.Close() }
