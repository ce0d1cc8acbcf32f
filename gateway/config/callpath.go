package config

import (
	"errors"
	"fmt"
	"strings"
)

// ErrCallPath marks a malformed call path template.
var ErrCallPath = errors.New("malformed call path")

// PathPart is one piece of a call path template: either literal text,
// copied as written, or a placeholder filled per request.
type PathPart struct {
	// Literal is copied verbatim; empty for a placeholder.
	Literal string
	// Var names the placeholder: an aggregate template variable or
	// "query.NAME"; empty for a literal.
	Var string
	// InQuery is set for placeholders after the first '?', whose values are
	// escaped as query components rather than path segments.
	InQuery bool
}

// ParseCallPath splits a call path template such as "/orders?user={id}"
// into literals and placeholders. Placeholder names are letters, digits,
// '_', '-' and '.'; braces must pair up and do not nest.
func ParseCallPath(tpl string) ([]PathPart, error) {
	var parts []PathPart
	inQuery := false
	rest := tpl
	for rest != "" {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			parts = append(parts, PathPart{Literal: rest})
			break
		}
		if rest[open] == '}' {
			return nil, fmt.Errorf("%w: unmatched '}' in %q", ErrCallPath, tpl)
		}
		if open > 0 {
			parts = append(parts, PathPart{Literal: rest[:open]})
			inQuery = inQuery || strings.Contains(rest[:open], "?")
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%w: unclosed '{' in %q", ErrCallPath, tpl)
		}
		name := rest[open+1 : open+end]
		if !validVarName(name) {
			return nil, fmt.Errorf("%w: invalid placeholder {%s} in %q (want {name} or {query.NAME})", ErrCallPath, name, tpl)
		}
		parts = append(parts, PathPart{Var: name, InQuery: inQuery})
		rest = rest[open+end+1:]
	}
	return parts, nil
}

// Placeholders returns the placeholder names of a call path template in
// order of appearance.
func Placeholders(tpl string) ([]string, error) {
	parts, err := ParseCallPath(tpl)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range parts {
		if p.Var != "" {
			names = append(names, p.Var)
		}
	}
	return names, nil
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}
