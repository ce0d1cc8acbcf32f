package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gatewayco/gateway/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// errFallback is what the test fallback answers: a request that reached
// it did not take the fast path.
var errFallback = errors.New("fallback")

type countingRT struct{ n atomic.Int64 }

func (c *countingRT) RoundTrip(*http.Request) (*http.Response, error) {
	c.n.Add(1)
	return nil, errFallback
}

// newTransport is New with a fallback that counts and fails, its idle
// connections closed when the test ends (before the servers it used).
func newTransport(t *testing.T, o Options) (*Transport, *countingRT) {
	t.Helper()
	fb := &countingRT{}
	if o.Fallback == nil {
		o.Fallback = fb
	}
	tr := New(o)
	t.Cleanup(tr.CloseIdleConnections)
	return tr, fb
}

// poolStats is the pool as the transport sees it: hosts listed, and
// connections open and idle over all of them.
func poolStats(tr *Transport) (hosts, open, idle int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, h := range tr.hosts {
		open += h.open
		idle += len(h.idle)
	}
	return len(tr.hosts), open, idle
}

func waitPoolEmpty(t *testing.T, tr *Transport) {
	t.Helper()
	testkit.WaitFor(t, "the pool holds no host", func() bool {
		h, o, _ := poolStats(tr)
		return h == 0 && o == 0
	})
}

// countingServer is an httptest server that counts the connections it
// accepted and saw closed.
type countingServer struct {
	*httptest.Server
	accepted, closed atomic.Int64
}

func newCountingServer(t *testing.T, h http.Handler) *countingServer {
	t.Helper()
	s := &countingServer{}
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.accepted.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// rawServer is a loopback listener whose connections are served by a
// script, for upstreams net/http's server would never be.
type rawServer struct {
	ln       net.Listener
	accepts  atomic.Int64
	requests atomic.Int64
	received atomic.Int64 // bytes read from clients
	script   func(s *rawServer, c net.Conn, br *bufio.Reader, n int)
	done     chan struct{}

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newRawServer(t *testing.T, script func(s *rawServer, c net.Conn, br *bufio.Reader, n int)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, script: script, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(s.accepts.Add(1))
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				s.script(s, c, bufio.NewReader(&countReader{r: c, n: &s.received}), n)
			}()
		}
	}()
	t.Cleanup(func() {
		close(s.done)
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() }

// read reads one request off br, counting it.
func (s *rawServer) read(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, req.Body)
	s.requests.Add(1)
	return req, nil
}

// want fails t unless the server saw requests requests over accepts
// connections.
func (s *rawServer) want(t *testing.T, requests, accepts int64) {
	t.Helper()
	if r, a := s.requests.Load(), s.accepts.Load(); r != requests || a != accepts {
		t.Fatalf("server saw %d requests over %d connections, want %d over %d", r, a, requests, accepts)
	}
}

// hold blocks until the test ends.
func (s *rawServer) hold() { <-s.done }

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// answerAll answers every request on a connection with a, keeping it
// open.
func answerAll(a string) func(s *rawServer, c net.Conn, br *bufio.Reader, n int) {
	return func(s *rawServer, c net.Conn, br *bufio.Reader, _ int) {
		for {
			if _, err := s.read(br); err != nil {
				return
			}
			if _, err := io.WriteString(c, a); err != nil {
				return
			}
		}
	}
}

func newReq(t *testing.T, ctx context.Context, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// do sends a bodiless request and reads the whole answer.
func do(t *testing.T, tr http.RoundTripper, method, url string) (*http.Response, string, error) {
	t.Helper()
	res, err := tr.RoundTrip(newReq(t, context.Background(), method, url))
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, string(b), err
}

func mustGet(t *testing.T, tr http.RoundTripper, url, want string) {
	t.Helper()
	res, body, err := do(t, tr, http.MethodGet, url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if res.StatusCode != http.StatusOK || body != want {
		t.Fatalf("GET %s: %d %q, want 200 %q", url, res.StatusCode, body, want)
	}
}

func hello(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hello") }

func TestSequentialGetsShareOneConnection(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(hello))
	tr, fb := newTransport(t, Options{})
	for i := 0; i < 20; i++ {
		mustGet(t, tr, srv.URL, "hello")
	}
	if n := srv.accepted.Load(); n != 1 {
		t.Fatalf("server accepted %d connections for 20 sequential GETs, want 1", n)
	}
	if n := fb.n.Load(); n != 0 {
		t.Fatalf("%d GETs went to the fallback", n)
	}
	if h, o, i := poolStats(tr); h != 1 || o != 1 || i != 1 {
		t.Fatalf("pool: %d hosts, %d open, %d idle; want 1, 1, 1", h, o, i)
	}
}

func TestConcurrentGetsOpenAtMostConcurrency(t *testing.T) {
	const workers = 6
	var maxOpen atomic.Int64
	var tr *Transport
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, o, _ := poolStats(tr)
		for {
			m := maxOpen.Load()
			if int64(o) <= m || maxOpen.CompareAndSwap(m, int64(o)) {
				break
			}
		}
		hello(w, r)
	}))
	tr, _ = newTransport(t, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				res, err := tr.RoundTrip(newReq(t, context.Background(), http.MethodGet, srv.URL))
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := srv.accepted.Load(); n > workers {
		t.Fatalf("server accepted %d connections for %d concurrent clients", n, workers)
	}
	if m := maxOpen.Load(); m > workers {
		t.Fatalf("%d connections open at once for %d concurrent clients", m, workers)
	}
}

