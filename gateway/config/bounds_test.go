package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
)

// deep puts expr as the service of a route, on line 3 from column 13; the
// route's brace is the first level, so expr may open 31 more.
func deep(expr string) string {
	return "route \"a\" {\n  path = \"/a\"\n  service = " + expr + "\n}\n"
}

// rep repeats s n times.
func rep(s string, n int) string { return strings.Repeat(s, n) }

const depthMsg = "nesting deeper than 32 levels"

// parseErrs parses src as key "k" and returns the error lines.
func parseErrs(t *testing.T, src string) []string {
	t.Helper()
	_, err := config.Parse("k", []byte(src), 1)
	if err == nil {
		return nil
	}
	if !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("error %v does not match ErrInvalid", err)
	}
	return strings.Split(err.Error(), "\n")
}

func TestParseBoundsNestingDepth(t *testing.T) {
	n := config.MaxNestingDepth
	blocks := "route \"a\" {\n" + rep("  b {\n", n) + rep("}\n", n+1)
	tests := []struct {
		name string
		src  string
		at   string // where the depth error must be; "" for none
	}{
		// Each kind of nesting the parser recurses on, one level past the
		// bound: the position is where that level opens.
		{"parentheses", deep(rep("(", n) + "1" + rep(")", n)), "k:3:44"},
		{"brackets", deep(rep("[", n)), "k:3:44"},
		{"objects", deep(rep("{a=", n)), "k:3:106"},
		{"blocks", blocks, "k:33:5"},
		{"unary minus", deep(rep("-", n) + "1"), "k:3:44"},
		{"negation", deep(rep("!", n) + "true"), "k:3:44"},
		{"operator chain", deep("1" + rep("+1", n)), "k:3:76"},
		{"conditional chain", deep(rep("true?1:", n) + "1"), "k:3:234"},
		{"index chain", deep("x" + rep("[x]", n)), "k:3:104"},
		{"splat chain", deep("x" + rep("[*]", n)), "k:3:102"},
		{"interpolations", deep(rep(`"${`, n)), "k:3:59"},
		{"template directives", deep(`"` + rep("%{if true}", n) + rep("%{endif}", n) + `"`), "k:3:304"},
		{"heredocs", deep(rep("<<EOT\n${", n)), "k:19:1"},
		{"comparison chain", deep("1" + rep("==1", n)), "k:3:107"},

		// At the bound, or with brackets only in text, nothing is counted
		// past it.
		{"parentheses at the bound", deep(rep("(", n-1) + "1" + rep(")", n-1)), ""},
		{"blocks at the bound", "route \"a\" {\n" + rep("  b {\n", n-1) + rep("}\n", n), ""},
		{"operators end with their item", deep("[" + rep("-1,", 3*n) + "]"), ""},
		{"operators end with their line", "route \"a\" {\n  path = \"/a\"\n" + rep("  x = -1\n", 3*n) + "}\n", ""},
		{"brackets in strings", deep(`"` + rep("(([[{{", 3*n) + `"`), ""},
		{"brackets in comments", "# " + rep("((", n) + "\n// " + rep("[[", n) + "\n/* " + rep("{{\n", n) + " */\n" + deep(`"s"`), ""},
		{"brackets in heredocs", deep("<<EOT\n" + rep("((", n) + "\n  EOT"), ""},
		{"escaped interpolations", deep(`"` + rep("$${", 3*n) + rep("%%{", 3*n) + `"`), ""},
		{"sequential directives", deep(`"` + rep("%{if true}x%{endif}", 3*n) + `"`), ""},
		{"dashes in identifiers", deep("a-b-c-" + rep("d-", 3*n) + "e"), ""},
		{"exponents", deep("[" + rep("1e-5,", 3*n) + "]"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := parseErrs(t, tc.src)
			var got string
			for _, e := range errs {
				if strings.Contains(e, depthMsg) {
					got = e
				}
			}
			if tc.at == "" {
				if got != "" {
					t.Fatalf("rejected for depth: %s", got)
				}
				return
			}
			if len(errs) != 1 || !strings.HasPrefix(got, tc.at+": ") {
				t.Fatalf("errors %q, want exactly the depth error at %s", errs, tc.at)
			}
		})
	}
}

