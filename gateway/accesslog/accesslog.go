// Package accesslog writes one line per request, apart from the gateway's
// own logs, in a stable JSON schema or in the Common/Combined Log Format.
// The request path only copies an Entry into a bounded queue; one writer
// goroutine encodes it (append-based, into one reused buffer) and writes
// it through a buffer, so a slow disk or a blocked stdout never holds a
// request up: when the queue is full the entry is dropped and counted.
package accesslog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Format is how entries are written.
type Format int

// The formats -access-log-format names.
const (
	// JSON is one JSON object per line, in the schema docs/operations.md documents.
	JSON Format = iota
	// Common is the NCSA Common Log Format (CLF).
	Common
	// Combined is CLF plus the referer and the user agent.
	Combined
)

// ErrFormat rejects an unknown format name.
var ErrFormat = errors.New("unknown access log format")

// ParseFormat reads a format name: json, common or combined.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "json":
		return JSON, nil
	case "common":
		return Common, nil
	case "combined":
		return Combined, nil
	}
	return 0, fmt.Errorf("%w %q (json, common or combined)", ErrFormat, s)
}

// Entry is one request as logged. Its strings may be the request's own
// (they are immutable); the writer escapes every client-chosen byte.
type Entry struct {
	Time      time.Time // when the request arrived
	Duration  time.Duration
	Method    string
	Host      string
	Path      string // the path as routed
	Query     string // the raw query, without '?'
	URI       string // the request target as received (CLF's request line)
	Proto     string
	Status    int
	Bytes     int64
	Route     string
	Service   string
	Instance  string
	Retries   int
	ClientIP  string
	UserAgent string
	Referer   string
	RequestID string
	TraceID   string // empty when the request is not traced
	SpanID    string
}

// Defaults of Options.
const (
	DefaultQueue         = 1024
	DefaultBufferBytes   = 64 << 10
	DefaultFlushInterval = 200 * time.Millisecond
	// maxField bounds what one field contributes to a line, so a huge
	// URL or header (up to -max-header-bytes) cannot make a huge line.
	maxField = 4096
)

// Options tune a Logger. The zero value logs JSON, every request.
type Options struct {
	Format Format
	// Sample is the share of successful (below 400) requests logged, in
	// [0, 1]; errors are always logged. Zero means 1 (all); a negative
	// share logs errors only.
	Sample float64
	// Rand returns numbers in [0, 1) for sampling; nil means math/rand/v2.
	Rand func() float64
	// Queue bounds the entries waiting for the writer; zero means
	// DefaultQueue.
	Queue int
	// FlushInterval bounds how long a written line may sit in the buffer;
	// zero means DefaultFlushInterval.
	FlushInterval time.Duration
}

// Logger queues entries for its writer goroutine. A nil *Logger logs
// nothing, so callers need no check.
type Logger struct {
	format   Format
	sample   float64
	rand     func() float64
	queue    chan Entry
	reopen   chan struct{}
	stop     chan struct{}
	done     chan struct{}
	closing  atomic.Bool
	dropped  atomic.Uint64
	closeOne sync.Once
	interval time.Duration

	// owned by the writer goroutine
	out  io.Writer
	bw   *bufio.Writer
	buf  []byte
	path string   // the file reopened on Reopen; "" for a plain writer
	file *os.File // the open file when path is set
	err  func(error)
}

// New starts a logger writing to w (stdout, say). onErr, when not nil,
// hears write errors (the writer goes on).
func New(w io.Writer, opts Options, onErr func(error)) *Logger {
	l := newLogger(opts, onErr)
	l.out = w
	l.bw = bufio.NewWriterSize(w, DefaultBufferBytes)
	go l.run()
	return l
}

// Open starts a logger appending to the file at path, created 0644 when
// missing; Reopen reopens it, for log rotation.
func Open(path string, opts Options, onErr func(error)) (*Logger, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	l := newLogger(opts, onErr)
	l.path, l.file, l.out = path, f, f
	l.bw = bufio.NewWriterSize(f, DefaultBufferBytes)
	go l.run()
	return l, nil
}

func openFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
}

func newLogger(opts Options, onErr func(error)) *Logger {
	l := &Logger{format: opts.Format, sample: opts.Sample, rand: opts.Rand, interval: opts.FlushInterval,
		reopen: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), err: onErr,
		buf: make([]byte, 0, 1024)}
	if l.sample == 0 || l.sample > 1 {
		l.sample = 1
	}
	if l.rand == nil {
		l.rand = rand.Float64
	}
	if l.interval <= 0 {
		l.interval = DefaultFlushInterval
	}
	n := opts.Queue
	if n <= 0 {
		n = DefaultQueue
	}
	l.queue = make(chan Entry, n)
	if l.err == nil {
		l.err = func(error) {}
	}
	return l
}

// Wants reports whether a request answered with status is logged: every
// error, and the sampled share of the rest. Callers ask before filling an
// Entry, so an unsampled request costs nothing more.
func (l *Logger) Wants(status int) bool {
	if l == nil {
		return false
	}
	return status >= 400 || l.sample >= 1 || l.rand() < l.sample
}

// Log queues e without blocking: a full queue, or a closed logger, drops
// it and counts it in Dropped.
func (l *Logger) Log(e *Entry) {
	if l == nil {
		return
	}
	if l.closing.Load() {
		l.dropped.Add(1)
		return
	}
	select {
	case l.queue <- *e:
	default:
		l.dropped.Add(1)
	}
}

// Dropped counts the entries lost to a full queue or a closed logger.
func (l *Logger) Dropped() uint64 {
	if l == nil {
		return 0
	}
	return l.dropped.Load()
}

// Reopen asks the writer to reopen its file (after logrotate moved it,
// on SIGHUP); a logger writing to a plain writer ignores it.
func (l *Logger) Reopen() {
	if l == nil {
		return
	}
	select {
	case l.reopen <- struct{}{}:
	default: // one is pending already
	}
}

// Close writes what is queued and stops the writer, waiting at most until
// ctx ends; entries logged afterwards are dropped.
func (l *Logger) Close(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.closeOne.Do(func() {
		l.closing.Store(true)
		close(l.stop)
	})
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("access log flush: %w", ctx.Err())
	}
}

func (l *Logger) run() {
	defer close(l.done)
	tick := time.NewTicker(l.interval)
	defer tick.Stop()
	for {
		select {
		case e := <-l.queue:
			l.write(&e)
		case <-tick.C:
			l.flush()
		case <-l.reopen:
			l.doReopen()
		case <-l.stop:
			for {
				select {
				case e := <-l.queue:
					l.write(&e)
				default:
					l.flush()
					if l.file != nil {
						_ = l.file.Close()
					}
					return
				}
			}
		}
	}
}

func (l *Logger) write(e *Entry) {
	l.buf = l.Append(l.buf[:0], e)
	if _, err := l.bw.Write(l.buf); err != nil {
		l.err(err)
		l.bw.Reset(l.out) // drop what could not be written
	}
	if cap(l.buf) > 64<<10 {
		l.buf = make([]byte, 0, 1024)
	}
}

func (l *Logger) flush() {
	if l.bw.Buffered() == 0 {
		return
	}
	if err := l.bw.Flush(); err != nil {
		l.err(err)
		l.bw.Reset(l.out)
	}
}

func (l *Logger) doReopen() {
	if l.path == "" {
		return
	}
	l.flush()
	f, err := openFile(l.path)
	if err != nil {
		l.err(fmt.Errorf("reopen access log: %w", err))
		return // keep writing to the old file
	}
	_ = l.file.Close()
	l.file, l.out = f, f
	l.bw.Reset(f)
}

// Append encodes e in the logger's format, with its newline, onto b.
func (l *Logger) Append(b []byte, e *Entry) []byte {
	switch l.format {
	case Common, Combined:
		return appendCLF(b, e, l.format == Combined)
	}
	return appendJSON(b, e)
}
