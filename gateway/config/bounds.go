package config

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Route documents come from anyone with write access to the KV prefix, and
// every gateway parses them, at every change and at every start. The HCL
// parser recurses once per nesting level and allocates several hundred
// bytes per token: a 100 KB document of nested brackets exhausts the Go
// stack (a fatal error that recover cannot catch) and a 1 MiB list of small
// literals takes seconds and hundreds of MB. So the bytes are bounded
// before the parser sees them, and the syntax tree before it is decoded.
// Each bound is far above what a real document needs; a document that
// crosses one is rejected like any other invalid document, with an error at
// the place where it crossed.
const (
	// MaxDocumentBytes bounds the size of one document (1 MiB). Consul's
	// own default for a KV value (kv_max_value_size) is 512 KiB, so a
	// default agent refuses larger writes anyway; the bound matters for
	// agents configured above it and for files given to "routes validate".
	// Reported at KEY:1:1.
	MaxDocumentBytes = 1 << 20

	// MaxNestingDepth bounds how deeply a document nests: every open
	// block or object brace, bracket, parenthesis, quoted string, heredoc,
	// template interpolation (${) or directive (%{), and open %{if} or
	// %{for}, counts one level, and so does every operator (-, !, +, ?,
	// ==, a postfix [ index, ...) still pending in the current list item,
	// argument or attribute, because HCL nests unary operators,
	// conditionals, operator chains and index chains as deeply as
	// brackets. The count is taken over the raw bytes with HCL's lexical
	// rules for strings, heredocs, comments and interpolations, and never
	// undercounts the parser's nesting. A route document nests about six
	// levels (route, jwt, an object, a string). Reported where the level
	// past the bound opens.
	MaxNestingDepth = 32

	// MaxDocumentTokens bounds the tokens of one document, counted as HCL
	// does: each word, number, punctuation mark, quote, run of string text
	// and line break. The parser's memory and time grow with tokens, not
	// bytes (1 MiB of "1," is half a million of them); 200,000 tokens
	// hold 5,000 minimal routes or about 3,000 of nine attributes.
	// Reported at the first token past the bound.
	MaxDocumentTokens = 200_000

	// MaxBlocksPerDocument bounds the top-level blocks (routes and
	// aggregates) of one document. A larger configuration is split across
	// keys, which also keeps one bad edit from rejecting all of it.
	// Reported at the first block past the bound.
	MaxBlocksPerDocument = 5_000

	// MaxItemsPerBlock bounds the attributes and nested blocks of any one
	// block (an aggregate's call blocks aside): the longest valid block, a
	// route with every attribute and policy block, has 29 (32 with four
	// mirror blocks, or 36 with MaxSplits split blocks instead of service),
	// so a block past the bound is garbage whose per-item errors would only
	// bury the real ones. Reported at the first item past the bound.
	MaxItemsPerBlock = 64

	// MaxCallsPerAggregate bounds the call blocks of one aggregate: every
	// request to it makes every call. Reported at the first call past the
	// bound.
	MaxCallsPerAggregate = 64

	// MaxTableRoutes bounds the routes and aggregates served from all
	// documents together, the size the table builder and the matcher are
	// measured at. Resolve admits documents oldest first; a document that
	// would take the table past the bound is rejected (keeping its last
	// good version if that still fits), at its first route past it.
	MaxTableRoutes = 10_000

	// MaxReportedErrors bounds the problems reported for one document; the
	// rest are summed up in one last error, so a garbage document cannot
	// flood /routes and the log.
	MaxReportedErrors = 100
)

// Frame kinds of the bounds scanner.
const (
	frameBrace   = iota // top level, block body or object: a line break ends an item
	frameGroup          // ( [ ${ %{: line breaks are insignificant
	frameQuoted         // "…" template
	frameHeredoc        // <<EOT … EOT template
)

// frame is one open nesting level of the bounds scanner.
type frame struct {
	kind  int
	close byte // for frameGroup: ')' or ']', or '}' for ${ and %{
	// pending counts the operators of the current item (code frames) or
	// the open %{if} and %{for} directives (template frames); each is a
	// level of nesting on top of the frame's own.
	pending int
	marker  []byte // for frameHeredoc: the closing marker
}

