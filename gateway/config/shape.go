package config

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Bounds of answer shaping. A shaping rule is applied to every answer of
// every request, so its size is bounded like any other per-request work;
// the answers themselves are bounded by max_response_bytes.
const (
	// MaxShapePaths bounds the entries of one call's fields, omit and
	// rename, each.
	MaxShapePaths = 128
	// MaxShapePathDepth bounds the dot-separated segments of one path in
	// target, fields, omit or rename: shaping walks an answer as deep as
	// its paths, never deeper.
	MaxShapePathDepth = 16
	// MaxStaticBytes bounds an aggregate's static member, encoded as
	// JSON: it is copied into every answer.
	MaxStaticBytes = 64 << 10
)

// DefaultBusinessStatus answers a failed required call whose failure is a
// business error (an upstream 4xx, or a 2xx carrying a top-level "error"
// member) when the aggregate sets no business_status: the design
// document's "200 with an error field".
const DefaultBusinessStatus = http.StatusOK

// BusinessStatusUpstream is the business_status value passing the
// upstream's own status on (its 4xx, or 200 for a 2xx carrying "error").
const BusinessStatusUpstream = "upstream"

// Shape says how one call's answer is cut and where it is placed in the
// merged body. Steps apply in field order: Target, then Fields, Omit and
// Rename (to every element when the value is an array). The zero Shape
// places the answer as it came under the call's name.
type Shape struct {
	// Target is the dot path of the member taken from the answer before
	// anything else; empty means the whole answer.
	Target string
	// Fields is an allow list of dot paths; nil keeps every member.
	Fields []string
	// Omit is a deny list of dot paths, applied after Fields.
	Omit []string
	// Rename maps a dot path to the new name of its last segment, applied
	// last; the renamed member replaces one already of that name.
	Rename map[string]string
	// Group is the member of the merged body the answer is placed under;
	// defaulted to the call's name, empty when Flatten is set.
	Group string
	// Flatten merges the members of the (shaped) answer into the top
	// level of the merged body instead of nesting them under Group.
	Flatten bool
}

// Active reports whether the shape changes the answer at all, beyond
// where it is placed.
func (s *Shape) Active() bool {
	return s.Target != "" || s.Fields != nil || s.Omit != nil || s.Rename != nil
}

// decodeCallShape reads a call's shaping attributes into c.Shape.
func decodeCallShape(a *attrs, c *Call) {
	s := &c.Shape
	s.Target = a.str(attrTarget)
	s.Fields, _ = a.strList(attrFields)
	s.Omit, _ = a.strList(attrOmit)
	s.Rename = a.strMap(attrRename)
	s.Group = a.str(attrGroup)
	s.Flatten = a.boolean(attrFlatten)
	if a.ok(attrFields) && s.Fields == nil {
		s.Fields = []string{} // fields = [] keeps nothing, unlike no fields
	}
}

// validateCallShape checks one call's shaping rules and defaults Group.
func validateCallShape(p *problems, c *Call, a *attrs) {
	s := &c.Shape
	if a.ok(attrTarget) {
		checkShapePath(p, a.pos(attrTarget), attrTarget, s.Target)
	}
	fields, fieldPos := a.strList(attrFields)
	checkShapeList(p, a, attrFields, fields, fieldPos)
	omit, omitPos := a.strList(attrOmit)
	checkShapeList(p, a, attrOmit, omit, omitPos)
	if a.ok(attrRename) {
		checkRename(p, a, s)
	}
	switch {
	case a.ok(attrGroup) && s.Flatten:
		p.addf(a.pos(attrGroup), "%s and %s = true exclude each other: a flattened answer has no group", attrGroup, attrFlatten)
	case a.ok(attrGroup) && s.Group == "":
		p.addf(a.pos(attrGroup), "%s must not be empty (use %s = true to merge into the top level)", attrGroup, attrFlatten)
	case !a.has(attrGroup) && !s.Flatten:
		s.Group = c.Name
	}
}

