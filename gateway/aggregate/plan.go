package aggregate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/exchange"
)

// Sequencing: a call with `after` waits for the calls it names and may
// fill its path from their answers ({user.account_id}). Calls are started
// in a topological order of those edges (declaration order otherwise), so
// a call waiting for another never holds a max_concurrency slot its
// dependency still needs: every dependency was started before it.

// ref is a placeholder of a call's path naming a value of another call's
// answer; refs are aligned with the call's parts (nil for the others).
type ref struct {
	call  string   // the call whose answer holds the value
	dep   int      // its index in the aggregate, set by plan
	field []string // the path of member names to the value
}

// parseRefs returns the refs of parts, aligned with them, and whether
// there is any; after is the calls the call waits for.
func parseRefs(parts []config.PathPart, after []string) ([]*ref, bool) {
	refs := make([]*ref, len(parts))
	any := false
	for i, p := range parts {
		if p.Var == "" {
			continue
		}
		if call, field, ok := config.SplitCallRef(p.Var, after); ok {
			refs[i] = &ref{call: call, dep: -1, field: strings.Split(field, ".")}
			any = true
		}
	}
	return refs, any
}

// errPlan is a plan that validation should have refused: an unknown after
// name or a cycle. The table builder turns it into a panic it reports.
var errPlan = errors.New("invalid call plan")

// plan resolves the calls' after names to indexes and returns the order
// to start them in: each call after all it waits for, otherwise in
// declaration order.
func plan(calls []*Call) ([]int, error) {
	index := make(map[string]int, len(calls))
	for i, c := range calls {
		index[c.Config.Name] = i
	}
	for _, c := range calls {
		c.deps = c.deps[:0]
		for _, name := range c.Config.After {
			j, ok := index[name]
			if !ok {
				return nil, fmt.Errorf("%w: call %q waits for unknown call %q", errPlan, c.Config.Name, name)
			}
			c.deps = append(c.deps, j)
		}
		for _, r := range c.refs {
			if r != nil {
				r.dep = index[r.call]
			}
		}
	}
	order := make([]int, 0, len(calls))
	placed := make([]bool, len(calls))
	for len(order) < len(calls) {
		progress := false
		for i, c := range calls {
			if placed[i] || !allPlaced(c.deps, placed) {
				continue
			}
			order, placed[i], progress = append(order, i), true, true
		}
		if !progress {
			return nil, fmt.Errorf("%w: the calls wait for each other in a cycle", errPlan)
		}
	}
	return order, nil
}

func allPlaced(deps []int, placed []bool) bool {
	for _, d := range deps {
		if !placed[d] {
			return false
		}
	}
	return true
}

// answers gives dependent calls the values of earlier calls' answers,
// each read only once that call is done (done[i] closed).
type answers struct {
	results []callResult
	done    []chan struct{}
}

func newAnswers(results []callResult) *answers {
	a := &answers{results: results, done: make([]chan struct{}, len(results))}
	for i := range a.done {
		a.done[i] = make(chan struct{})
	}
	return a
}