// boundsScanner walks a document's bytes once, following HCL's lexical
// modes (code, quoted string, heredoc, interpolation, comment) closely
// enough that its nesting count is an upper bound of the parser's. It
// allocates one frame per level, and stops at the first bound crossed.
type boundsScanner struct {
	p         *problems
	src       []byte
	i         int
	line      int // 1-based line of src[i]
	lineStart int // offset of that line's first byte
	stack     []frame
	depth     int // open levels (stack less the top level) plus pending
	deepest   int // the largest depth seen
	tokens    int
	operand   bool // the last token ended an operand, so '[' is an index
	literal   bool // the last token is template text, which s.i continues
	failed    bool
}

// checkBytes reports whether src crosses MaxDocumentBytes, MaxNestingDepth
// or MaxDocumentTokens, recording the problem.
func checkBytes(p *problems, src []byte) bool {
	if len(src) > MaxDocumentBytes {
		p.addf(Pos{}, "%s", sizeMessage)
		return true
	}
	s := newBoundsScanner(p, src)
	s.run()
	return s.failed
}

func newBoundsScanner(p *problems, src []byte) *boundsScanner {
	return &boundsScanner{p: p, src: src, line: 1, stack: make([]frame, 1, 8)}
}

// sizeMessage is the same for Consul documents and files, whose size
// "routes validate" does not read past the bound.
var sizeMessage = fmt.Sprintf("document is larger than %d bytes (1 MiB), the limit; split its routes across several keys", MaxDocumentBytes)

func (s *boundsScanner) run() {
	for s.i < len(s.src) && !s.failed {
		top := &s.stack[len(s.stack)-1]
		switch top.kind {
		case frameQuoted, frameHeredoc:
			s.template(top)
		default:
			s.code(top)
		}
	}
}

// at is the position of src[off], on the current line.
func (s *boundsScanner) at(off int) Pos {
	return Pos{Line: s.line, Column: utf8.RuneCount(s.src[s.lineStart:off]) + 1}
}

// token counts one token starting at off.
func (s *boundsScanner) token(off int) {
	s.literal = false
	s.tokens++
	if s.tokens > MaxDocumentTokens && !s.failed {
		s.failed = true
		s.p.addf(s.at(off), "document has more than %d tokens, the limit; split its routes across several keys", MaxDocumentTokens)
	}
}

// deeper adds one level of nesting at off.
func (s *boundsScanner) deeper(off int) {
	s.depth++
	s.deepest = max(s.deepest, s.depth)
	if s.depth > MaxNestingDepth && !s.failed {
		s.failed = true
		s.p.addf(s.at(off), "nesting deeper than %d levels, the limit (brackets, braces, parentheses, strings, interpolations and pending operators each count one)", MaxNestingDepth)
	}
}

func (s *boundsScanner) push(off int, f frame) {
	s.token(off)
	s.deeper(off)
	s.stack = append(s.stack, f)
	s.operand = false
}

func (s *boundsScanner) pop() {
	f := s.stack[len(s.stack)-1]
	s.stack = s.stack[:len(s.stack)-1]
	s.depth -= 1 + f.pending
	s.operand = true
}

// pend counts an operator of the current item at off.
func (s *boundsScanner) pend(top *frame, off int) {
	top.pending++
	s.deeper(off)
	s.operand = false
}

// endItem drops the current item's operators: its expression is complete.
func (s *boundsScanner) endItem(top *frame) {
	s.depth -= top.pending
	top.pending = 0
	s.operand = false
}

func (s *boundsScanner) newline() {
	s.line++
	s.lineStart = s.i + 1
}

