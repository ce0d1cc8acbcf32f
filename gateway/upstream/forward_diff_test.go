package upstream

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayco/gateway/balancer"
	"github.com/gatewayco/gateway/gateway/exchange"
	"github.com/gatewayco/gateway/registry"
)

// TestForwardMatchesReverseProxy is the differential test of the
// forwarding path: every request of the corpus goes through the gateway
// once by forward and once by httputil.ReverseProxy with the Rewrite the
// gateway used before it (still what WebSocket handshakes go through),
// and what the upstream saw (method, target, Host, header, body,
// trailers) and what the client got (1xx answers, status, header, body,
// trailers, a broken answer) must be the same. The forwarding side runs
// over the plain-HTTP transport the gateway uses (h1's fast path for
// bodiless requests), the reference over net/http's, so the corpus also
// holds h1 to net/http's client. One difference is by design: net/http
// asks an upstream for gzip when the client did not say what it takes
// (and unpacks the answer itself); h1 passes the client's
// Accept-Encoding on as it is, as nginx does.
func TestForwardMatchesReverseProxy(t *testing.T) {
	seen := &seenLog{byCase: map[string]seenRequest{}}
	back := httptest.NewServer(diffBackend(t, seen))
	defer back.Close()
	addr := back.Listener.Addr().(*net.TCPAddr)
	bal, _ := balancer.New(balancer.RoundRobin)
	std, plain := NewTransport(0, 0), NewPlainTransport(0, 0)
	defer std.CloseIdleConnections()
	defer plain.CloseIdleConnections()
	over := func(tr http.RoundTripper) *Upstream {
		return New(Config{Service: registry.ServiceKey{Name: "svc"}, Loads: balancer.NewLoadTracker(), Balancer: bal, Transport: tr,
			Instances: []registry.Instance{{ID: "a", Address: addr.IP.String(), Port: addr.Port, Passing: true}}})
	}
	uStd, uPlain := over(std), over(plain)
	p := NewProxy(nil, nil)
	front := func(viaForward bool) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u := uStd
			if viaForward {
				u = uPlain
			}
			ex := &exchange.Exchange{ResponseWriter: w, Route: "r", RequestID: "rid-" + r.Header.Get("X-Case"), Upstream: u}
			if strings.HasPrefix(r.URL.Path, "/strip") {
				ex.Strip = "/strip"
			}
			r = r.WithContext(exchange.NewContext(r.Context(), ex))
			if viaForward {
				p.forward(r.Context(), ex, r)
			} else {
				p.rp.ServeHTTP(ex, r)
			}
		}))
	}
	viaRP, viaForward := front(false), front(true)
	defer viaRP.Close()
	defer viaForward.Close()

	for i, c := range diffCorpus() {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprint(i)
			want := sendRaw(t, viaRP.Listener.Addr().String(), c, id+"-rp")
			wantSeen := seen.take(id + "-rp")
			if !strings.Contains(strings.ToLower(c.head), "accept-encoding:") && wantSeen.Header.Get("Accept-Encoding") == "gzip" {
				wantSeen.Header.Del("Accept-Encoding") // net/http's own ask; see above
			}
			got := sendRaw(t, viaForward.Listener.Addr().String(), c, id+"-fw")
			gotSeen := seen.take(id + "-fw")
			// ReverseProxy relays the upstream's 100 Continue besides
			// the server's own, one or two by timing; forward relays
			// none and the server sends its one (see fwd.got1xx).
			want.Informational = slices.Compact(want.Informational)
			diffFields(t, "client got", got, want)
			diffFields(t, "upstream saw", gotSeen, wantSeen)
		})
	}
}

// diffCase is one request of the corpus: the raw request head after its
// request line's method and target (Host and X-Case are added), its raw
// body, and the answer the upstream gives (X-Answer).
type diffCase struct {
	name, method, target string
	head                 string // further header lines, each ending in \r\n
	body                 string // raw, as sent (chunked framing included)
	answer               string
}

