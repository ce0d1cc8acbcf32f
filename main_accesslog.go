package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayco/gateway/gateway/accesslog"
)

// accessLogFlags are -access-log, -access-log-format and
// -access-log-sample.
type accessLogFlags struct {
	dest   accessLogDest
	format string
	sample float64
}

// accessLogDest is -access-log: "stdout", "off" or a file path. The
// values of the boolean flag it was keep working: -access-log=true
// (stdout) and -access-log=false (off). It is not a boolean flag any
// more, so that "-access-log FILE" takes FILE; a bare -access-log, which
// only repeated the default, now needs a value.
type accessLogDest struct{ v string }

func (d *accessLogDest) String() string { return d.v }

func (d *accessLogDest) Set(s string) error {
	switch s {
	case "true", "on", "stdout":
		s = "stdout"
	case "false", "off":
		s = "off"
	case "":
		return errors.New("empty; want stdout, off or a file path")
	}
	d.v = s
	return nil
}

func addAccessLogFlags(fs *flag.FlagSet, f *accessLogFlags) {
	f.dest.v = "stdout"
	fs.Var(&f.dest, "access-log", "where the access log goes: stdout, off, or a file path (reopened on SIGHUP)")
	fs.StringVar(&f.format, "access-log-format", "json", "access log format: json, combined or common")
	fs.Float64Var(&f.sample, "access-log-sample", 1, "share of successful (below 400) requests logged, 0 to 1; errors are always logged")
}

func (f accessLogFlags) check() error {
	if _, err := accesslog.ParseFormat(f.format); err != nil {
		return fmt.Errorf("%w: -access-log-format: %w", errUsage, err)
	}
	if f.sample < 0 || f.sample > 1 {
		return fmt.Errorf("%w: -access-log-sample must be between 0 and 1", errUsage)
	}
	return nil
}

// accessLogErrorEvery spaces out the log lines about a failing access log
// (a full disk fails every write).
const accessLogErrorEvery = time.Minute

// accessLogFlushTimeout bounds writing what is queued at exit.
const accessLogFlushTimeout = 5 * time.Second

// openAccessLog starts the access log the flags ask for (nil with off),
// counts its dropped entries in reg, and reopens its file on SIGHUP
// until stop is called.
func openAccessLog(f accessLogFlags, stdout io.Writer, logger hclog.Logger, reg prometheus.Registerer) (l *accesslog.Logger, stop func(), err error) {
	if f.dest.v == "off" || f.dest.v == "" { // "": flags not parsed (tests)
		return nil, func() {}, nil
	}
	format, err := accesslog.ParseFormat(f.format)
	if err != nil {
		return nil, nil, err
	}
	sample := f.sample
	if sample == 0 {
		sample = -1 // only errors; the package reads zero as "all"
	}
	var last time.Time
	onErr := func(err error) { // called from the writer goroutine only
		if now := time.Now(); now.Sub(last) >= accessLogErrorEvery {
			last = now
			logger.Error("access log write failed", "error", err)
		}
	}
	opts := accesslog.Options{Format: format, Sample: sample}
	if f.dest.v == "stdout" {
		l = accesslog.New(stdout, opts, onErr)
	} else if l, err = accesslog.Open(f.dest.v, opts, onErr); err != nil {
		return nil, nil, fmt.Errorf("access log: %w", err)
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "gateway_access_log_dropped_total",
		Help: "Access log entries dropped because the writer fell behind (queue full) or the log was closing.",
	}, func() float64 { return float64(l.Dropped()) }))
	if f.dest.v == "stdout" {
		return l, func() {}, nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				l.Reopen()
			case <-done:
				return
			}
		}
	}()
	return l, func() { signal.Stop(hup); close(done) }, nil
}

// closeAccessLog writes out the queued entries, within a bound.
func closeAccessLog(l *accesslog.Logger, logger hclog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), accessLogFlushTimeout)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		logger.Warn("access log not fully written at exit", "error", err)
	}
}