// code scans one token in code (a body, an object, a group or an
// interpolation).
func (s *boundsScanner) code(top *frame) {
	src, i := s.src, s.i
	c := src[i]
	next := byte(0)
	if i+1 < len(src) {
		next = src[i+1]
	}
	switch {
	case c == ' ' || c == '\t' || c == '\r':
		s.i++
	case c == '\n':
		s.token(i)
		if top.kind == frameBrace {
			s.endItem(top)
		}
		s.newline()
		s.i++
	case c == '#' || c == '/' && next == '/':
		s.token(i)
		for s.i < len(src) && src[s.i] != '\n' {
			s.i++
		}
	case c == '/' && next == '*':
		s.token(i)
		s.i += 2
		for s.i < len(src) && !(src[s.i] == '*' && s.i+1 < len(src) && src[s.i+1] == '/') {
			if src[s.i] == '\n' {
				s.newline()
			}
			s.i++
		}
		s.i += 2
	case c == '"':
		s.push(i, frame{kind: frameQuoted})
		s.i++
	case c == '<' && next == '<' && s.heredoc():
	case c == '{':
		s.push(i, frame{kind: frameBrace})
		s.i++
	case c == '(' || c == '[':
		if c == '[' && s.operand {
			s.pend(top, i) // an index: HCL nests index chains
		}
		cl := byte(')')
		if c == '[' {
			cl = ']'
		}
		s.push(i, frame{kind: frameGroup, close: cl})
		s.i++
	case c == ')' || c == ']':
		s.token(i)
		// A stray closer changes no lexical mode and ends nothing.
		if len(s.stack) > 1 && top.kind == frameGroup && top.close == c {
			s.pop()
		}
		s.i++
	case c == '}':
		s.token(i)
		// Like HCL's lexer, a brace closes the innermost brace, ${ or %{
		// and whatever is still open inside it.
		for len(s.stack) > 1 {
			t := s.stack[len(s.stack)-1]
			s.pop()
			if t.kind == frameBrace || t.close == '}' {
				break
			}
		}
		s.i++
	case c == ',':
		s.token(i)
		s.endItem(top)
		s.i++
	case c == '=':
		s.token(i)
		switch next {
		case '=':
			s.pend(top, i)
			s.i += 2
		case '>':
			s.operand = false
			s.i += 2
		default:
			s.operand = false
			s.i++
		}
	case c == '&' && next == '&' || c == '|' && next == '|':
		s.token(i)
		s.pend(top, i)
		s.i += 2
	case strings.IndexByte("+-*/%!?<>&|", c) >= 0:
		s.token(i)
		s.pend(top, i)
		s.i++
	case c >= '0' && c <= '9':
		s.token(i)
		s.number()
		s.operand = true
	case isIdentByte(c):
		s.token(i)
		for s.i < len(src) && (isIdentByte(src[s.i]) || src[s.i] >= '0' && src[s.i] <= '9' || src[s.i] == '-') {
			s.i++
		}
		s.operand = true
	default: // . : ; ~ and anything HCL reports as invalid
		s.token(i)
		s.operand = false
		s.i++
	}
}

// number skips a number literal: digits, a fraction, an exponent. The sign
// of an exponent is part of the number, not an operator.
func (s *boundsScanner) number() {
	src := s.src
	digits := func() {
		for s.i < len(src) && src[s.i] >= '0' && src[s.i] <= '9' {
			s.i++
		}
	}
	digits()
	if s.i+1 < len(src) && src[s.i] == '.' && src[s.i+1] >= '0' && src[s.i+1] <= '9' {
		s.i++
		digits()
	}
	if s.i < len(src) && (src[s.i] == 'e' || src[s.i] == 'E') {
		s.i++
		if s.i < len(src) && (src[s.i] == '+' || src[s.i] == '-') {
			s.i++
		}
		digits()
	}
}

// isIdentByte reports whether c can start an identifier; bytes of
// multi-byte characters are taken as letters, as HCL takes most of them.
func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= utf8.RuneSelf
}

// heredoc opens a heredoc if src[s.i:] is one ("<<" or "<<-", an
// identifier, a line break, exactly as HCL's lexer wants), and reports
// whether it did.
func (s *boundsScanner) heredoc() bool {
	src, j := s.src, s.i+2
	if j < len(src) && src[j] == '-' {
		j++
	}
	start := j
	if j >= len(src) || !isIdentByte(src[j]) {
		return false
	}
	for j < len(src) && (isIdentByte(src[j]) || src[j] >= '0' && src[j] <= '9' || src[j] == '-') {
		j++
	}
	marker := src[start:j]
	if j < len(src) && src[j] == '\r' {
		j++
	}
	if j >= len(src) || src[j] != '\n' {
		return false
	}
	s.push(s.i, frame{kind: frameHeredoc, marker: marker})
	s.i = j
	s.newline()
	s.i++
	s.heredocEnd()
	return true
}

// heredocEnd closes the heredoc on top if the line starting at s.i is its
// marker, as HCL's lexer does: the whole line, spaces aside.
func (s *boundsScanner) heredocEnd() {
	top := &s.stack[len(s.stack)-1]
	end := bytes.IndexByte(s.src[s.i:], '\n')
	if end < 0 {
		return // HCL needs the line break after the marker too
	}
	if bytes.Equal(bytes.TrimSpace(s.src[s.i:s.i+end]), top.marker) {
		s.token(s.i)
		s.pop()
		s.i += end // the line break is code again
	}
}