func TestMaxIdlePerHostClosesTheRest(t *testing.T) {
	const clients, maxIdle = 5, 2
	var arrived atomic.Int64
	release := make(chan struct{})
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-release
		hello(w, r)
	}))
	tr, _ := newTransport(t, Options{MaxIdlePerHost: maxIdle})
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, body, err := do(t, tr, http.MethodGet, srv.URL); err != nil || body != "hello" {
				t.Errorf("GET: %q %v", body, err)
			}
		}()
	}
	testkit.WaitFor(t, "all clients at the server", func() bool { return arrived.Load() == clients })
	close(release)
	wg.Wait()
	if h, o, i := poolStats(tr); h != 1 || o != maxIdle || i != maxIdle {
		t.Fatalf("pool: %d hosts, %d open, %d idle; want 1, %d, %d", h, o, i, maxIdle, maxIdle)
	}
	testkit.WaitFor(t, "the connections past MaxIdlePerHost closed", func() bool {
		return srv.closed.Load() == clients-maxIdle
	})
}

func TestIdleTimeoutClosesIdleConnections(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(hello))
	tr, _ := newTransport(t, Options{IdleTimeout: 20 * time.Millisecond})
	mustGet(t, tr, srv.URL, "hello")
	waitPoolEmpty(t, tr)
	testkit.WaitFor(t, "the server saw the idle connection closed", func() bool { return srv.closed.Load() == 1 })
	// The host comes back with its next connection.
	mustGet(t, tr, srv.URL, "hello")
	if n := srv.accepted.Load(); n != 2 {
		t.Fatalf("server accepted %d connections, want 2", n)
	}
}

func TestCloseIdleConnections(t *testing.T) {
	a := newCountingServer(t, http.HandlerFunc(hello))
	b := newCountingServer(t, http.HandlerFunc(hello))
	tr, _ := newTransport(t, Options{})
	mustGet(t, tr, a.URL, "hello")
	mustGet(t, tr, b.URL, "hello")
	if h, o, i := poolStats(tr); h != 2 || o != 2 || i != 2 {
		t.Fatalf("pool: %d hosts, %d open, %d idle; want 2, 2, 2", h, o, i)
	}
	tr.CloseIdleConnections()
	if h, o, i := poolStats(tr); h != 0 || o != 0 || i != 0 {
		t.Fatalf("pool after CloseIdleConnections: %d hosts, %d open, %d idle", h, o, i)
	}
	testkit.WaitFor(t, "both servers saw their connection closed", func() bool {
		return a.closed.Load() == 1 && b.closed.Load() == 1
	})
}

// answerOnceThenClose answers one request per connection with a, then
// closes the connection; closed is told when it has.
func answerOnceThenClose(a string, closed chan<- int) func(s *rawServer, c net.Conn, br *bufio.Reader, n int) {
	return func(s *rawServer, c net.Conn, br *bufio.Reader, n int) {
		if _, err := s.read(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, a)
		c.Close()
		closed <- n
	}
}

const okHello = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

// noPeekConn hides the connection's file descriptor, so alive cannot
// look at it: the exchange itself finds a closed connection.
type noPeekConn struct{ net.Conn }

func noPeekDial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return noPeekConn{c}, nil
}

func TestStaleConnectionGetSucceeds(t *testing.T) {
	for _, peek := range []bool{true, false} {
		t.Run(fmt.Sprintf("peek=%v", peek), func(t *testing.T) {
			closed := make(chan int, 4)
			srv := newRawServer(t, answerOnceThenClose(okHello, closed))
			o := Options{}
			if !peek {
				o.Dial = noPeekDial
			}
			tr, _ := newTransport(t, o)
			mustGet(t, tr, srv.url(), "hello")
			<-closed
			// The idle connection is closed by the server; the GET goes
			// out again (or at once) on a new one.
			mustGet(t, tr, srv.url(), "hello")
			srv.want(t, 2, 2)
		})
	}
}

