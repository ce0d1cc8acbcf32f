package gateway

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/internal/registrytest"
	"github.com/gatewayco/gateway/registry"
)

// TestControllerLogsEveryTableChangeAndRejection: each publish that
// changes what is served logs one info line naming the keys, routes and
// instance counts that moved; a rejected document logs its key, line and
// column; a rebuild that changes nothing visible logs nothing.
func TestControllerLogsEveryTableChangeAndRejection(t *testing.T) {
	var buf bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info, DisableTime: true})
	gw := New(Options{})
	c := NewController(gw, logger)
	docs, insts := &registrytest.Docs{}, &registrytest.Instances{}
	a1 := registry.Instance{ID: "a1", Address: "127.0.0.1", Port: 1, Passing: true}
	a2 := registry.Instance{ID: "a2", Address: "127.0.0.1", Port: 2, Passing: true}
	insts.Set("svc-a", a1)
	step := func(name string, change func(), want ...string) {
		t.Helper()
		buf.Reset()
		change()
		c.reload(context.Background(), docs, insts)
		got := strings.TrimSpace(buf.String())
		var lines []string
		if got != "" {
			lines = strings.Split(got, "\n")
		}
		if len(lines) != len(want) {
			t.Fatalf("%s: logged %d lines, want %d:\n%s", name, len(lines), len(want), got)
		}
		for i, w := range want {
			if !regexp.MustCompile(w).MatchString(lines[i]) {
				t.Errorf("%s: line %q does not match %q", name, lines[i], w)
			}
		}
	}
	step("first load", func() { docs.Put("k1", docA) },
		`^\[INFO\]  routing table changed: routes=1 keys="\+k1@\d+" routes_added=a instances="svc-a 0→1"$`)
	step("second key", func() { docs.Put("k2", docB) },
		`routing table changed: routes=2 keys="\+k2@\d+" routes_added=b instances="svc-b 0→0"$`)
	step("an instance joins", func() { insts.Set("svc-a", a1, a2) },
		`routing table changed: routes=2 instances="svc-a 1→2"$`)
	step("nothing visible changes", func() {})
	step("a bad version keeps the last good one", func() { docs.Put("k2", "route \"b\" {\n  path_prefix = \n}\n") },
		`^\[ERROR\] route document rejected: key=k2 serving="last good version" error=.* line=2 column=\d+$`)
	step("the fix changes the route", func() { docs.Put("k2", strings.Replace(docB, `"/b"`, `"/bb"`, 1)) },
		`routing table changed: routes=2 keys=~k2@\d+ routes_changed=b$`)
	step("a key goes", func() { docs.Delete("k1") },
		`route document removed: key=k1$`,
		`routing table changed: routes=1 keys=-k1 routes_removed=a instances="svc-a 2→gone"$`)
}

func TestBoundedListCutsLongDiffs(t *testing.T) {
	var items []string
	for i := range 25 {
		items = append(items, string(rune('a'+i)))
	}
	if got := boundedList(items); got != "a, b, c, d, e, f, g, h, i, j and 15 more" {
		t.Errorf("boundedList = %q", got)
	}
}

// A route name or key is as long as its document lets it be; the line
// stays a few hundred bytes whatever the items' lengths.
func TestBoundedListCutsLongItems(t *testing.T) {
	items := make([]string, maxDiffItems)
	for i := range items {
		items[i] = string(rune('a'+i)) + strings.Repeat("é", 50_000)
	}
	got := boundedList(items)
	if max := maxDiffItems * (maxDiffItemBytes + len(", ") + len("…")); len(got) > max {
		t.Fatalf("boundedList of %d long items is %d bytes, want at most %d", len(items), len(got), max)
	}
	if !strings.HasPrefix(got, "aéé") || !strings.Contains(got, "…, bé") || !utf8.ValidString(got) {
		t.Errorf("boundedList = %.80q…", got)
	}
}
