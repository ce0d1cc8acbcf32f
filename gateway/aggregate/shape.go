package aggregate

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/gatewayco/gateway/gateway/config"
)

// MaxShapeItems bounds the object members and array elements shaping
// visits in one answer. The answer is already bounded by
// max_response_bytes; this bounds the work per byte too, so a 10 MiB
// array of a million empty objects is a system error instead of a
// million decodes on every request.
const MaxShapeItems = 100_000

// errShapeTooLarge fails a call whose answer has more than MaxShapeItems
// members and elements to shape.
var errShapeTooLarge = errors.New("upstream answer has too many members to shape")

// shapeNode is one level of a set of dot paths: leaf when a path ends
// here, kids for the paths going deeper.
type shapeNode struct {
	leaf bool
	to   string // rename trees only: the member's new name, "" keeps it
	kids map[string]*shapeNode
}

// add puts the dot path into the tree rooted at n and returns its node.
func (n *shapeNode) add(path string) *shapeNode {
	for seg := range strings.SplitSeq(path, ".") {
		if n.kids == nil {
			n.kids = map[string]*shapeNode{}
		}
		k := n.kids[seg]
		if k == nil {
			k = &shapeNode{}
			n.kids[seg] = k
		}
		n = k
	}
	n.leaf = true
	return n
}

// child is the node for member k below n; nil when no path goes there.
func (n *shapeNode) child(k string) *shapeNode {
	if n == nil {
		return nil
	}
	return n.kids[k]
}

// shaper applies one call's config.Shape to its answers. It is immutable
// and safe for concurrent use.
type shaper struct {
	target []string
	keep   *shapeNode // allow list; nil keeps everything
	omit   *shapeNode // deny list; nil drops nothing
	rename *shapeNode // nil renames nothing
}

// newShaper returns the shaper of s, nil when s changes no answer.
func newShaper(s config.Shape) *shaper {
	if !s.Active() {
		return nil
	}
	sh := &shaper{}
	if s.Target != "" {
		sh.target = strings.Split(s.Target, ".")
	}
	if s.Fields != nil {
		sh.keep = &shapeNode{}
		for _, f := range s.Fields {
			sh.keep.add(f)
		}
	}
	if s.Omit != nil {
		sh.omit = &shapeNode{}
		for _, f := range s.Omit {
			sh.omit.add(f)
		}
	}
	if s.Rename != nil {
		sh.rename = &shapeNode{}
		for from, to := range s.Rename {
			sh.rename.add(from).to = to
		}
	}
	return sh
}

// apply shapes one answer, valid JSON already trimmed: the target first
// (null when the answer has no such member), then fields, omit and
// rename, to every element when the value is an array.
func (s *shaper) apply(body []byte) ([]byte, error) {
	budget := MaxShapeItems
	v := json.RawMessage(body)
	for _, seg := range s.target {
		found, err := memberValue(v, seg, &budget)
		if err != nil {
			return nil, err
		}
		if found == nil {
			return []byte("null"), nil
		}
		v = found
	}
	if s.keep == nil && s.omit == nil && s.rename == nil {
		return v, nil
	}
	out, _, err := s.walk(v, s.keep, s.omit, s.rename, &budget)
	return out, err
}

// walk applies the allow list keep, the deny list omit and the renames
// ren of one level to v. A nil node does nothing at this level and
// below, except keep, where nil keeps everything. It reports false when
// an allow list reaches a value that is neither an object nor an array:
// the path asked for does not exist, so the member is dropped.
func (s *shaper) walk(v json.RawMessage, keep, omit, ren *shapeNode, budget *int) (json.RawMessage, bool, error) {
	if keep == nil && omit == nil && ren == nil {
		return v, true, nil
	}
	if els, ok, err := arrayElements(v, budget); ok || err != nil {
		if err != nil {
			return nil, false, err
		}
		out := make([]byte, 0, len(v))
		out = append(out, '[')
		n := 0
		for _, el := range els {
			el, kept, err := s.walk(el, keep, omit, ren, budget)
			if err != nil {
				return nil, false, err
			}
			if !kept {
				continue
			}
			if n > 0 {
				out = append(out, ',')
			}
			out = append(out, el...)
			n++
		}
		return append(out, ']'), true, nil
	}
	ms, ok, err := objectMembers(v, budget)
	switch {
	case err != nil:
		return nil, false, err
	case !ok:
		return v, keep == nil, nil
	}
	out := ms[:0]
	at := make(map[string]int, len(ms))
	renamed := make(map[string]bool)
	for _, m := range ms {
		var ck *shapeNode
		if keep != nil {
			ck = keep.kids[m.key]
			if ck == nil {
				continue
			}
			if ck.leaf {
				ck = nil // the whole member is kept
			}
		}
		co := omit.child(m.key)
		if co != nil && co.leaf {
			continue
		}
		cr := ren.child(m.key)
		below := cr // the renames deeper down
		if cr != nil && cr.kids == nil {
			below = nil
		}
		val, kept, err := s.walk(m.val, ck, co, below, budget)
		if err != nil {
			return nil, false, err
		}
		if !kept {
			continue
		}
		key, raw, isRenamed := m.key, m.raw, cr != nil && cr.to != ""
		if isRenamed {
			key, raw = cr.to, nil
		}
		if i, dup := at[key]; dup {
			// A renamed member replaces the one it is renamed over; among
			// equals (repeated keys) the last wins, as decoders take it.
			if isRenamed || !renamed[key] {
				out[i].val = val
				renamed[key] = renamed[key] || isRenamed
			}
			continue
		}
		at[key] = len(out)
		renamed[key] = isRenamed
		out = append(out, member{key: key, raw: raw, val: val})
	}
	return appendObject(make([]byte, 0, len(v)), out), true, nil
}