func TestStaleConnectionNonReplayableSentOnce(t *testing.T) {
	for _, method := range []string{http.MethodPost, http.MethodDelete, http.MethodPatch} {
		t.Run(method, func(t *testing.T) {
			closed := make(chan int, 4)
			srv := newRawServer(t, answerOnceThenClose(okHello, closed))
			tr, _ := newTransport(t, Options{})
			mustGet(t, tr, srv.url(), "hello")
			<-closed
			// alive finds the close before anything is sent.
			res, body, err := do(t, tr, method, srv.url())
			if err != nil || res.StatusCode != 200 || body != "hello" {
				t.Fatalf("%s on a connection the server closed: %v %q", method, err, body)
			}
			srv.want(t, 2, 2) // the GET, and the request once
		})
	}
}

// Without the peek, a non-replayable request that found its connection
// closed is an error: it is never sent again.
func TestStaleConnectionNonReplayableNotRetried(t *testing.T) {
	closed := make(chan int, 4)
	srv := newRawServer(t, answerOnceThenClose(okHello, closed))
	tr, _ := newTransport(t, Options{Dial: noPeekDial})
	mustGet(t, tr, srv.url(), "hello")
	<-closed
	if _, _, err := do(t, tr, http.MethodPost, srv.url()); err == nil {
		t.Fatal("POST on a connection the server closed succeeded without a peek")
	}
	if n := srv.accepts.Load(); n != 1 {
		t.Fatalf("server accepted %d connections, want 1: the POST was sent again", n)
	}
	// With an Idempotency-Key it may be sent again.
	mustGet(t, tr, srv.url(), "hello")
	<-closed
	req := newReq(t, context.Background(), http.MethodPost, srv.url())
	req.Header.Set("Idempotency-Key", "k")
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("POST with Idempotency-Key on a closed connection: %v", err)
	}
	res.Body.Close()
	if n := srv.requests.Load(); n != 3 {
		t.Fatalf("server saw %d requests, want 3", n)
	}
}

func TestHeaderTooLarge(t *testing.T) {
	const limit = 64 << 10
	srv := newRawServer(t, func(s *rawServer, c net.Conn, br *bufio.Reader, _ int) {
		if _, err := s.read(br); err != nil {
			return
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Endless: "); err != nil {
			return
		}
		chunk := []byte(strings.Repeat("a", 32<<10))
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	tr, _ := newTransport(t, Options{MaxResponseHeaderBytes: limit})
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := tr.RoundTrip(newReq(t, ctx, http.MethodGet, srv.url()))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("endless header line: %v, want ErrHeaderTooLarge", err)
	}
	// The line is gathered in memory up to the bound; growing it by
	// doubling costs a few times the bound, never the stream.
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > 32*limit {
		t.Fatalf("reading a head bounded at %d B allocated %d B", limit, alloc)
	}
	t.Logf("a head bounded at %d B allocated %d B", limit, alloc)
	waitPoolEmpty(t, tr)
}

func TestHeaderTooLargeManyFields(t *testing.T) {
	srv := newRawServer(t, answerAll("HTTP/1.1 200 OK\r\n"+strings.Repeat("X-A: b\r\n", 1000)+"Content-Length: 0\r\n\r\n"))
	tr, _ := newTransport(t, Options{MaxResponseHeaderBytes: 4 << 10})
	if _, _, err := do(t, tr, http.MethodGet, srv.url()); !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("8 kB of fields under a 4 kB bound: %v, want ErrHeaderTooLarge", err)
	}
	tr2, _ := newTransport(t, Options{MaxResponseHeaderBytes: 16 << 10})
	if res, _, err := do(t, tr2, http.MethodGet, srv.url()); err != nil || len(res.Header["X-A"]) != 1000 {
		t.Fatalf("8 kB of fields under a 16 kB bound: %v", err)
	}
}

func early(n int) string {
	return strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", n)
}