// checkShapePath checks one dot path: non-empty segments, bounded depth.
func checkShapePath(p *problems, at Pos, name attr, path string) bool {
	segs := strings.Split(path, ".")
	switch {
	case len(segs) > MaxShapePathDepth:
		p.addf(at, "%s: path %q has more than %d segments, the limit", name, path, MaxShapePathDepth)
		return false
	case slices.Contains(segs, ""):
		p.addf(at, "%s: path %q has an empty segment (want e.g. \"address.city\")", name, path)
		return false
	}
	return true
}

// checkShapeList checks a fields or omit list.
func checkShapeList(p *problems, a *attrs, name attr, paths []string, at []Pos) {
	if !a.ok(name) {
		return
	}
	if len(paths) > MaxShapePaths {
		p.addf(a.pos(name), "%s has %d paths, more than %d, the limit", name, len(paths), MaxShapePaths)
		return
	}
	seen := map[string]bool{}
	for i, path := range paths {
		if !checkShapePath(p, at[i], name, path) {
			continue
		}
		if seen[path] {
			p.addf(at[i], "%s: path %q is listed twice", name, path)
		}
		seen[path] = true
	}
}

// checkRename checks rename: valid source paths, plain new names, and no
// two members renamed to one name at the same level.
func checkRename(p *problems, a *attrs, s *Shape) {
	at := a.pos(attrRename)
	if len(s.Rename) > MaxShapePaths {
		p.addf(at, "%s has %d entries, more than %d, the limit", attrRename, len(s.Rename), MaxShapePaths)
		return
	}
	to := map[string]string{} // parent path + "." + new name -> source
	for _, from := range slices.Sorted(maps.Keys(s.Rename)) {
		name := s.Rename[from]
		if !checkShapePath(p, at, attrRename, from) {
			continue
		}
		if name == "" || strings.Contains(name, ".") {
			p.addf(at, "%s[%q]: the new name must be one non-empty segment, got %q", attrRename, from, name)
			continue
		}
		parent := ""
		if i := strings.LastIndexByte(from, '.'); i >= 0 {
			parent = from[:i+1]
		}
		if other, dup := to[parent+name]; dup {
			p.addf(at, "%s: %q and %q are both renamed to %q", attrRename, other, from, name)
		}
		to[parent+name] = from
		if s.Fields != nil && slices.Contains(s.Fields, parent+name) && s.Rename[parent+name] == "" {
			p.addf(at, "%s[%q] = %q collides with %q of %s", attrRename, from, name, parent+name, attrFields)
		}
	}
}

// OutputKeys returns the top-level members a call contributes to the
// merged body, and whether that set is known before any answer: a grouped
// call contributes its group; a flattened one the first segments of its
// fields, renamed, and is unknown without fields.
func (c *Call) OutputKeys() ([]string, bool) {
	s := &c.Shape
	if !s.Flatten {
		return []string{s.Group}, true
	}
	if s.Fields == nil {
		return nil, false
	}
	var keys []string
	for _, f := range s.Fields {
		top, _, _ := strings.Cut(f, ".")
		if n, ok := s.Rename[top]; ok {
			top = n
		}
		if !slices.Contains(keys, top) && !slices.Contains(s.Omit, top) {
			keys = append(keys, top)
		}
	}
	return keys, true
}

// decodeAggregateShape reads an aggregate's static and business_status.
func decodeAggregateShape(a *attrs, ag *aggregateSrc) {
	if a.has(attrStatic) {
		ag.Static = decodeStatic(a)
	}
	if !a.has(attrBusinessStatus) {
		return
	}
	v, ok := a.value(attrBusinessStatus)
	if !ok {
		return
	}
	at := a.pos(attrBusinessStatus)
	switch {
	case v.Type() == cty.String && v.AsString() == BusinessStatusUpstream:
		ag.BusinessStatus = 0
		ag.businessSet = true
	case v.Type() == cty.Number:
		n := a.integer(attrBusinessStatus)
		if !a.ok(attrBusinessStatus) {
			return
		}
		if n != http.StatusOK && (n < 400 || n > 599) {
			a.fail(attrBusinessStatus, at, "%s must be 200, a 4xx or 5xx status, or %q, got %d", attrBusinessStatus, BusinessStatusUpstream, n)
			return
		}
		ag.BusinessStatus, ag.businessSet = n, true
	default:
		a.fail(attrBusinessStatus, at, "%s must be a status number or %q, got %s", attrBusinessStatus, BusinessStatusUpstream, friendly(v))
	}
}