// template scans one step of a quoted string or heredoc.
func (s *boundsScanner) template(top *frame) {
	src, i := s.src, s.i
	c := src[i]
	next, after := byte(0), byte(0)
	if i+1 < len(src) {
		next = src[i+1]
	}
	if i+2 < len(src) {
		after = src[i+2]
	}
	quoted := top.kind == frameQuoted
	switch {
	case c == '"' && quoted:
		s.token(i)
		s.pop()
		s.i++
	case c == '\\' && quoted:
		s.i++
		if s.i < len(src) && src[s.i] != '\n' {
			s.i++ // an escape never ends the string
		}
	case (c == '$' || c == '%') && next == c && after == '{':
		s.i += 3 // $${ and %%{ are literal
	case (c == '$' || c == '%') && next == '{':
		if c == '%' {
			s.directive(top, i+2)
		}
		s.push(i, frame{kind: frameGroup, close: '}'})
		s.i += 2
	case c == '\n':
		s.token(i)
		s.newline()
		s.i++
		if !quoted {
			s.heredocEnd()
		}
	default:
		if !s.literal {
			s.token(i) // a run of literal text is one token
			s.literal = true
		}
		s.i++
	}
}

// directive reads the keyword of the %{ directive whose body starts at off:
// %{if} and %{for} open a level in template t that their %{endif} and
// %{endfor} close, since HCL nests what lies between.
func (s *boundsScanner) directive(t *frame, off int) {
	src, j := s.src, off
	for j < len(src) && (src[j] == '~' || src[j] == ' ' || src[j] == '\t') {
		j++
	}
	k := j
	for k < len(src) && isIdentByte(src[k]) {
		k++
	}
	switch string(src[j:k]) {
	case "if", "for":
		t.pending++
		s.deeper(s.i)
	case "endif", "endfor":
		if t.pending > 0 {
			t.pending--
			s.depth--
		}
	}
}

// checkCounts reports whether the parsed body crosses MaxBlocksPerDocument,
// MaxItemsPerBlock or MaxCallsPerAggregate, recording each crossing. It
// runs before decoding, which would otherwise report a problem per item.
func checkCounts(p *problems, body hcl.Body) bool {
	b, ok := body.(*hclsyntax.Body)
	if !ok {
		return false
	}
	m := p.mark()
	all := func(*hclsyntax.Block) bool { return true }
	overCount(p, items(b, true, all), MaxBlocksPerDocument, "document has more than %d blocks (routes and aggregates), the limit; split it across several keys")
	for _, blk := range b.Blocks {
		checkBlock(p, blk)
	}
	return !p.clean(m)
}

// checkBlock checks blk's items and its nested blocks'. Nesting is already
// bounded by MaxNestingDepth, so the recursion is too.
func checkBlock(p *problems, blk *hclsyntax.Block) {
	isCall := func(b *hclsyntax.Block) bool { return blk.Type == aggregateSpec.typ && b.Type == callSpec.typ }
	if blk.Type == aggregateSpec.typ {
		overCount(p, items(blk.Body, false, isCall), MaxCallsPerAggregate,
			fmt.Sprintf("%s %q has more than %%d %s blocks, the limit", aggregateSpec.typ, label(blk), callSpec.typ))
	}
	notCall := func(b *hclsyntax.Block) bool { return !isCall(b) }
	overCount(p, items(blk.Body, true, notCall), MaxItemsPerBlock,
		fmt.Sprintf("%s block has more than %%d attributes and blocks, the limit", blk.Type))
	for _, c := range blk.Body.Blocks {
		checkBlock(p, c)
	}
}

func label(blk *hclsyntax.Block) string {
	if len(blk.Labels) > 0 {
		return blk.Labels[0]
	}
	return ""
}

// items returns where body's attributes (when attrs) and the blocks that
// keep accepts start. Attributes are a map, so the order is not the
// source's: overCount sorts.
func items(body *hclsyntax.Body, attrs bool, keep func(*hclsyntax.Block) bool) []hcl.Pos {
	var out []hcl.Pos
	if attrs {
		for _, a := range body.Attributes {
			out = append(out, a.NameRange.Start)
		}
	}
	for _, b := range body.Blocks {
		if keep(b) {
			out = append(out, b.TypeRange.Start)
		}
	}
	return out
}

// overCount records a problem at the first item past limit, in source
// order, if there is one.
func overCount(p *problems, at []hcl.Pos, limit int, format string) {
	if len(at) <= limit {
		return
	}
	slices.SortFunc(at, func(a, b hcl.Pos) int { return a.Byte - b.Byte })
	p.addf(p.pos(hcl.Range{Start: at[limit]}), format, limit)
}