func TestInformationalAnswers(t *testing.T) {
	const max = 3
	srv := newRawServer(t, func(s *rawServer, c net.Conn, br *bufio.Reader, _ int) {
		for {
			req, err := s.read(br)
			if err != nil {
				return
			}
			n := max
			if req.URL.Path == "/many" {
				n = max + 1
			}
			if _, err := io.WriteString(c, early(n)+okHello); err != nil {
				return
			}
		}
	})
	tr, _ := newTransport(t, Options{Max1xx: max})

	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	res, err := tr.RoundTrip(newReq(t, ctx, http.MethodGet, srv.url()+"/few"))
	if err != nil {
		t.Fatalf("%d informational answers: %v", max, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "hello" {
		t.Fatalf("final answer %d %q", res.StatusCode, b)
	}
	if len(got) != max || got[0] != "103 </a.css>; rel=preload" {
		t.Fatalf("trace got %q, want %d early hints", got, max)
	}

	_, err = tr.RoundTrip(newReq(t, context.Background(), http.MethodGet, srv.url()+"/many"))
	if !errors.Is(err, ErrTooMany1xx) {
		t.Fatalf("%d informational answers: %v, want ErrTooMany1xx", max+1, err)
	}
	waitPoolEmpty(t, tr)
}

// A trace refusing an informational answer ends the exchange with its
// error.
func TestInformationalTraceError(t *testing.T) {
	srv := newRawServer(t, answerAll(early(1)+okHello))
	tr, _ := newTransport(t, Options{})
	errNo := errors.New("no")
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(int, textproto.MIMEHeader) error { return errNo },
	})
	if _, err := tr.RoundTrip(newReq(t, ctx, http.MethodGet, srv.url())); !errors.Is(err, errNo) {
		t.Fatalf("trace refused a 103: %v", err)
	}
	waitPoolEmpty(t, tr)
}

func TestGarbageStatusLine(t *testing.T) {
	for _, answer := range []string{
		"garbage\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	} {
		t.Run(strings.Fields(answer)[0], func(t *testing.T) {
			srv := newRawServer(t, answerAll(answer))
			tr, _ := newTransport(t, Options{})
			_, body, err := do(t, tr, http.MethodGet, srv.url())
			if err == nil {
				t.Fatalf("answer %q read as %q", answer, body)
			}
			waitPoolEmpty(t, tr)
		})
	}
}

func TestBodyCutShortNotReused(t *testing.T) {
	for name, answer := range map[string]string{
		"length":  "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
		"chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
	} {
		t.Run(name, func(t *testing.T) {
			srv := newRawServer(t, func(s *rawServer, c net.Conn, br *bufio.Reader, n int) {
				if _, err := s.read(br); err != nil {
					return
				}
				_, _ = io.WriteString(c, answer)
			})
			tr, _ := newTransport(t, Options{})
			_, _, err := do(t, tr, http.MethodGet, srv.url())
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("body cut short: %v, want io.ErrUnexpectedEOF", err)
			}
			waitPoolEmpty(t, tr)
		})
	}
}

// Bytes after a complete answer are none of the next request's: the
// connection carrying them is never reused, whether they came with the
// answer or after it had been read.
func TestUnsolicitedBytesNotReused(t *testing.T) {
	const garbage = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ngarbage"
	for _, later := range []bool{false, true} {
		t.Run(fmt.Sprintf("later=%v", later), func(t *testing.T) {
			read := make(chan struct{})
			sent := make(chan struct{})
			srv := newRawServer(t, func(s *rawServer, c net.Conn, br *bufio.Reader, n int) {
				if n > 1 {
					answerAll(okHello)(s, c, br, n)
					return
				}
				if _, err := s.read(br); err != nil {
					return
				}
				if !later {
					_, _ = io.WriteString(c, okHello+garbage)
					s.hold()
					return
				}
				_, _ = io.WriteString(c, okHello)
				<-read
				_, _ = io.WriteString(c, garbage)
				close(sent)
				s.hold()
			})
			tr, _ := newTransport(t, Options{})
			mustGet(t, tr, srv.url(), "hello")
			if later {
				close(read)
				<-sent
				// On loopback, a write returns with the bytes in the
				// peer's receive queue; wait until they are there.
				testkit.WaitFor(t, "the unsolicited bytes at the client", func() bool {
					return unreadBytes(tr) > 0
				})
			}
			mustGet(t, tr, srv.url(), "hello")
			if n := srv.accepts.Load(); n != 2 {
				t.Fatalf("server accepted %d connections, want 2", n)
			}
		})
	}
}

// unreadBytes is nonzero when an idle connection has bytes to read,
// buffered or in its socket (peeked, not consumed).
func unreadBytes(tr *Transport) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, h := range tr.hosts {
		for _, c := range h.idle {
			if c.br.Buffered() > 0 {
				return c.br.Buffered()
			}
			if !c.alive() {
				return 1
			}
		}
	}
	return 0
}

