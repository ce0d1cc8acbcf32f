package config

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/hashicorp/hcl/v2"
)

// problems collects every Error found in one document, so a user fixes a
// document in one round trip instead of one error per attempt.
type problems struct {
	key  string
	errs Errors
	// read, when set, sees every attribute a decoder asks a block for;
	// tests use it to prove every declared attribute is read.
	read func(*blockSpec, attr)
}

// pos converts an HCL range to a Pos in this document. HCL leaves the range
// zero for a few problems it cannot place; those are clamped to 1:1 so every
// Error still names a spot an editor can open.
func (p *problems) pos(r hcl.Range) Pos {
	return Pos{Key: p.key, Line: max(r.Start.Line, 1), Column: max(r.Start.Column, 1)}
}

// addf records one problem at a position.
func (p *problems) addf(at Pos, format string, args ...any) {
	at.Key = p.key
	at.Line, at.Column = max(at.Line, 1), max(at.Column, 1)
	p.errs = append(p.errs, &Error{Pos: at, Message: fmt.Sprintf(format, args...)})
}

// diags records HCL's error diagnostics; fallback places those without a
// subject. Warnings are dropped: nothing in a route document warrants
// serving a document while also complaining about it. It reports whether
// any error was recorded.
func (p *problems) diags(ds hcl.Diagnostics, fallback hcl.Range) bool {
	found := false
	for _, d := range ds {
		if d.Severity != hcl.DiagError {
			continue
		}
		found = true
		at := fallback
		if d.Subject != nil {
			at = *d.Subject
		}
		msg := d.Summary
		if d.Detail != "" {
			// Same shape as hcl.Diagnostic.Error, which HCL users recognise.
			msg += "; " + d.Detail
		}
		p.addf(p.pos(at), "%s", msg)
	}
	return found
}

// mark returns a token for clean: whether nothing was recorded since.
func (p *problems) mark() int { return len(p.errs) }

// clean reports whether no problem was recorded since mark returned m.
func (p *problems) clean(m int) bool { return len(p.errs) == m }

// err returns the problems in source order, or nil when there are none. HCL
// reports some problems in map order, so sorting keeps output reproducible.
func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(p.errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Column, b.Pos.Column))
	})
	// The same diagnostic can reach us twice (e.g. one expression evaluated
	// for two purposes); repeating it only adds noise.
	p.errs = slices.CompactFunc(p.errs, func(a, b *Error) bool { return *a == *b })
	if n := len(p.errs) - MaxReportedErrors; n > 0 {
		more := &Error{Pos: p.errs[MaxReportedErrors].Pos, Message: fmt.Sprintf("%d more problems from here on, not shown", n)}
		p.errs = append(p.errs[:MaxReportedErrors], more)
	}
	return p.errs
}
