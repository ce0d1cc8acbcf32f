package config

import (
	"math"
	"math/big"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// attrs reads typed values out of one block's attributes. Every reader
// records a problem at the value's position and returns the zero value when
// the attribute is unusable, so decoding carries on and reports everything
// wrong in one pass. Readers are strict about types (no "5" for 5 or 5 for
// "5"): a route document is small and hand-written, and silent conversions
// hide typos such as timeout = 5.
//
// Absent attributes read as the zero value; use has to tell "absent" from
// "present", and ok to know whether a present value can be validated further.
//
// Every method asks for an attribute of the block's spec; asking for one
// the spec does not declare panics (see get).
type attrs struct {
	p    *problems
	spec *blockSpec
	set  hcl.Attributes
	bad  map[attr]bool
}

// newAttrs reads set, the attributes of a body decoded against spec.
func newAttrs(p *problems, spec *blockSpec, set hcl.Attributes) *attrs {
	return &attrs{p: p, spec: spec, set: set, bad: map[attr]bool{}}
}

// get returns the attribute as written in the block, if it is. An
// attribute the block does not declare can never be written in it (HCL
// rejects it against the derived schema), so asking for one is a bug in
// the reader: get panics rather than let it read as absent. Parse turns
// the panic into an internal error rejecting the document, and every test
// decoding the block fails.
func (a *attrs) get(name attr) (*hcl.Attribute, bool) {
	a.spec.mustHave(name)
	if a.p.read != nil {
		a.p.read(a.spec, name)
	}
	at, ok := a.set[name.name]
	return at, ok
}

// has reports whether the attribute is written in the block at all.
func (a *attrs) has(name attr) bool {
	_, ok := a.get(name)
	return ok
}

// ok reports whether the attribute is present and was read without problems;
// only then are further rules on its value meaningful.
func (a *attrs) ok(name attr) bool { return a.has(name) && !a.bad[name] }

// pos is where the attribute's value starts; the zero Pos if absent.
func (a *attrs) pos(name attr) Pos {
	at, ok := a.get(name)
	if !ok {
		return Pos{}
	}
	return a.p.pos(at.Expr.Range())
}

// fail records a problem with the attribute's value and marks it unusable.
func (a *attrs) fail(name attr, at Pos, format string, args ...any) {
	a.bad[name] = true
	a.p.addf(at, format, args...)
}

// value evaluates the attribute as a constant: documents have no variables or
// functions, so the EvalContext is nil and any reference is reported by HCL
// with its own position.
func (a *attrs) value(name attr) (cty.Value, bool) {
	at, ok := a.get(name)
	if !ok {
		return cty.NilVal, false
	}
	v, diags := at.Expr.Value(nil)
	if a.p.diags(diags, at.Expr.Range()) {
		a.bad[name] = true
		return cty.NilVal, false
	}
	switch {
	case v.IsNull():
		a.fail(name, a.pos(name), "%s must not be null (omit it instead)", name)
		return cty.NilVal, false
	case !v.IsWhollyKnown():
		a.fail(name, a.pos(name), "%s must be a constant value", name)
		return cty.NilVal, false
	}
	return v, true
}

// typed evaluates the attribute and checks it has type want.
func (a *attrs) typed(name attr, want cty.Type) (cty.Value, bool) {
	v, ok := a.value(name)
	if !ok {
		return cty.NilVal, false
	}
	if !v.Type().Equals(want) {
		a.fail(name, a.pos(name), "%s must be a %s, got %s", name, want.FriendlyName(), v.Type().FriendlyName())
		return cty.NilVal, false
	}
	return v, true
}

// str reads a string attribute.
func (a *attrs) str(name attr) string {
	v, ok := a.typed(name, cty.String)
	if !ok {
		return ""
	}
	return v.AsString()
}

// strList reads a list of strings, returning each element's position too so
// rules on single elements (such as an invalid method) point at the element.
func (a *attrs) strList(name attr) ([]string, []Pos) {
	v, ok := a.value(name)
	if !ok {
		return nil, nil
	}
	t := v.Type()
	if !t.IsTupleType() && !t.IsListType() && !t.IsSetType() {
		a.fail(name, a.pos(name), "%s must be a list of strings, got %s", name, t.FriendlyName())
		return nil, nil
	}
	// Element expressions exist only for a literal [...]; anything else (a
	// parenthesised list, say) falls back to the attribute's position.
	written, _ := a.get(name)
	exprs, _ := hcl.ExprList(written.Expr)
	vals, poss := make([]string, 0, v.LengthInt()), make([]Pos, 0, v.LengthInt())
	for i, it := 0, v.ElementIterator(); it.Next(); i++ {
		_, ev := it.Element()
		at := a.pos(name)
		if len(exprs) == v.LengthInt() {
			at = a.p.pos(exprs[i].Range())
		}
		if ev.IsNull() || !ev.Type().Equals(cty.String) {
			a.fail(name, at, "%s must be a list of strings, element %d is %s", name, i, friendly(ev))
			continue
		}
		vals = append(vals, ev.AsString())
		poss = append(poss, at)
	}
	if a.bad[name] {
		return nil, nil
	}
	return vals, poss
}

// strMap reads an object or map whose values are all strings.
func (a *attrs) strMap(name attr) map[string]string {
	v, ok := a.value(name)
	if !ok {
		return nil
	}
	t := v.Type()
	if !t.IsObjectType() && !t.IsMapType() {
		a.fail(name, a.pos(name), "%s must be a map of strings, got %s", name, t.FriendlyName())
		return nil
	}
	out := make(map[string]string, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		if ev.IsNull() || !ev.Type().Equals(cty.String) {
			a.fail(name, a.pos(name), "%s[%q] must be a string, got %s", name, k.AsString(), friendly(ev))
			continue
		}
		out[k.AsString()] = ev.AsString()
	}
	if a.bad[name] {
		return nil
	}
	return out
}

// duration reads a Go duration string ("5s", "250ms"). Every duration in a
// route document bounds a wait or a window, where zero or negative is
// always a mistake, so it must be positive.
func (a *attrs) duration(name attr) time.Duration {
	s := a.str(name)
	if !a.ok(name) {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		a.fail(name, a.pos(name), "%s: invalid duration %q (want e.g. \"5s\" or \"250ms\")", name, s)
		return 0
	}
	if d <= 0 {
		a.fail(name, a.pos(name), "%s must be positive, got %q", name, s)
		return 0
	}
	return d
}

// integer reads a whole number that fits in an int.
func (a *attrs) integer(name attr) int {
	v, ok := a.typed(name, cty.Number)
	if !ok {
		return 0
	}
	f := v.AsBigFloat()
	if !f.IsInt() {
		a.fail(name, a.pos(name), "%s must be a whole number, got %s", name, f.Text('g', -1))
		return 0
	}
	i, acc := f.Int64()
	if acc != big.Exact || int64(int(i)) != i {
		a.fail(name, a.pos(name), "%s is out of range: %s", name, f.Text('g', -1))
		return 0
	}
	return int(i)
}

// number reads any finite number.
func (a *attrs) number(name attr) float64 {
	v, ok := a.typed(name, cty.Number)
	if !ok {
		return 0
	}
	f, _ := v.AsBigFloat().Float64()
	if math.IsInf(f, 0) {
		a.fail(name, a.pos(name), "%s is out of range", name)
		return 0
	}
	return f
}

// boolean reads true or false.
func (a *attrs) boolean(name attr) bool {
	v, ok := a.typed(name, cty.Bool)
	return ok && v.True()
}

// friendly names a value's type for messages, including null.
func friendly(v cty.Value) string {
	if v.IsNull() {
		return "null"
	}
	return v.Type().FriendlyName()
}