func TestChunkedTrailers(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "hel")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "lo")
		w.Header().Set("X-Sum", "42")
	}))
	tr, _ := newTransport(t, Options{})
	for i := 0; i < 2; i++ {
		res, body, err := do(t, tr, http.MethodGet, srv.URL)
		if err != nil || body != "hello" {
			t.Fatalf("chunked answer: %q %v", body, err)
		}
		if got := res.Trailer.Get("X-Sum"); got != "42" {
			t.Fatalf("trailer X-Sum %q, want 42", got)
		}
	}
	if n := srv.accepted.Load(); n != 1 {
		t.Fatalf("server accepted %d connections, want 1", n)
	}
}

func TestCloseDelimitedBody(t *testing.T) {
	srv := newRawServer(t, func(s *rawServer, c net.Conn, br *bufio.Reader, n int) {
		if _, err := s.read(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nhello")
	})
	tr, _ := newTransport(t, Options{})
	mustGet(t, tr, srv.url(), "hello")
	if h, o, _ := poolStats(tr); h != 0 || o != 0 {
		t.Fatalf("after a close-delimited body: %d hosts, %d open", h, o)
	}
	mustGet(t, tr, srv.url(), "hello")
	if n := srv.accepts.Load(); n != 2 {
		t.Fatalf("server accepted %d connections, want 2", n)
	}
}

func TestBodilessAnswersReuse(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("Content-Length", "100")
			if r.Method != http.MethodHead {
				_, _ = io.WriteString(w, strings.Repeat("x", 100))
			}
		}
	}))
	tr, _ := newTransport(t, Options{})
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodHead, "/", 200}, {http.MethodGet, "/204", 204}, {http.MethodGet, "/304", 304},
		{http.MethodHead, "/", 200}, {http.MethodGet, "/", 200},
	} {
		res, body, err := do(t, tr, c.method, srv.URL+c.path)
		if err != nil || res.StatusCode != c.status {
			t.Fatalf("%s %s: %v %v", c.method, c.path, res, err)
		}
		if c.method == http.MethodHead && (body != "" || res.ContentLength != 100) {
			t.Fatalf("HEAD: body %q, length %d", body, res.ContentLength)
		}
		if h, o, i := poolStats(tr); h != 1 || o != 1 || i != 1 {
			t.Fatalf("after %s %s: %d hosts, %d open, %d idle; want 1, 1, 1", c.method, c.path, h, o, i)
		}
	}
	if n := srv.accepted.Load(); n != 1 {
		t.Fatalf("server accepted %d connections, want 1", n)
	}
}

// roundTripAsync runs RoundTrip on its own goroutine so a test can bound
// how long it takes to come back.
func roundTripAsync(tr http.RoundTripper, req *http.Request) <-chan error {
	ch := make(chan error, 1)
	go func() {
		res, err := tr.RoundTrip(req)
		if res != nil {
			res.Body.Close()
		}
		ch <- err
	}()
	return ch
}

func waitErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(testkit.Timeout):
		t.Fatal("RoundTrip did not come back")
		return nil
	}
}

// neverAnswer is a script that reads one request, never answers, and
// reports when the client closed the connection.
func neverAnswer(got chan<- struct{}, eof chan<- struct{}) func(s *rawServer, c net.Conn, br *bufio.Reader, n int) {
	return func(s *rawServer, c net.Conn, br *bufio.Reader, _ int) {
		if _, err := s.read(br); err != nil {
			return
		}
		got <- struct{}{}
		if _, err := br.ReadByte(); err != nil {
			eof <- struct{}{}
		}
	}
}

func TestCancelWaitingForHead(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the servers close
	got, eof := make(chan struct{}, 1), make(chan struct{}, 1)
	srv := newRawServer(t, neverAnswer(got, eof))
	tr := New(Options{Fallback: &countingRT{}})
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	ch := roundTripAsync(tr, newReq(t, ctx, http.MethodGet, srv.url()))
	<-got
	cancel()
	if err := waitErr(t, ch); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while waiting for the head: %v", err)
	}
	<-eof
	waitPoolEmpty(t, tr)
}

func TestDeadlineWaitingForHead(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the servers close
	got, eof := make(chan struct{}, 1), make(chan struct{}, 1)
	srv := newRawServer(t, neverAnswer(got, eof))
	tr := New(Options{Fallback: &countingRT{}})
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(50*time.Millisecond))
	defer cancel()
	if err := waitErr(t, roundTripAsync(tr, newReq(t, ctx, http.MethodGet, srv.url()))); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline while waiting for the head: %v", err)
	}
	<-eof
	waitPoolEmpty(t, tr)
}

// partialBody answers with a head and part of a body, then holds.
func partialBody(s *rawServer, c net.Conn, br *bufio.Reader, _ int) {
	if _, err := s.read(br); err != nil {
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"); err != nil {
		return
	}
	_, _ = br.ReadByte() // until the client closes
}

