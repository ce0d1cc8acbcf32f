package aggregate

import (
	"bytes"
	"encoding/json"
	"errors"
)

// Shaping reads answers already checked with json.Valid, so it splits
// them with this small scanner instead of decoding: members and elements
// are sub-slices of the answer, copied once into the shaped body, and
// only keys with escapes are decoded. The scanner still checks every
// index, so malformed input is an error, never a panic.

// errMalformed is what the scanner reports for input that is not the
// JSON it expected; shaped answers were validated, so it means a bug.
var errMalformed = errors.New("malformed JSON")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// stringEnd returns the index after the string starting at b[i] == '"',
// -1 when it does not end.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); {
		switch b[i] {
		case '\\':
			i += 2
		case '"':
			return i + 1
		default:
			i++
		}
	}
	return -1
}

// valueEnd returns the index after the value starting at b[i], -1 when
// it does not end. Nesting is counted, not recursed into, so depth costs
// no stack.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				if i = stringEnd(b, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	// A number, true, false or null.
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && !isSpace(b[i]) {
		i++
	}
	return i
}

// member is one member of a JSON object: its key, unescaped, the key as
// written (nil for a key the gateway named: a rename, a group), and its
// value as written.
type member struct {
	key string
	raw []byte
	val json.RawMessage
}

// objectMembers splits a JSON object into its members in order; ok is
// false when raw is not an object. budget counts the members against
// MaxShapeItems.
func objectMembers(raw []byte, budget *int) (ms []member, ok bool, err error) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false, nil
	}
	err = scanList(raw, i, '}', budget, func(b []byte, i int) (int, error) {
		if b[i] != '"' {
			return 0, errMalformed
		}
		end := stringEnd(b, i)
		if end < 0 {
			return 0, errMalformed
		}
		m := member{raw: b[i:end]}
		if bytes.IndexByte(m.raw, '\\') < 0 {
			m.key = string(m.raw[1 : len(m.raw)-1])
		} else if err := json.Unmarshal(m.raw, &m.key); err != nil {
			return 0, errMalformed
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return 0, errMalformed
		}
		i = skipSpace(b, i+1)
		end = valueEnd(b, i)
		if end < 0 {
			return 0, errMalformed
		}
		m.val = b[i:end]
		ms = append(ms, m)
		return end, nil
	})
	return ms, true, err
}

// memberValue is the value of raw's member key, the last of repeated
// keys as decoders take it; nil when raw is not an object or has no such
// member.
func memberValue(raw []byte, key string, budget *int) (json.RawMessage, error) {
	ms, _, err := objectMembers(raw, budget)
	if err != nil {
		return nil, err
	}
	var found json.RawMessage
	for _, m := range ms {
		if m.key == key {
			found = m.val
		}
	}
	return found, nil
}

// arrayElements splits a JSON array into its elements; ok is false when
// raw is not an array.
func arrayElements(raw []byte, budget *int) (els []json.RawMessage, ok bool, err error) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return nil, false, nil
	}
	err = scanList(raw, i, ']', budget, func(b []byte, i int) (int, error) {
		end := valueEnd(b, i)
		if end < 0 {
			return 0, errMalformed
		}
		els = append(els, b[i:end])
		return end, nil
	})
	return els, true, err
}

// scanList walks the comma-separated items of the object or array
// opening at b[i], calling item at the start of each; item returns the
// index after it. Every item costs one of budget.
func scanList(b []byte, i int, closer byte, budget *int, item func([]byte, int) (int, error)) error {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return nil
	}
	for {
		if *budget--; *budget < 0 {
			return errShapeTooLarge
		}
		if i >= len(b) {
			return errMalformed
		}
		end, err := item(b, i)
		if err != nil {
			return err
		}
		i = skipSpace(b, end)
		switch {
		case i >= len(b):
			return errMalformed
		case b[i] == closer:
			return nil
		case b[i] != ',':
			return errMalformed
		}
		i = skipSpace(b, i+1)
	}
}

// appendObject encodes members as a JSON object, each key as written
// when it was, else encoded.
func appendObject(b []byte, ms []member) []byte {
	b = append(b, '{')
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		if m.raw != nil {
			b = append(b, m.raw...)
		} else {
			b = appendKey(b, m.key)
		}
		b = append(b, ':')
		b = append(b, m.val...)
	}
	return append(b, '}')
}

// appendKey appends s as a JSON string without HTML escaping, which
// would only make keys longer than the reservation made for them.
func appendKey(b []byte, s string) []byte {
	buf := bytes.NewBuffer(b)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	out := buf.Bytes()
	return out[:len(out)-1] // Encode's newline
}
