package config

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// FoldCase maps s to the one spelling every case variant of it shares, as
// case_insensitive routes compare paths: two UTF-8 strings fold alike
// exactly when strings.EqualFold holds for them (simple Unicode case
// folding, so the Kelvin sign folds with k and ſ with s). ASCII folds to
// lower case, so a path already in lower-case ASCII is returned as is,
// without allocating. Bytes that are not UTF-8 are kept as they are, where
// EqualFold would take any two of them for the same.
func FoldCase(s string) string {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			break
		}
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteByte(s[i])
		} else {
			b.WriteRune(foldRune(r))
		}
		i += size
	}
	return b.String()
}

// CutPrefixFold is strings.CutPrefix comparing folded runes, so rest is
// what follows the prefix as s spells it.
func CutPrefixFold(s, prefix string) (rest string, ok bool) {
	for prefix != "" {
		if s == "" {
			return "", false
		}
		pr, pn := utf8.DecodeRuneInString(prefix)
		sr, sn := utf8.DecodeRuneInString(s)
		if pr == utf8.RuneError && pn == 1 || sr == utf8.RuneError && sn == 1 {
			// Not UTF-8: only the same byte matches.
			if s[0] != prefix[0] {
				return "", false
			}
		} else if foldRune(pr) != foldRune(sr) {
			return "", false
		}
		prefix, s = prefix[pn:], s[sn:]
	}
	return s, true
}

// foldRune picks one member of r's case-folding orbit (the runes
// unicode.SimpleFold cycles through) for the whole orbit: the smallest,
// in lower case when that is an ASCII letter.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	if 'A' <= least && least <= 'Z' {
		least += 'a' - 'A'
	}
	return least
}