// wait blocks until every call in deps is done, or ctx ends.
func (a *answers) wait(ctx context.Context, deps []int) error {
	for _, d := range deps {
		select {
		case <-a.done[d]:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// errRefValue is an answer without a usable value for a placeholder: the
// member is missing, null, an object or array, or too long.
var errRefValue = errors.New("no usable value")

// value is the scalar at r.field in call r.dep's answer, as text: a
// string unescaped, a number as written, a boolean as true or false.
// The answer is walked with the shaping scanner, only down the members
// the path names, rather than decoded: a decoded answer would take many
// times its bytes, outside the memory budget that holds the bytes.
func (a *answers) value(r *ref) (string, error) {
	v := json.RawMessage(a.results[r.dep].body)
	budget := MaxShapeItems
	for _, name := range r.field {
		found, err := memberValue(v, name, &budget)
		if err != nil {
			return "", fmt.Errorf("%w: call %q's answer: %v", errRefValue, r.call, err)
		}
		if found == nil {
			return "", fmt.Errorf("%w for {%s.%s}", errRefValue, r.call, strings.Join(r.field, "."))
		}
		v = found
	}
	if len(v) == 0 {
		return "", fmt.Errorf("%w for {%s.%s}", errRefValue, r.call, strings.Join(r.field, "."))
	}
	var s string
	switch c := v[0]; {
	case c == '"':
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("%w for {%s.%s}: %v", errRefValue, r.call, strings.Join(r.field, "."), err)
		}
	case c == '-' || '0' <= c && c <= '9', string(v) == "true", string(v) == "false":
		s = string(v)
	default:
		return "", fmt.Errorf("%w for {%s.%s}: not a string, number or boolean", errRefValue, r.call, strings.Join(r.field, "."))
	}
	if len(s) > config.MaxRefValueBytes {
		return "", fmt.Errorf("%w for {%s.%s}: longer than %d bytes", errRefValue, r.call, strings.Join(r.field, "."), config.MaxRefValueBytes)
	}
	return s, nil
}

// depFailure is the result of a call not made because a call it waits
// for failed: that call's kind and status, so a 404 of the user stays a
// business error of the account it was needed for.
func depFailure(dep *Call, res callResult) callResult {
	r := failure(res.err.Kind, res.err.Status, fmt.Sprintf("not made: call %q failed", dep.Config.Name))
	if r.err.Kind == "" {
		r.err.Kind, r.err.Status = KindSystem, http.StatusBadGateway
	}
	return r
}

// refFailure is the result of a call whose path could not be filled from
// the answers it waits for. The upstreams answered, but not what the
// aggregate's contract needs: a system error, never the client's.
func refFailure(err error) callResult {
	return failure(KindSystem, http.StatusBadGateway, "call path: "+err.Error())
}

// clientBody reads the client's request body for the call that forwards
// it, reserving its bytes in hold. The gateway's -max-body-bytes reader
// and body guard are in front of r.Body, so a body too large, too slow or
// malformed fails here as the client's fault, before any call is made.
// ok is false when the answer has been written.
func (ag *Aggregate) clientBody(ctx context.Context, w http.ResponseWriter, r *http.Request, hold *share) (body []byte, ok bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	if ex := exchange.From(r.Context()); ex != nil {
		// The aggregate's timeout bounds receiving the body too.
		ex.BoundBody(ctx)
	}
	body, _, err := readBody(r.Body, r.ContentLength, 1<<62, hold)
	switch {
	case err == nil:
		return body, true
	case errors.Is(err, errMemory):
		ag.writeMemoryLimit(w)
	default:
		status, msg := exchange.BodyFaultStatus(exchange.Classify(r, err))
		w.Header().Set("Connection", "close")
		exchange.WriteError(w, status, msg, ag.Config.Name)
	}
	return nil, false
}

// refAt is the ref of part k of the call's path, or nil.
func (c *Call) refAt(k int) *ref {
	if c.refs == nil {
		return nil
	}
	return c.refs[k]
}

// prepare waits for the calls c waits for and fills c's path from their
// answers. ok is false when c is not to be made; res then says why: a
// call it waits for failed, the request ended, or an answer lacked a
// value its path needs.
func (ag *Aggregate) prepare(ctx context.Context, c *Call, target string, vars map[string]string, query url.Values, ans *answers) (_ string, res callResult, ok bool) {
	if len(c.deps) == 0 {
		return target, callResult{}, true
	}
	if err := ans.wait(ctx, c.deps); err != nil {
		return "", transportFailure(ctx, err), false
	}
	for _, d := range c.deps {
		if r := ans.results[d]; r.err.Kind != "" {
			return "", depFailure(ag.Calls[d], r), false
		}
	}
	if c.refs == nil {
		return target, callResult{}, true
	}
	t, err := c.target(vars, query, ans)
	if err != nil {
		return "", refFailure(err), false
	}
	return t, callResult{}, true
}

// withBody makes body req's body, replayable for a retry (PUT and DELETE
// with retry_non_idempotent; POST and PATCH are never retried).
func withBody(req *http.Request, body []byte) {
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	req.Body, _ = req.GetBody()
}