func TestParseBoundsDocumentSize(t *testing.T) {
	valid := deep(`"s"`)
	pad := func(n int) string { return valid + "#" + rep("x", n-len(valid)-2) + "\n" }
	if errs := parseErrs(t, pad(config.MaxDocumentBytes)); errs != nil {
		t.Fatalf("document of exactly MaxDocumentBytes rejected: %v", errs)
	}
	errs := parseErrs(t, pad(config.MaxDocumentBytes+1))
	want := "k:1:1: document is larger than 1048576 bytes (1 MiB), the limit; split its routes across several keys"
	if len(errs) != 1 || errs[0] != want {
		t.Fatalf("errors %q, want %q", errs, want)
	}
}

func TestParseBoundsTokens(t *testing.T) {
	// A line break is a token: an empty document of line breaks only.
	if errs := parseErrs(t, rep("\n", config.MaxDocumentTokens)); errs != nil {
		t.Fatalf("document of exactly MaxDocumentTokens rejected: %v", errs)
	}
	errs := parseErrs(t, rep("\n", config.MaxDocumentTokens+1))
	want := fmt.Sprintf("k:%d:1: document has more than 200000 tokens, the limit; split its routes across several keys", config.MaxDocumentTokens+1)
	if len(errs) != 1 || errs[0] != want {
		t.Fatalf("errors %q, want %q", errs, want)
	}
	// One token past the bound inside a line is placed at its column.
	errs = parseErrs(t, rep("\n", config.MaxDocumentTokens-1)+"x = 1")
	if want := fmt.Sprintf("k:%d:3:", config.MaxDocumentTokens); len(errs) != 1 || !strings.HasPrefix(errs[0], want) {
		t.Fatalf("errors %q, want one at %s", errs, want)
	}
}

// routesDoc has n routes of four lines each: route i starts on line 4i+1.
func routesDoc(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "route \"r%d\" {\n  path = \"/r%d\"\n  service = \"s\"\n}\n", i, i)
	}
	return b.String()
}

func TestParseBoundsCounts(t *testing.T) {
	attrs := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "  x%d = 1\n", i)
		}
		return b.String()
	}
	calls := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "  call \"c%d\" {\n    service = \"s\"\n    path = \"/c\"\n  }\n", i)
		}
		return b.String()
	}
	aggregate := func(n int) string { return "aggregate \"g\" {\n  path = \"/g\"\n" + calls(n) + "}\n" }
	tests := []struct {
		name, src string
		want      string // the only error, or "" when the document is valid
	}{
		{"routes per document", routesDoc(config.MaxBlocksPerDocument + 1),
			"k:20001:1: document has more than 5000 blocks (routes and aggregates), the limit; split it across several keys"},
		{"routes per document at the bound", routesDoc(config.MaxBlocksPerDocument), ""},
		{"attributes per block", "route \"a\" {\n" + attrs(config.MaxItemsPerBlock+1) + "}\n",
			"k:66:3: route block has more than 64 attributes and blocks, the limit"},
		{"attributes per nested block", "route \"a\" {\n  jwt {\n" + attrs(config.MaxItemsPerBlock+1) + "  }\n}\n",
			"k:67:3: jwt block has more than 64 attributes and blocks, the limit"},
		{"calls per aggregate", aggregate(config.MaxCallsPerAggregate + 1),
			"k:259:3: aggregate \"g\" has more than 64 call blocks, the limit"},
		{"calls per aggregate at the bound", aggregate(config.MaxCallsPerAggregate), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := parseErrs(t, tc.src)
			if tc.want == "" {
				if errs != nil {
					t.Fatalf("valid document rejected: %q", errs[:min(len(errs), 3)])
				}
				return
			}
			if len(errs) != 1 || errs[0] != tc.want {
				t.Fatalf("errors %q, want only %q", errs[:min(len(errs), 3)], tc.want)
			}
		})
	}
}