// maxErrorDetail bounds the upstream's "error" member copied into the
// merged body's errors, so one upstream cannot make every failure large.
const maxErrorDetail = 4 << 10

// MsgBusinessError describes a 2xx answer carrying a top-level "error".
const MsgBusinessError = "upstream answered an error"

// businessError turns a successful result whose JSON object carries a
// top-level "error" member that is not null into a business failure, as
// the design document classifies it; the member is kept as the detail
// when small. Bodies without the word are never decoded.
func businessError(r callResult) callResult {
	b := r.body
	if r.err.Kind != "" || len(b) == 0 || b[0] != '{' ||
		!bytes.Contains(b, []byte(`"error"`)) && !bytes.Contains(b, []byte(`\u`)) {
		return r
	}
	budget := MaxShapeItems
	detail, err := memberValue(b, "error", &budget)
	if err != nil {
		return r // too many members to check; the answer stays as it is
	}
	if detail == nil || string(detail) == "null" {
		return r
	}
	f := failure(KindBusiness, 200, MsgBusinessError)
	if len(detail) <= maxErrorDetail {
		f.err.Detail = detail
	}
	return f
}

// shapeResults shapes every successful answer, in place. A call whose
// answer cannot be shaped becomes a system failure; the index of the
// first such required call is returned, -1 when there is none. memory
// is set when the shaped bodies would cross the aggregate budget.
func (ag *Aggregate) shapeResults(results []callResult, hold *share) (failed int, memory bool) {
	failed = -1
	for i, c := range ag.Calls {
		if c.shape == nil || results[i].err.Kind != "" {
			continue
		}
		out, err := c.shape.apply(results[i].body)
		if err != nil {
			msg := "upstream answer could not be shaped"
			if errors.Is(err, errShapeTooLarge) {
				msg = errShapeTooLarge.Error()
			}
			results[i] = failure(KindSystem, 502, msg)
			if c.Config.Required && failed < 0 {
				failed = i
			}
			continue
		}
		if !hold.take(int64(len(out))) {
			return failed, true
		}
		results[i].body = out
	}
	return failed, false
}

// composed reports whether the merged body is more than one member per
// call: a static part or a flattened call, whose members must be checked
// against each other.
func (ag *Aggregate) composed() bool {
	if ag.Config.Static != nil {
		return true
	}
	for _, c := range ag.Calls {
		if c.Config.Shape.Flatten {
			return true
		}
	}
	return false
}

// errorsMember is the merged body's member listing failed calls;
// validation keeps it from every part it can see, and writeComposed drops
// it from flattened answers, whose members it cannot.
const errorsMember = "errors"

// writeComposed answers 200 with the static members, then each call's
// members (its group, or the members of a flattened answer), and the
// errors. A member claimed twice, which validation could not see, keeps
// its first place and takes the last value: declaration order, last
// wins, static first. A flattened answer's "errors" member is dropped.
// A flattened answer that is not an object is placed
// under the call's name.
func (ag *Aggregate) writeComposed(w http.ResponseWriter, results []callResult, hold *share) {
	errs := mergeErrors(ag.Calls, results)
	bound := 2 + len(ag.Config.Static) + len(errs)
	for i, c := range ag.Calls {
		bound += 2*len(c.key) + 2 + len(results[i].body) + len("null")
	}
	if !hold.take(int64(bound)) {
		ag.writeMemoryLimit(w)
		return
	}
	var ms []member
	at := map[string]int{}
	put := func(k string, raw []byte, v json.RawMessage) {
		if i, dup := at[k]; dup {
			ms[i].val = v
			return
		}
		at[k] = len(ms)
		ms = append(ms, member{key: k, raw: raw, val: v})
	}
	budget := MaxShapeItems
	if st, _, _ := objectMembers(ag.Config.Static, &budget); st != nil {
		for _, m := range st {
			put(m.key, m.raw, m.val)
		}
	}
	for i, c := range ag.Calls {
		failed := results[i].err.Kind != ""
		if !c.Config.Shape.Flatten {
			v := json.RawMessage(mergeNull)
			if !failed {
				v = results[i].body
			}
			put(c.group, c.key, v)
			continue
		}
		if failed {
			continue // nothing to flatten; the failure is under errors
		}
		budget := MaxShapeItems
		flat, ok, err := objectMembers(results[i].body, &budget)
		if !ok || err != nil {
			put(c.Config.Name, c.name, results[i].body)
			continue
		}
		for _, m := range flat {
			if m.key == errorsMember {
				// The member is the gateway's report of failed calls;
				// an upstream's would forge it, or repeat the key.
				continue
			}
			put(m.key, m.raw, m.val)
		}
	}
	body := appendObject(make([]byte, 0, bound), ms)
	if errs != nil {
		if len(ms) == 0 {
			errs = errs[1:] // no member before it to follow
		}
		body = append(body[:len(body)-1], errs...)
		body = append(body, '}')
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if errs != nil {
		h.Set("X-Gateway-Partial", "true")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
