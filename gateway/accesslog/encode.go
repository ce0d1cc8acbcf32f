package accesslog

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// appendJSON writes the documented schema: every field always present,
// in this order, except query (when the request had one) and the trace
// fields (when the request was traced).
func appendJSON(b []byte, e *Entry) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","duration_ms":`...)
	b = strconv.AppendFloat(b, float64(e.Duration)/float64(time.Millisecond), 'f', 3, 64)
	b = jsonField(b, "method", e.Method)
	b = jsonField(b, "host", e.Host)
	b = jsonField(b, "path", e.Path)
	if e.Query != "" {
		b = jsonField(b, "query", e.Query)
	}
	b = jsonField(b, "protocol", e.Proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = jsonField(b, "route", e.Route)
	b = jsonField(b, "service", e.Service)
	b = jsonField(b, "instance", e.Instance)
	b = append(b, `,"retries":`...)
	b = strconv.AppendInt(b, int64(e.Retries), 10)
	b = jsonField(b, "client_ip", e.ClientIP)
	b = jsonField(b, "user_agent", e.UserAgent)
	b = jsonField(b, "referer", e.Referer)
	b = jsonField(b, "request_id", e.RequestID)
	if e.TraceID != "" {
		b = jsonField(b, "trace_id", e.TraceID)
		b = jsonField(b, "span_id", e.SpanID)
	}
	return append(b, "}\n"...)
}

func jsonField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, v)
}

const hex = "0123456789abcdef"

// appendJSONString quotes s as a JSON string with no control character
// left raw: C0 controls, DEL and the C1 range are \u-escaped, as are
// U+2028 and U+2029 (line breaks to JavaScript); invalid UTF-8 becomes
// U+FFFD, so the line is valid JSON whatever the client sent. s is cut at
// maxField bytes.
func appendJSONString(b []byte, s string) []byte {
	if len(s) > maxField {
		s = s[:maxField]
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r < 0xa0 || r == 0x2028 || r == 0x2029:
			b = append(b, '\\', 'u', hex[r>>12], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendCLF writes `client - - [time] "request line" status bytes`, and
// with combined ` "referer" "user agent"`.
func appendCLF(b []byte, e *Entry, combined bool) []byte {
	b = appendCLFWord(b, e.ClientIP)
	b = append(b, " - - ["...)
	b = e.Time.UTC().AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, `] "`...)
	b = appendCLFString(b, e.Method)
	b = append(b, ' ')
	b = appendCLFString(b, e.URI)
	b = append(b, ' ')
	b = appendCLFString(b, e.Proto)
	b = append(b, `" `...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ' ')
	if e.Bytes == 0 {
		b = append(b, '-')
	} else {
		b = strconv.AppendInt(b, e.Bytes, 10)
	}
	if combined {
		b = append(b, ` "`...)
		b = appendCLFString(b, orDash(e.Referer))
		b = append(b, `" "`...)
		b = appendCLFString(b, orDash(e.UserAgent))
		b = append(b, '"')
	}
	return append(b, '\n')
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// appendCLFWord writes an unquoted field: "-" when empty, spaces escaped
// too, so the field count stays fixed.
func appendCLFWord(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return appendCLFEscaped(b, s, true)
}

func appendCLFString(b []byte, s string) []byte { return appendCLFEscaped(b, s, false) }

// appendCLFEscaped escapes as nginx does in its access log: '"', '\' and
// every byte below 0x20 or from 0x7f up as \xHH, which keeps each entry
// on one line, in plain ASCII, and parseable by quote-splitting parsers.
func appendCLFEscaped(b []byte, s string, space bool) []byte {
	if len(s) > maxField {
		s = s[:maxField]
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || (space && c == ' ') {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}
