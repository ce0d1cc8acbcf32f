package acme

import (
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZap returns a zap logger (what certmagic logs to) writing into the
// gateway's hclog logger, so there is still one root logger.
func newZap(l hclog.Logger) *zap.Logger {
	return zap.New(&zapCore{l: l})
}

type zapCore struct {
	l      hclog.Logger
	fields []any
}

func hclogLevel(l zapcore.Level) hclog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return hclog.Debug
	case l == zapcore.InfoLevel:
		return hclog.Info
	case l == zapcore.WarnLevel:
		return hclog.Warn
	default:
		return hclog.Error
	}
}

func (c *zapCore) Enabled(l zapcore.Level) bool {
	return c.l.GetLevel() <= hclogLevel(l)
}

func (c *zapCore) With(fs []zapcore.Field) zapcore.Core {
	return &zapCore{l: c.l, fields: append(append([]any(nil), c.fields...), flatten(fs)...)}
}

func (c *zapCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *zapCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	l := c.l
	// certmagic builds some names as Logger.Name()+".x", which starts
	// with a dot under our unnamed zap logger.
	if name := strings.Trim(e.LoggerName, "."); name != "" {
		l = l.Named(name)
	}
	l.Log(hclogLevel(e.Level), e.Message, append(append([]any(nil), c.fields...), flatten(fs)...)...)
	return nil
}

func (c *zapCore) Sync() error { return nil }

// flatten turns zap fields into hclog's key/value pairs.
func flatten(fs []zapcore.Field) []any {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fs {
		f.AddTo(enc)
	}
	out := make([]any, 0, 2*len(enc.Fields))
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		out = append(out, k, enc.Fields[k])
	}
	return out
}