func TestCancelMidBody(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the servers close
	srv := newRawServer(t, partialBody)
	tr := New(Options{Fallback: &countingRT{}})
	defer tr.CloseIdleConnections()
	errCause := errors.New("client went away")
	ctx, cancel := context.WithCancelCause(context.Background())
	res, err := tr.RoundTrip(newReq(t, ctx, http.MethodGet, srv.url()))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, 10)
	if _, err := io.ReadFull(res.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel(errCause)
	_, err = res.Body.Read(buf)
	if !errors.Is(err, errCause) {
		t.Fatalf("body read after cancel: %v, want the context's cause", err)
	}
	waitPoolEmpty(t, tr)
}

func TestDeadlineMidBody(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the servers close
	srv := newRawServer(t, partialBody)
	tr := New(Options{Fallback: &countingRT{}})
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res, err := tr.RoundTrip(newReq(t, ctx, http.MethodGet, srv.url()))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if _, err := io.ReadAll(res.Body); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("body read past the deadline: %v", err)
	}
	waitPoolEmpty(t, tr)
}

// A context ended once the whole body was buffered still spoils the
// connection (its deadline is in the past): the body reads to its end,
// and the next request gets a new connection.
func TestCancelAfterBodyBuffered(t *testing.T) {
	srv := newRawServer(t, answerAll(okHello))
	tr, _ := newTransport(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	res, err := tr.RoundTrip(newReq(t, ctx, http.MethodGet, srv.url()))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	c := res.Body.(*body).c
	testkit.WaitFor(t, "the context's watch broke the connection off", c.wasCanceled)
	if b, err := io.ReadAll(res.Body); err != nil || string(b) != "hello" {
		t.Fatalf("buffered body: %q %v", b, err)
	}
	res.Body.Close()
	mustGet(t, tr, srv.url(), "hello")
	if n := srv.accepts.Load(); n != 2 {
		t.Fatalf("server accepted %d connections, want 2", n)
	}
}

func TestFallback(t *testing.T) {
	srv := newRawServer(t, answerAll(okHello))
	tr, fb := newTransport(t, Options{})
	cases := map[string]func(*http.Request){
		"body": func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader("x"))
			r.ContentLength = 1
		},
		"upgrade":   func(r *http.Request) { r.Header.Set("Upgrade", "websocket") },
		"expect":    func(r *http.Request) { r.Header.Set("Expect", "100-continue") },
		"https":     func(r *http.Request) { r.URL.Scheme = "https" },
		"trailer":   func(r *http.Request) { r.Trailer = http.Header{"X-T": {"v"}} },
		"no header": func(r *http.Request) { r.Header = nil },
	}
	for name, mod := range cases {
		req := newReq(t, context.Background(), http.MethodPost, srv.url())
		mod(req)
		before := fb.n.Load()
		if _, err := tr.RoundTrip(req); !errors.Is(err, errFallback) {
			t.Errorf("%s: %v, want the fallback's error", name, err)
		}
		if fb.n.Load() != before+1 {
			t.Errorf("%s: not sent to the fallback", name)
		}
	}
	if n := srv.accepts.Load(); n != 0 {
		t.Fatalf("the fast path dialled %d times for fallback requests", n)
	}
	// What is left takes the fast path.
	for _, body := range []io.ReadCloser{nil, http.NoBody} {
		req := newReq(t, context.Background(), http.MethodPost, srv.url())
		req.Body = body
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	if n := fb.n.Load(); n != int64(len(cases)) {
		t.Fatalf("fallback carried %d requests, want %d", n, len(cases))
	}
}

func TestValidationSendsNothing(t *testing.T) {
	srv := newRawServer(t, answerAll(okHello))
	tr, _ := newTransport(t, Options{})
	cases := map[string]func(*http.Request){
		"value CRLF":     func(r *http.Request) { r.Header["X-A"] = []string{"a\r\nX-Injected: 1"} },
		"value LF":       func(r *http.Request) { r.Header["X-A"] = []string{"a\nb"} },
		"value NUL":      func(r *http.Request) { r.Header["X-A"] = []string{"a\x00b"} },
		"name space":     func(r *http.Request) { r.Header["Bad Name"] = []string{"v"} },
		"name colon":     func(r *http.Request) { r.Header["Bad:Name"] = []string{"v"} },
		"name empty":     func(r *http.Request) { r.Header[""] = []string{"v"} },
		"method space":   func(r *http.Request) { r.Method = "GE T" },
		"method CRLF":    func(r *http.Request) { r.Method = "GET / HTTP/1.1\r\nX:" },
		"no host":        func(r *http.Request) { r.URL.Host = "" },
		"path CTL":       func(r *http.Request) { r.URL.Opaque = "/a\r\nX-Injected: 1" },
		"host header NL": func(r *http.Request) { r.Header["Host"] = []string{"a\nb"} },
	}
	for name, mod := range cases {
		req := newReq(t, context.Background(), http.MethodGet, srv.url())
		mod(req)
		if res, err := tr.RoundTrip(req); err == nil {
			res.Body.Close()
			t.Errorf("%s: sent", name)
		}
	}
	// Every connection opened was closed without a byte.
	testkit.WaitFor(t, "the pool empty", func() bool { h, _, _ := poolStats(tr); return h == 0 })
	if n := srv.received.Load(); n != 0 {
		t.Fatalf("server received %d bytes of refused requests", n)
	}
	if n := srv.requests.Load(); n != 0 {
		t.Fatalf("server received %d refused requests", n)
	}
}

