package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayco/gateway/internal/testkit"
)

// hostile are client-chosen strings that would break a line or a parser
// if written raw.
var hostile = []string{
	"/a\nforged=1", "/b\r\n{\"status\":200}", "/c\x00\x1b[31m", "/d\"quoted\\", "/e\xff\xfe",
	"/f\u2028\u2029", "/g\u0085\u009b", "/h\x7f", "ua\tx",
}

func entry(s string) *Entry {
	return &Entry{Time: time.Date(2026, 12, 2, 1, 2, 3, 456e6, time.UTC), Duration: 1500 * time.Microsecond,
		Method: "GET", Host: s, Path: s, Query: s, URI: s, Proto: "HTTP/1.1", Status: 200, Bytes: 12,
		Route: "r", Service: "svc", Instance: "127.0.0.1:9", Retries: 2, ClientIP: "127.0.0.1",
		UserAgent: s, Referer: s, RequestID: "id-1"}
}

// controlFree: no byte below 0x20 except the final newline, no DEL, no
// C1 control, no line separator.
func controlFree(t *testing.T, line []byte) {
	t.Helper()
	body := bytes.TrimSuffix(line, []byte("\n"))
	for _, r := range string(body) {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == 0x2028 || r == 0x2029 {
			t.Errorf("control character %U in %q", r, line)
		}
	}
}

func TestJSONEntryIsOneValidLineWhateverTheClientSent(t *testing.T) {
	l := newLogger(Options{}, nil)
	for _, s := range hostile {
		line := l.Append(nil, entry(s))
		controlFree(t, line)
		if bytes.Count(line, []byte("\n")) != 1 {
			t.Errorf("%q: not one line: %q", s, line)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%q: invalid JSON %q: %v", s, line, err)
		}
		if m["status"] != 200.0 || m["retries"] != 2.0 || m["duration_ms"] != 1.5 || m["time"] != "2026-12-02T01:02:03.456Z" {
			t.Errorf("%q: fields %v", s, m)
		}
		if m["path"] != string([]rune(s)) {
			t.Errorf("path %q, want %q", m["path"], s)
		}
	}
}

func TestJSONSchemaFieldsAndOrder(t *testing.T) {
	e := entry("/p")
	e.Query, e.TraceID, e.SpanID = "", "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	got := string(newLogger(Options{}, nil).Append(nil, e))
	want := `{"time":"2026-12-02T01:02:03.456Z","duration_ms":1.500,"method":"GET","host":"/p","path":"/p","protocol":"HTTP/1.1","status":200,"bytes":12,"route":"r","service":"svc","instance":"127.0.0.1:9","retries":2,"client_ip":"127.0.0.1","user_agent":"/p","referer":"/p","request_id":"id-1","trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331"}` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestCLFEscapesLikeNginx(t *testing.T) {
	e := entry(`/a"b` + "\n\xff")
	e.URI = "/x?y=\"1\"\r\n"
	got := string((&Logger{format: Combined}).Append(nil, e))
	want := `127.0.0.1 - - [02/Dec/2026:01:02:03 +0000] "GET /x?y=\x221\x22\x0d\x0a HTTP/1.1" 200 12 "/a\x22b\x0a\xff" "/a\x22b\x0a\xff"` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	common := string((&Logger{format: Common}).Append(nil, &Entry{Time: e.Time, Method: "GET", URI: "/", Proto: "HTTP/2.0", Status: 404}))
	if want := `- - - [02/Dec/2026:01:02:03 +0000] "GET / HTTP/2.0" 404 -` + "\n"; common != want {
		t.Errorf("got %q, want %q", common, want)
	}
	for _, s := range hostile {
		controlFree(t, (&Logger{format: Combined}).Append(nil, entry(s)))
	}
}

func TestSamplingKeepsEveryError(t *testing.T) {
	n := 0.0
	l := newLogger(Options{Sample: 0.25, Rand: func() float64 { n += 0.1; return n - 0.1 }}, nil)
	logged := 0
	for range 10 {
		if l.Wants(200) {
			logged++
		}
	}
	if logged != 3 { // 0.0, 0.1, 0.2
		t.Errorf("%d of 10 successes logged at 25 %%, want 3", logged)
	}
	for _, s := range []int{400, 404, 499, 500, 503} {
		if !l.Wants(s) {
			t.Errorf("status %d not logged", s)
		}
	}
	if none := newLogger(Options{Sample: -1}, nil); none.Wants(200) || !none.Wants(500) {
		t.Error("a negative share must log errors only")
	}
	var nilLogger *Logger
	if nilLogger.Wants(500) {
		t.Error("a nil logger wants nothing")
	}
	nilLogger.Log(entry("/")) // must not panic
}

// blockingWriter blocks every Write until released, like a stdout pipe
// nobody reads.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func TestFullQueueDropsInsteadOfBlocking(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	l := New(w, Options{Queue: 4, FlushInterval: time.Millisecond}, nil)
	// Fill the bufio buffer so the writer goroutine blocks in Write.
	big := entry(strings.Repeat("x", maxField))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10000 {
			l.Log(big)
		}
	}()
	select {
	case <-done:
	case <-time.After(testkit.Timeout):
		t.Fatal("Log blocked on a stuck writer")
	}
	if l.Dropped() == 0 {
		t.Fatal("nothing dropped with a stuck writer")
	}
	close(w.release)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := l.Dropped()
	l.Log(big)
	if l.Dropped() != before+1 {
		t.Error("an entry after Close was not counted as dropped")
	}
}

func TestCloseWritesWhatIsQueued(t *testing.T) {
	var buf testkit.Buffer
	l := New(&buf, Options{FlushInterval: time.Hour}, nil)
	for range 100 {
		l.Log(entry("/q"))
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 100 {
		t.Errorf("%d lines written at Close, want 100", n)
	}
}

func TestReopenFollowsARotatedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := Open(path, Options{FlushInterval: time.Millisecond}, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	read := func(p string) string { b, _ := os.ReadFile(p); return string(b) }
	l.Log(entry("/before"))
	testkit.WaitFor(t, "the first line written", func() bool { return strings.Contains(read(path), "/before") })
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	l.Reopen()
	testkit.WaitFor(t, "the new file created", func() bool {
		l.Log(entry("/after"))
		return strings.Contains(read(path), "/after")
	})
	// The reopen is asynchronous: lines queued before the writer got to
	// it may still land in the moved file, but none written before the
	// move may land in the new one.
	if strings.Contains(read(path), "/before") || !strings.Contains(read(path+".1"), "/before") {
		t.Error("lines written before the move are not in the moved file only")
	}
}

// TestLogAllocatesNothing: the request side only copies the entry.
func TestLogAllocatesNothing(t *testing.T) {
	l := New(io.Discard, Options{Queue: 1 << 16}, nil)
	defer l.Close(context.Background())
	e := entry("/p")
	if n := testing.AllocsPerRun(1000, func() { l.Log(e) }); n != 0 {
		t.Errorf("Log allocates %.0f times", n)
	}
	var b []byte
	if n := testing.AllocsPerRun(1000, func() { b = l.Append(b[:0], e) }); n != 0 {
		t.Errorf("encoding allocates %.0f times", n)
	}
}
