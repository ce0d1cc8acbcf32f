package config

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// treeDepth measures how deeply HCL nests the syntax tree of src, which is
// how deeply the parser recursed to build it and how deeply evaluation
// recurses over it.
func treeDepth(src []byte) int {
	file, _ := hclsyntax.ParseConfig(src, "k", hcl.InitialPos)
	if file == nil {
		return 0
	}
	w := &depthWalker{}
	_ = hclsyntax.Walk(file.Body.(*hclsyntax.Body), w)
	return w.deepest
}

type depthWalker struct{ cur, deepest int }

func (w *depthWalker) Enter(hclsyntax.Node) hcl.Diagnostics {
	w.cur++
	w.deepest = max(w.deepest, w.cur)
	return nil
}

func (w *depthWalker) Exit(hclsyntax.Node) hcl.Diagnostics {
	w.cur--
	return nil
}

// treePerLevel bounds the syntax tree nodes per level the scanner counts
// (a block is a Block and a Body, an object key a key wrapper and its
// expression, a splat three nodes for its three counted tokens).
const treePerLevel = 3

// FuzzNestingBound checks that the bounds scanner never undercounts: for
// any input it lets through, the tree HCL builds is no deeper than
// treePerLevel nodes per counted level. An input that breaks this could
// nest past MaxNestingDepth unseen, up to a stack overflow.
func FuzzNestingBound(f *testing.F) {
	for _, s := range []string{
		`route "a" { path = "/a" service = (((1))) }`,
		"route \"a\" {\n  x = [for k, v in {a = -1} : -v if !(v == 1)]\n}\n",
		"x = a ? b : c ? d : [e[*].f, g.*.h, i[j][k]]\n",
		"x = \"${\"${a}\"}%{if b}${c}%{else}d%{endif}%{for x in y}${x}%{endfor}\"\n",
		"x = <<-EOT\n  ${<<EOT\n${(1)}\nEOT\n}\n  EOT\n",
		"x = f(g(h(-1, !true), [{a: {b = [1]}}]))\n",
		"# ((((\n/* [[[[ */ x = \"(((\" // {{{\n",
		"x = \"$${((((\" y = \"%%{[[[[\"\n",
		"a { b { c { d = { e = [(1)] } } } }\n",
		"x = 1 + 2 * 3 / 4 % 5 - 6 == 7 != 8 && 9 || 10 < 11 > 12 <= 13 >= 14\n",
		"x = a.b[0].c[*].d.*.e[\"f\"]\n",
		"x = \"a\\\"${b}\\n\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if len(src) > 4096 {
			return // the property is about shape, not size; keep runs fast
		}
		s := newBoundsScanner(&problems{key: "k"}, src)
		s.run()
		if s.failed {
			return
		}
		if d := treeDepth(src); d > treePerLevel*(s.deepest+1)+2 {
			t.Fatalf("syntax tree %d deep, scanner counted %d levels", d, s.deepest)
		}
	})
}

// TestNestingBoundIsTight checks the fuzz property is not vacuous: deep
// inputs reach a deep tree, and the scanner counts each of their levels.
func TestNestingBoundIsTight(t *testing.T) {
	for _, src := range []string{
		"x = " + strings.Repeat("(", 20) + "1" + strings.Repeat(")", 20),
		"x = " + strings.Repeat("-", 20) + "1",
		"x = a" + strings.Repeat("[*]", 10),
	} {
		s := newBoundsScanner(&problems{key: "k"}, []byte(src))
		s.run()
		if d := treeDepth([]byte(src)); s.deepest < 10 || d < 10 || d > treePerLevel*(s.deepest+1)+2 {
			t.Fatalf("%q: tree %d deep, scanner %d", src, d, s.deepest)
		}
	}
}