// An invalid Host is sent empty, as net/http's transport does, never
// as it came: it cannot split the request.
func TestInvalidHostSentEmpty(t *testing.T) {
	got := make(chan *http.Request, 1)
	srv := newRawServer(t, func(s *rawServer, c net.Conn, br *bufio.Reader, _ int) {
		req, err := s.read(br)
		if err != nil {
			return
		}
		got <- req
		_, _ = io.WriteString(c, okHello)
	})
	tr, _ := newTransport(t, Options{})
	req := newReq(t, context.Background(), http.MethodGet, srv.url())
	req.Host = "a\r\nX-Injected: 1"
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	r := <-got
	if r.Host != "" || len(r.Header["X-Injected"]) != 0 {
		t.Fatalf("invalid Host sent as Host %q, header %v", r.Host, r.Header)
	}
}

func TestDialFailureIsDialOpError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tr, _ := newTransport(t, Options{})
	_, err = tr.RoundTrip(newReq(t, context.Background(), http.MethodGet, "http://"+addr))
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("dial to a closed port: %#v, want a *net.OpError with Op dial", err)
	}
	waitPoolEmpty(t, tr)
}

func TestBodyCloseBeforeEOFClosesConnection(t *testing.T) {
	srv := newRawServer(t, partialBody)
	tr, _ := newTransport(t, Options{})
	res, err := tr.RoundTrip(newReq(t, context.Background(), http.MethodGet, srv.url()))
	if err != nil {
		t.Fatal(err)
	}
	// All that was sent is read, so nothing is left buffered: only the
	// body's end tells the connection is mid-answer.
	buf := make([]byte, 10)
	if _, err := io.ReadFull(res.Body, buf); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if h, o, _ := poolStats(tr); h != 0 || o != 0 {
		t.Fatalf("after Close before EOF: %d hosts, %d open", h, o)
	}
	if _, err := res.Body.Read(buf); err == nil {
		t.Fatal("read after Close succeeded")
	}
}

// After EOF, a body keeps answering EOF (as net/http's does), even once
// its connection carries another exchange.
func TestBodyReadAfterEOF(t *testing.T) {
	srv := newRawServer(t, answerAll(okHello))
	tr, _ := newTransport(t, Options{})
	res, err := tr.RoundTrip(newReq(t, context.Background(), http.MethodGet, srv.url()))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(res.Body); err != nil || string(b) != "hello" {
		t.Fatalf("%q %v", b, err)
	}
	mustGet(t, tr, srv.url(), "hello") // on the same connection
	for i := 0; i < 2; i++ {
		if n, err := res.Body.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Fatalf("read after EOF: %d, %v; want 0, io.EOF", n, err)
		}
	}
	res.Body.Close()
	if n := srv.accepts.Load(); n != 1 {
		t.Fatalf("server accepted %d connections, want 1", n)
	}
}

func TestBodyCloseUnblocksRead(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the servers close
	srv := newRawServer(t, partialBody)
	tr := New(Options{Fallback: &countingRT{}})
	defer tr.CloseIdleConnections()
	res, err := tr.RoundTrip(newReq(t, context.Background(), http.MethodGet, srv.url()))
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(res.Body)
		readErr <- err
	}()
	// The 10 bytes sent are read; the read then blocks for the rest.
	testkit.WaitFor(t, "the reader blocked on the connection", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, h := range tr.hosts {
			if h.open == 1 {
				return true
			}
		}
		return false
	})
	res.Body.Close()
	if err := waitErr(t, readErr); err == nil {
		t.Fatal("a read blocked across Close ended without an error")
	}
	waitPoolEmpty(t, tr)
}

