package gateway

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gatewayco/gateway/gateway/config"
)

// maxDiffItems bounds each list of a "routing table changed" log line, so
// a first load of 10,000 routes logs one line of a few hundred bytes;
// /routes has the rest.
const maxDiffItems = 10

// maxDiffItemBytes bounds each item of those lists: route names and keys
// are only bounded by their document's size, and one line must not carry
// megabytes of a hostile name.
const maxDiffItemBytes = 128

// servedKeys returns the ModifyIndex of the version each key serves in t:
// its last accepted version, unless t lists it as serving nothing.
func (c *Controller) servedKeys(t *Table) map[string]uint64 {
	out := make(map[string]uint64, len(c.keys))
	for k, st := range c.keys {
		if st.lastGood != nil {
			out[k] = st.lastGood.ModifyIndex
		}
	}
	for _, e := range t.Errors() {
		if e.Serving == "nothing" {
			delete(out, e.Key)
		}
	}
	return out
}

// logTableChange logs, at info, what a publish changed from prev to next:
// the keys whose served version changed, the routes added, removed or
// changed with them, and the services whose instance count moved. A
// rebuild that changed none of these (an instance's health flapped back,
// say) logs nothing. keys is servedKeys of next; c.announced holds the
// previous one.
func (c *Controller) logTableChange(prev, next *Table, keys map[string]uint64) {
	old := c.announced
	c.announced = keys
	var keyDiff []string
	changedKeys := map[string]bool{}
	for k, idx := range keys {
		switch o, ok := old[k]; {
		case !ok:
			keyDiff = append(keyDiff, fmt.Sprintf("+%s@%d", k, idx))
			changedKeys[k] = true
		case o != idx:
			keyDiff = append(keyDiff, fmt.Sprintf("~%s@%d", k, idx))
			changedKeys[k] = true
		}
	}
	for k := range old {
		if _, ok := keys[k]; !ok {
			keyDiff = append(keyDiff, "-"+k)
		}
	}
	before := routeSources(prev)
	after := routeSources(next)
	var added, removed, changed []string
	for name, src := range after {
		switch oldSrc, ok := before[name]; {
		case !ok:
			added = append(added, name)
		case oldSrc != src || changedKeys[src]:
			changed = append(changed, name)
		}
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			removed = append(removed, name)
		}
	}
	var insts []string
	for k, in := range next.services {
		if o, ok := prev.services[k]; !ok || len(o) != len(in) {
			insts = append(insts, fmt.Sprintf("%s %d→%d", k, len(prev.services[k]), len(in)))
		}
	}
	for k, o := range prev.services {
		if _, ok := next.services[k]; !ok {
			insts = append(insts, fmt.Sprintf("%s %d→gone", k, len(o)))
		}
	}
	if len(keyDiff)+len(added)+len(removed)+len(changed)+len(insts) == 0 {
		return
	}
	args := []any{"routes", len(after)}
	for _, f := range []struct {
		name  string
		items []string
	}{{"keys", keyDiff}, {"routes_added", added}, {"routes_removed", removed}, {"routes_changed", changed}, {"instances", insts}} {
		if len(f.items) > 0 {
			args = append(args, f.name, boundedList(f.items))
		}
	}
	c.logger.Info("routing table changed", args...)
}

// routeSources maps each route and aggregate of t to its document key.
func routeSources(t *Table) map[string]string {
	out := make(map[string]string, len(t.routes)+len(t.aggregates))
	for _, r := range t.routes {
		out[r.Config.Name] = r.Config.SourceKey
	}
	for _, a := range t.aggregates {
		out[a.Config.Name] = a.Config.SourceKey
	}
	return out
}

// boundedList sorts items and joins at most maxDiffItems of them, saying
// how many more there were.
func boundedList(items []string) string {
	slices.Sort(items)
	more := ""
	if len(items) > maxDiffItems {
		more = fmt.Sprintf(" and %d more", len(items)-maxDiffItems)
		items = items[:maxDiffItems]
	}
	for i, it := range items {
		items[i] = cutItem(it)
	}
	return strings.Join(items, ", ") + more
}

// cutItem is s cut to maxDiffItemBytes on a rune boundary, marked "…"
// when cut.
func cutItem(s string) string {
	if len(s) <= maxDiffItemBytes {
		return s
	}
	n := maxDiffItemBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// problemPos is where the first problem of a rejected document is, for
// the log line; ok is false for a problem without a position.
func problemPos(err error) (pos config.Pos, ok bool) {
	var e *config.Error
	if errors.As(err, &e) {
		return e.Pos, true
	}
	return config.Pos{}, false
}