// decodeStatic reads static: an HCL object, or a string holding a JSON
// object, encoded as compact JSON.
func decodeStatic(a *attrs) json.RawMessage {
	v, ok := a.value(attrStatic)
	if !ok {
		return nil
	}
	at := a.pos(attrStatic)
	var raw []byte
	switch t := v.Type(); {
	case t == cty.String:
		s := v.AsString()
		if len(s) > MaxStaticBytes {
			a.fail(attrStatic, at, "%s is larger than %d bytes, the limit", attrStatic, MaxStaticBytes)
			return nil
		}
		if !utf8.ValidString(s) || !json.Valid([]byte(s)) {
			a.fail(attrStatic, at, "%s: the string is not valid JSON", attrStatic)
			return nil
		}
		raw = []byte(s)
	case t.IsObjectType() || t.IsMapType():
		b, err := ctyjson.Marshal(v, t)
		if err != nil {
			a.fail(attrStatic, at, "%s: %v", attrStatic, err)
			return nil
		}
		raw = b
	default:
		a.fail(attrStatic, at, "%s must be an object or a string of a JSON object, got %s", attrStatic, t.FriendlyName())
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		a.fail(attrStatic, at, "%s: %v", attrStatic, err)
		return nil
	}
	if buf.Len() > MaxStaticBytes {
		a.fail(attrStatic, at, "%s is larger than %d bytes of JSON, the limit", attrStatic, MaxStaticBytes)
		return nil
	}
	if buf.Len() == 0 || buf.Bytes()[0] != '{' {
		a.fail(attrStatic, at, "%s must be a JSON object", attrStatic)
		return nil
	}
	return buf.Bytes()
}

// StaticKeys returns the top-level member names of static, in order.
func StaticKeys(static json.RawMessage) []string {
	if static == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(static))
	if _, err := dec.Token(); err != nil {
		return nil
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return keys
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return keys
		}
		keys = append(keys, k.(string))
	}
	return keys
}

// validateAggregateShape defaults business_status and checks that no two
// parts of the merged body claim one member: static keys, groups and the
// known outputs of flattened calls. Outputs only known from an answer
// (a flattened call without fields) are merged last-wins at run time.
func validateAggregateShape(p *problems, ag *aggregateSrc) {
	if !ag.businessSet {
		ag.BusinessStatus = DefaultBusinessStatus
	}
	claimed := map[string]string{} // member -> who claims it, for messages
	byCall := map[string]string{}  // member -> the call whose default group it is
	reserved := func(at Pos, key, who string) bool {
		if key == "errors" {
			p.addf(at, "%s: member %q is reserved for the merged body's error member", who, key)
			return true
		}
		return false
	}
	if ag.Static != nil {
		at := ag.attrs.pos(attrStatic)
		for _, k := range StaticKeys(ag.Static) {
			if !reserved(at, k, attrStatic.name) {
				claimed[k] = attrStatic.name
			}
		}
	}
	for i := range ag.Calls {
		c := &ag.Calls[i]
		keys, known := c.OutputKeys()
		if !known {
			continue
		}
		a := ag.calls[i].attrs
		at, who := c.Pos, callSpec.typ+" "+`"`+c.Name+`"`
		switch {
		case a.has(attrGroup):
			at = a.pos(attrGroup)
		case c.Shape.Flatten && a.has(attrFields):
			at = a.pos(attrFields)
		}
		for _, k := range keys {
			if c.Shape.Group != "" && c.Shape.Group != c.Name && reserved(at, k, who) {
				continue
			}
			if c.Shape.Flatten && reserved(at, k, who) {
				continue
			}
			if first, dup := claimed[k]; dup {
				if !a.has(attrGroup) && !c.Shape.Flatten && byCall[k] == c.Name {
					continue // a repeated call name, reported as such
				}
				p.addf(at, "%s: member %q of the merged body is already %s's", who, k, first)
				continue
			}
			claimed[k] = who
			if !a.has(attrGroup) && !c.Shape.Flatten {
				byCall[k] = c.Name
			}
		}
	}
}
