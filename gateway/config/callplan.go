package config

import (
	"net/http"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// How an aggregate's calls are made: in which order (after), with which
// method and body, whether their answers are cached, and whether a slow
// one is hedged. The rules here are the ones the aggregate package relies
// on at request time, so a document that passes never reaches it with a
// cycle, a dangling reference or a hedged write.

// BodyClient is the one body a call may send: the client's request body,
// forwarded as it came (after the gateway's -max-body-bytes bound).
const BodyClient = "client"

// MaxRefValueBytes bounds a value taken from a call's answer into another
// call's path or query: longer values fail the dependent call.
const MaxRefValueBytes = 1024

// callMethods are the methods a call may use.
var callMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// SplitCallRef splits a placeholder naming a value of another call's
// answer, "user.account_id" or "user.address.city", into the call and the
// dotted field path, when its first segment is one of calls. "query." is
// always the request's query, never a call.
func SplitCallRef(placeholder string, calls []string) (call, field string, ok bool) {
	call, field, ok = strings.Cut(placeholder, ".")
	if !ok || call == "query" || !slices.Contains(calls, call) {
		return "", "", false
	}
	return call, field, true
}

// callRef is SplitCallRef against every call of the aggregate.
func (ag *aggregateSrc) callRef(placeholder string) (call, field string, ok bool) {
	names := make([]string, len(ag.Calls))
	for i := range ag.Calls {
		names[i] = ag.Calls[i].Name
	}
	return SplitCallRef(placeholder, names)
}

// decodeCallExecution reads the call's execution attributes into c and
// returns where each after name is written. after takes one name or a
// list of names.
func decodeCallExecution(a *attrs, c *Call) []Pos {
	var afterPos []Pos
	if v, ok := a.value(attrAfter); ok {
		if v.Type().Equals(cty.String) {
			c.After, afterPos = []string{v.AsString()}, []Pos{a.pos(attrAfter)}
		} else {
			c.After, afterPos = a.strList(attrAfter)
		}
	}
	c.Method = a.str(attrCallMethod)
	c.Body = a.str(attrCallBody)
	c.Cache = a.boolean(attrCache)
	c.HedgeAfter = a.duration(attrHedgeAfter)
	return afterPos
}

// CallMethod is the method the call is sent with: Method, or GET.
func (c *Call) CallMethod() string {
	if c.Method == "" {
		return http.MethodGet
	}
	return c.Method
}

// validateCallExecution checks one call's execution attributes alone and
// defaults its method; validatePlan checks them across calls.
func validateCallExecution(p *problems, ag *aggregateSrc, c *Call, src *callSrc) {
	a := src.attrs
	if a.ok(attrCallMethod) {
		c.Method = strings.ToUpper(c.Method)
		if !slices.Contains(callMethods, c.Method) {
			p.addf(a.pos(attrCallMethod), "%s must be one of %s, got %q", callSpec.ref(attrCallMethod), strings.Join(callMethods, ", "), c.Method)
			return
		}
	}
	get := c.CallMethod() == http.MethodGet
	if a.ok(attrCallBody) {
		switch {
		case c.Body != BodyClient:
			p.addf(a.pos(attrCallBody), "%s must be %q (the client's request body), got %q", callSpec.ref(attrCallBody), BodyClient, c.Body)
		case get:
			p.addf(a.pos(attrCallBody), "%s needs a method that carries a body (%s is %s)", callSpec.ref(attrCallBody), attrCallMethod, c.CallMethod())
		}
	}
	// POST and PATCH may act twice when sent twice: the upstream package
	// never retries them, and saying otherwise here would only mislead.
	if (c.Method == http.MethodPost || c.Method == http.MethodPatch) && c.Policy.Retries > 0 {
		p.addf(a.pos(attrRetries), "%s: a %s call is never retried", callSpec.ref(attrRetries), c.Method)
	}
	if a.ok(attrCache) && c.Cache {
		switch {
		case !get:
			p.addf(a.pos(attrCache), "%s applies to GET calls only (this one is %s)", callSpec.ref(attrCache), c.CallMethod())
		case ag.Policy.JWT != nil || ag.Policy.ForwardAuth != nil:
			// As for serve_stale: the answers are per user, whatever
			// header carries the user, so no shared cache may keep them.
			p.addf(a.pos(attrCache), "%s cannot be used in an %s with jwt or forward_auth: its answers are per user", callSpec.ref(attrCache), aggregateSpec.typ)
		}
	}
	if a.ok(attrHedgeAfter) {
		switch {
		case !get:
			p.addf(a.pos(attrHedgeAfter), "%s applies to GET calls only: a %s sent twice may act twice", callSpec.ref(attrHedgeAfter), c.Method)
		case c.Timeout > 0 && c.HedgeAfter >= c.Timeout:
			p.addf(a.pos(attrHedgeAfter), "%s %v must be shorter than the call's %s %v", callSpec.ref(attrHedgeAfter), c.HedgeAfter, attrTimeout, c.Timeout)
		case ag.Timeout > 0 && c.HedgeAfter >= ag.Timeout:
			p.addf(a.pos(attrHedgeAfter), "%s %v must be shorter than the %s's %s %v", callSpec.ref(attrHedgeAfter), c.HedgeAfter, aggregateSpec.typ, attrTimeout, ag.Timeout)
		}
	}
}

// validatePlan checks the calls together: every after name is another
// call, every {call.field} of a path names a call the path's call waits
// for, the calls wait for each other without a cycle, and at most one
// call takes the client's body (a body can be read once).
func validatePlan(p *problems, ag *aggregateSrc) {
	index := map[string]int{}
	for i := range ag.Calls {
		if _, dup := index[ag.Calls[i].Name]; !dup {
			index[ag.Calls[i].Name] = i
		}
	}
	bodyAt := -1
	for i := range ag.Calls {
		c, src := &ag.Calls[i], ag.calls[i]
		if c.Body == BodyClient {
			if bodyAt >= 0 {
				p.addf(src.attrs.pos(attrCallBody), "%s: only one call may forward the client's body (call %q already does)", callSpec.ref(attrCallBody), ag.Calls[bodyAt].Name)
			} else {
				bodyAt = i
			}
		}
		for j, name := range c.After {
			at := src.attrs.pos(attrAfter)
			if j < len(src.afterPos) {
				at = src.afterPos[j]
			}
			switch _, ok := index[name]; {
			case name == c.Name:
				p.addf(at, "%s: call %q cannot wait for itself", callSpec.ref(attrAfter), name)
			case !ok:
				p.addf(at, "%s: no call named %q in %s %q", callSpec.ref(attrAfter), name, aggregateSpec.typ, ag.Name)
			case slices.Index(c.After, name) < j:
				p.addf(at, "%s: %q is listed twice", callSpec.ref(attrAfter), name)
			}
		}
		if !src.attrs.ok(attrPath) {
			continue
		}
		names, err := Placeholders(c.Path)
		if err != nil {
			continue // checkCallPath reported it
		}
		for _, n := range names {
			call, field, ok := ag.callRef(n)
			if !ok {
				continue
			}
			switch {
			case !slices.Contains(c.After, call):
				p.addf(src.attrs.pos(attrPath), "%s: {%s} uses call %q's answer, but %q is not in the call's %s", attrPath, n, call, call, attrAfter)
			case slices.Contains(strings.Split(field, "."), ""):
				p.addf(src.attrs.pos(attrPath), "%s: {%s} names no field of call %q's answer", attrPath, n, call)
			}
		}
	}
	if cycle := findCycle(ag.Calls, index); cycle != nil {
		first := cycle[0]
		names := make([]string, 0, len(cycle)+1)
		for _, i := range cycle {
			names = append(names, ag.Calls[i].Name)
		}
		names = append(names, ag.Calls[first].Name)
		p.addf(ag.calls[first].attrs.pos(attrAfter), "%s: the calls wait for each other in a cycle: %s", callSpec.ref(attrAfter), strings.Join(names, " → "))
	}
}

// findCycle returns the indexes of calls forming a cycle of after edges,
// starting from the first call (in declaration order) on one, or nil.
// Unknown names and self-references are left to the caller's messages.
func findCycle(calls []Call, index map[string]int) []int {
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]int, len(calls))
	var path []int
	var visit func(i int) []int
	visit = func(i int) []int {
		state[i] = onPath
		path = append(path, i)
		for _, name := range calls[i].After {
			j, ok := index[name]
			if !ok || j == i {
				continue
			}
			switch state[j] {
			case onPath:
				return slices.Clone(path[slices.Index(path, j):])
			case unseen:
				if c := visit(j); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[i] = done
		return nil
	}
	for i := range calls {
		if state[i] == unseen {
			if c := visit(i); c != nil {
				// Start the report at the earliest declared call on it.
				k := slices.Index(c, slices.Min(c))
				return append(c[k:], c[:k]...)
			}
		}
	}
	return nil
}