func TestParseReportsAtMostMaxReportedErrors(t *testing.T) {
	var b strings.Builder
	for i := range 3 {
		fmt.Fprintf(&b, "route \"r%d\" {\n  path = \"/r%d\"\n  service = \"s\"\n", i, i)
		for j := range 60 {
			fmt.Fprintf(&b, "  x%d = 1\n", j)
		}
		b.WriteString("}\n")
	}
	errs := parseErrs(t, b.String())
	if len(errs) != config.MaxReportedErrors+1 {
		t.Fatalf("%d errors, want %d and a summary", len(errs), config.MaxReportedErrors)
	}
	// Route 0 has 60 problems on lines 4-63; route 1's attributes start
	// on line 68, so its 41st (line 108) is the 101st problem.
	if want := "k:108:3: 80 more problems from here on, not shown"; errs[len(errs)-1] != want {
		t.Fatalf("last error %q, want %q", errs[len(errs)-1], want)
	}
}

// bulkDoc is a document of n routes named prefix0..., built directly: at
// these counts parsing would only slow the test down.
func bulkDoc(key, prefix string, index uint64, n int) *config.Document {
	d := &config.Document{Key: key, ModifyIndex: index}
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i)
		d.Routes = append(d.Routes, config.Route{Name: name, SourceKey: key, Pos: config.Pos{Key: key, Line: 4*i + 1, Column: 1},
			Path: "/" + name, Service: "s", Balancer: "round_robin"})
	}
	return d
}

func TestResolveBoundsTableRoutes(t *testing.T) {
	half := config.MaxTableRoutes / 2
	a, b := bulkDoc("a", "a", 1, half), bulkDoc("b", "b", 2, half)
	cOld, cNew := bulkDoc("c", "c", 3, 0), bulkDoc("c", "c", 4, 2)
	accepted, errs := config.Resolve([]config.Candidate{
		{Key: "a", Current: a, LastGood: a},
		{Key: "b", Current: b, LastGood: b},
		// Newest: it no longer fits, and falls back on its last good
		// version, which does.
		{Key: "c", Current: cNew, LastGood: cOld},
	})
	if accepted["a"] != a || accepted["b"] != b || accepted["c"] != cOld {
		t.Fatalf("accepted %v", accepted)
	}
	want := `c:1:1: route "c0" would be route or aggregate number 10001 of the table, more than the limit of 10000 across all documents`
	if len(errs["c"]) != 1 || errs["c"][0].Error() != want {
		t.Fatalf("errors of c: %v, want %q", errs["c"], want)
	}
	if len(errs["a"])+len(errs["b"]) != 0 {
		t.Fatalf("older documents rejected: %v", errs)
	}
}

// userRoutes is about 740 KB and 200,000 tokens of routes of nine
// attributes, as a user writes them.
func userRoutes() string {
	var b strings.Builder
	for i := 0; b.Len() < 740_000; i++ {
		fmt.Fprintf(&b, "route \"r%d\" {\n  path_prefix  = \"/api/r%d\"\n  methods      = [\"GET\", \"POST\"]\n  service      = \"svc%d\"\n"+
			"  timeout      = \"5s\"\n  retries      = 2\n  strip_prefix = \"/api\"\n  balancer     = \"random\"\n  host         = \"r%d.example.com\"\n}\n", i, i, i, i)
	}
	return b.String()
}

// BenchmarkParseAtBounds measures what a document costs at the bounds:
// the largest accepted (userRoutes padded with a comment to exactly
// MaxDocumentBytes), the worst flat one (a list up to the token bound,
// which HCL evaluates whole), and the rejections of the document that
// crashed the parser, at the start and after userRoutes, and of an
// oversized one.
func BenchmarkParseAtBounds(b *testing.B) {
	routes := userRoutes()
	cases := []struct {
		name, src string
		want      string // in the error; "" for a valid document
	}{
		{"largest accepted", routes + "# " + rep("x", config.MaxDocumentBytes-len(routes)-3) + "\n", ""},
		{"worst flat", deep("[" + rep("1,", config.MaxDocumentTokens/2-20) + "]"), "must be a string"},
		{"rejected at depth", deep(rep("[", 100_000)), depthMsg},
		{"rejected at depth after the routes", routes + deep(rep("[", 100_000)), depthMsg},
		{"rejected at size", deep(`"s"` + rep(" ", config.MaxDocumentBytes)), "larger than"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			src := []byte(c.src)
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				_, err := config.Parse("k", src, 1)
				if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
					b.Fatalf("error %.300v, want %q", err, c.want)
				}
			}
		})
	}
}