func diffCorpus() []diffCase {
	chunked := "Transfer-Encoding: chunked\r\n"
	return []diffCase{
		{name: "plain GET", method: "GET", target: "/a/b", answer: "plain"},
		{name: "HEAD", method: "HEAD", target: "/a", answer: "plain"},
		{name: "POST with length", method: "POST", target: "/echo", head: "Content-Length: 5\r\nContent-Type: text/plain\r\n", body: "hello", answer: "echo"},
		{name: "PUT chunked", method: "PUT", target: "/echo", head: chunked, body: "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", answer: "echo"},
		{name: "chunked with trailer", method: "POST", target: "/echo", head: chunked + "Trailer: X-Req-T\r\n", body: "3\r\nabc\r\n0\r\nX-Req-T: v\r\n\r\n", answer: "echo"},
		{name: "empty body length 0", method: "POST", target: "/echo", head: "Content-Length: 0\r\n", answer: "echo"},
		{name: "DELETE", method: "DELETE", target: "/x/1", answer: "plain"},
		{name: "OPTIONS", method: "OPTIONS", target: "/x", answer: "plain"},
		{name: "PATCH", method: "PATCH", target: "/x", head: "Content-Length: 2\r\n", body: "{}", answer: "echo"},
		{name: "custom method", method: "PURGE", target: "/x", answer: "plain"},
		{name: "expect continue", method: "POST", target: "/echo", head: "Expect: 100-continue\r\nContent-Length: 3\r\n", body: "abc", answer: "echo"},
		{name: "query kept", method: "GET", target: "/q?a=1&b=two&c=%2F%20+x", answer: "plain"},
		{name: "query semicolon", method: "GET", target: "/q?a=1;b=2&c=3", answer: "plain"},
		{name: "query bad escape", method: "GET", target: "/q?a=%zz&b=1", answer: "plain"},
		{name: "query trailing percent", method: "GET", target: "/q?a=%", answer: "plain"},
		{name: "encoded slash in path", method: "GET", target: "/a%2Fb/c", answer: "plain"},
		{name: "strip prefix", method: "GET", target: "/strip/x/y?z=1", answer: "plain"},
		{name: "strip prefix raw path", method: "GET", target: "/strip/x%2Fy", answer: "plain"},
		{name: "strip prefix whole", method: "GET", target: "/strip", answer: "plain"},
		{name: "hop-by-hop request headers", method: "GET", target: "/h",
			head: "Connection: keep-alive, X-Secret, x-lower\r\nX-Secret: s\r\nX-Lower: l\r\nKeep-Alive: 300\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\nX-Kept: k\r\n", answer: "plain"},
		{name: "Connection lists gateway headers", method: "GET", target: "/h",
			head: "Connection: X-Request-Id, X-Forwarded-For, X-Forwarded-Proto\r\nX-Request-Id: client\r\n", answer: "plain"},
		{name: "h2c upgrade dropped", method: "GET", target: "/h", head: "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n", answer: "plain"},
		{name: "Te trailers", method: "GET", target: "/h", head: "Te: trailers, deflate\r\n", answer: "trailers"},
		{name: "Te without trailers", method: "GET", target: "/h", head: "Te: gzip\r\n", answer: "plain"},
		{name: "forwarding headers replaced", method: "GET", target: "/h",
			head: "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 1\r\nForwarded: for=1.2.3.4\r\nX-Real-Ip: 1.1.1.1\r\nX_Forwarded_For: x\r\n", answer: "plain"},
		{name: "rewrite headers dropped", method: "GET", target: "/h", head: "X-Original-Url: /admin\r\nX-Http-Method-Override: DELETE\r\n", answer: "plain"},
		{name: "odd header values", method: "GET", target: "/h",
			head: "X-Dup: a\r\nX-Dup: b\r\nX-Empty:\r\nX-Spaces:   padded   \r\nX-Utf8: caf\xc3\xa9\r\nUser-Agent: ua/1\r\nAccept-Encoding: identity\r\n", answer: "plain"},
		{name: "host header kept", method: "GET", target: "/h", head: "", answer: "plain"},
		{name: "1xx passed on", method: "GET", target: "/i", answer: "1xx"},
		{name: "answer hop-by-hop", method: "GET", target: "/r", answer: "hop"},
		{name: "answer trailers", method: "GET", target: "/r", answer: "trailers"},
		{name: "answer announced trailers", method: "GET", target: "/r", head: "Te: trailers\r\n", answer: "announced"},
		{name: "answer chunked stream", method: "GET", target: "/r", answer: "chunked"},
		{name: "answer event stream", method: "GET", target: "/r", answer: "sse"},
		{name: "answer 204", method: "GET", target: "/r", answer: "204"},
		{name: "answer 304", method: "GET", target: "/r", head: "If-None-Match: \"v1\"\r\n", answer: "304"},
		{name: "answer empty", method: "GET", target: "/r", answer: "empty"},
		{name: "answer large", method: "GET", target: "/r", answer: "large"},
		{name: "answer cookies", method: "GET", target: "/r", answer: "cookies"},
		{name: "answer 500", method: "GET", target: "/r", answer: "500"},
		{name: "answer HEAD large", method: "HEAD", target: "/r", answer: "large"},
		{name: "unasked switch", method: "GET", target: "/r", answer: "switch"},
		{name: "answer breaks off", method: "GET", target: "/r", answer: "break"},
		{name: "upstream gone", method: "GET", target: "/r", answer: "hangup"},
		{name: "large request body", method: "POST", target: "/echo", head: "Content-Length: 300000\r\n", body: strings.Repeat("z", 300000), answer: "echo"},
	}
}

// seenRequest is what the upstream saw of one request.
type seenRequest struct {
	Method, RequestURI, Host string
	Header, Trailer          http.Header
	Body                     string
	ContentLength            int64
	TransferEncoding         []string
}

type seenLog struct {
	mu     sync.Mutex
	byCase map[string]seenRequest
}