func TestConcurrentClientsRace(t *testing.T) {
	const clients, each = 50, 10
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			_, _ = io.WriteString(w, "he")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "llo")
		default:
			hello(w, r)
		}
	}))
	tr, _ := newTransport(t, Options{MaxIdlePerHost: 8, IdleTimeout: time.Second})
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				path := "/"
				if (c+i)%2 == 0 {
					path = "/chunked"
				}
				ctx, cancel := context.WithCancel(context.Background())
				res, err := tr.RoundTrip(newReq(t, ctx, http.MethodGet, srv.URL+path))
				if err != nil {
					cancel()
					t.Errorf("GET: %v", err)
					return
				}
				switch (c + i) % 5 {
				case 0: // given up unread
				case 1: // cancelled mid-body
					cancel()
					_, _ = io.Copy(io.Discard, res.Body)
				default:
					if b, err := io.ReadAll(res.Body); err != nil || string(b) != "hello" {
						t.Errorf("GET %s: %q %v", path, b, err)
					}
				}
				res.Body.Close()
				cancel()
				if i%4 == 3 {
					tr.CloseIdleConnections()
				}
			}
		}()
	}
	wg.Wait()
	tr.CloseIdleConnections()
	waitPoolEmpty(t, tr)
}

// FuzzReadAnswer feeds arbitrary upstream bytes to one exchange: it must
// neither panic nor outlast its deadline, and a body is never longer
// than what the upstream sent.
func FuzzReadAnswer(f *testing.F) {
	for _, s := range []string{
		okHello,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n3\r\nabc\r\n0\r\nX: y\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\nclose-delimited",
		early(20) + okHello,
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nraw",
		"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcextra",
		"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
		"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n",
		"garbage",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tr := New(Options{
			Fallback:               &countingRT{},
			MaxResponseHeaderBytes: 4 << 10,
			Dial: func(context.Context, string, string) (net.Conn, error) {
				client, server := net.Pipe()
				go func() {
					defer server.Close()
					if _, err := http.ReadRequest(bufio.NewReader(server)); err != nil {
						return
					}
					_, _ = server.Write(data)
				}()
				return client, nil
			},
		})
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := tr.RoundTrip(newReq(t, ctx, http.MethodGet, "http://upstream.test/"))
		if err != nil {
			return
		}
		n, _ := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if n > int64(len(data)) {
			t.Fatalf("body of %d bytes from %d bytes sent", n, len(data))
		}
		if ctx.Err() != nil {
			t.Fatal("the exchange outlasted its deadline")
		}
	})
}

// BenchmarkSequentialGet is one client's GETs over one kept-alive
// connection: what the pool costs a request, peek included.
func BenchmarkSequentialGet(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(hello))
	defer srv.Close()
	tr := New(Options{Fallback: &countingRT{}})
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}

// A request whose context ended before it was sent goes nowhere, even
// with a kept-alive connection ready: a client that hung up must not
// have its DELETE carried out, and the connection stays good.
func TestEndedContextSendsNothing(t *testing.T) {
	srv := newRawServer(t, answerAll(okHello))
	tr, _ := newTransport(t, Options{})
	mustGet(t, tr, srv.url(), "hello")
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("client hung up")
	cancel(cause)
	for range 20 {
		if _, err := tr.RoundTrip(newReq(t, ctx, http.MethodDelete, srv.url())); !errors.Is(err, cause) {
			t.Fatalf("DELETE with an ended context: %v, want its cause", err)
		}
	}
	srv.want(t, 1, 1) // the GET only
	mustGet(t, tr, srv.url(), "hello")
	srv.want(t, 2, 1) // the kept-alive connection was kept
}

// A GET whose head is too big for one buffer flushes part of it early;
// on a kept-alive connection the upstream had closed, that write breaks
// before anything is read, which is the same close as an empty read:
// the GET goes out again on a new connection instead of failing (a 502
// against a healthy instance). The peek is hidden (noPeekDial) to stand
// for a close racing it.
func TestBrokenWriteOnReusedConnectionIsRetried(t *testing.T) {
	closed := make(chan int, 4)
	srv := newRawServer(t, answerOnceThenClose(okHello, closed))
	tr, _ := newTransport(t, Options{Dial: noPeekDial})
	mustGet(t, tr, srv.url(), "hello")
	<-closed
	req := newReq(t, context.Background(), http.MethodGet, srv.url())
	req.Header.Set("Cookie", strings.Repeat("c", 64<<10))
	var res *http.Response
	var err error
	// The first write may land in the socket before the kernel has seen
	// the close; what matters is that no attempt fails.
	for range 3 {
		if res, err = tr.RoundTrip(req); err != nil {
			t.Fatalf("GET with a 64 KiB head on a closed kept-alive connection: %v", err)
		}
		res.Body.Close()
		<-closed
	}
}