func (l *seenLog) put(id string, s seenRequest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byCase[id] = s
}

func (l *seenLog) take(id string) seenRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.byCase[id]
	delete(l.byCase, id)
	return s
}

func diffBackend(t *testing.T, seen *seenLog) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h := r.Header.Clone()
		id := h.Get("X-Case")
		// The case's own labels differ between the two runs by design.
		h.Del("X-Case")
		if v := h.Get(exchange.HeaderRequestID); strings.HasPrefix(v, "rid-") {
			h.Set(exchange.HeaderRequestID, "rid")
		}
		seen.put(id, seenRequest{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: h, Trailer: r.Trailer,
			Body: string(body), ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding})
		wh := w.Header()
		switch r.Header.Get("X-Answer") {
		case "plain":
			wh.Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "hello")
		case "echo":
			wh.Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(body)
		case "1xx":
			wh.Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			clear(wh)
			wh.Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "after hints")
		case "hop":
			wh.Set("Connection", "X-Drop, x-drop-too")
			wh.Set("X-Drop", "1")
			wh.Set("X-Drop-Too", "2")
			wh.Set("Keep-Alive", "timeout=5")
			wh.Set("Proxy-Authenticate", "Basic")
			wh.Set("Upgrade", "nothing")
			wh.Set("X-Keep", "k")
			_, _ = io.WriteString(w, "hop")
		case "trailers":
			wh.Set("Trailer", "X-T1")
			_, _ = io.WriteString(w, "body")
			wh.Set("X-T1", "one")
			wh.Set(http.TrailerPrefix+"X-T2", "two")
		case "announced":
			wh.Set("Trailer", "X-T1, X-T3")
			_, _ = io.WriteString(w, "body")
			wh.Set("X-T1", "one")
			wh.Set("X-T3", "three")
		case "chunked":
			for i := range 3 {
				fmt.Fprintf(w, "part %d\n", i)
				_ = http.NewResponseController(w).Flush()
			}
		case "sse":
			wh.Set("Content-Type", "text/event-stream; charset=utf-8")
			_, _ = io.WriteString(w, "data: 1\n\n")
			_ = http.NewResponseController(w).Flush()
			_, _ = io.WriteString(w, "data: 2\n\n")
		case "204":
			w.WriteHeader(http.StatusNoContent)
		case "304":
			wh.Set("Etag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
		case "empty":
			wh.Set("Content-Length", "0")
		case "large":
			wh.Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(bytes.Repeat([]byte("0123456789abcdef"), 1<<16))
		case "cookies":
			wh.Add("Set-Cookie", "a=1; Path=/")
			wh.Add("Set-Cookie", "b=2; HttpOnly")
			wh.Add("Vary", "Accept")
			wh.Add("Vary", "Origin")
		case "500":
			http.Error(w, "broken", http.StatusInternalServerError)
		case "switch", "break", "hangup":
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			switch r.Header.Get("X-Answer") {
			case "switch":
				_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: other\r\n\r\n")
			case "break":
				_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
			}
			_ = brw.Flush()
		}
	})
}

// clientAnswer is what the client got.
type clientAnswer struct {
	Informational []string // status and header of each 1xx
	Status        string
	Header        http.Header
	Body          string
	Trailer       http.Header
	Broken        bool // the answer ended early (the proxy aborted it)
}

func sendRaw(t *testing.T, addr string, c diffCase, id string) clientAnswer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: Example.COM:8080\r\nX-Case: %s\r\nX-Answer: %s\r\n%s\r\n", c.method, c.target, id, c.answer, c.head)
	go func() { _, _ = io.WriteString(conn, head+c.body) }()
	br := bufio.NewReader(conn)
	req := &http.Request{Method: c.method}
	var a clientAnswer
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			a.Broken = true
			return a
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			a.Informational = append(a.Informational, fmt.Sprint(resp.StatusCode, resp.Header))
			continue
		}
		a.Status = resp.Status
		a.Header = resp.Header
		a.Header.Del("Date")
		if v := a.Header.Get(exchange.HeaderRequestID); strings.HasPrefix(v, "rid-") {
			a.Header.Set(exchange.HeaderRequestID, "rid")
		}
		body, err := io.ReadAll(resp.Body)
		a.Body, a.Broken, a.Trailer = string(body), err != nil, resp.Trailer
		return a
	}
}

// diffFields reports each field of the structs got and want that differs,
// long strings shortened.
func diffFields(t *testing.T, what string, got, want any) {
	t.Helper()
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range g.NumField() {
		gf, wf := g.Field(i).Interface(), w.Field(i).Interface()
		if !reflect.DeepEqual(gf, wf) {
			t.Errorf("%s: %s = %s, via ReverseProxy %s", what, g.Type().Field(i).Name, short(gf), short(wf))
		}
	}
}

func short(v any) string {
	s := fmt.Sprintf("%#v", v)
	if len(s) > 300 {
		s = fmt.Sprintf("%s... (%d bytes)", s[:300], len(s))
	}
	return s
}
