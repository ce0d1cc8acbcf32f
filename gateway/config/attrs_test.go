package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// attrV is the one attribute of testSpec, the block TestAttrs reads.
var (
	attrV    = attr{"v"}
	testSpec = declare(&blockSpec{typ: "test", attrs: []attr{attrV}})
)

// TestAttrs covers every typed reader against one attribute `v` on line 1.
func TestAttrs(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		read    func(*attrs) any
		want    any
		wantErr string // prefix; empty means no error
	}{
		{"str", `v = "x"`, strOf, "x", ""},
		{"str wrong type", `v = true`, strOf, "", "k:1:5: v must be a string, got bool"},
		{"str absent", ``, strOf, "", ""},

		{"list", `v = ["a", "b"]`, listOf, []string{"a", "b"}, ""},
		{"list of null", `v = ["a", null]`, listOf, []string(nil), "k:1:11: v must be a list of strings, element 1 is null"},
		{"list not literal", `v = (["a"])`, listOf, []string{"a"}, ""},

		{"duration", `v = "250ms"`, durOf, 250 * time.Millisecond, ""},
		{"duration bad", `v = "soon"`, durOf, time.Duration(0), `k:1:5: v: invalid duration "soon"`},

		{"int", `v = 42`, intOf, 42, ""},
		{"int negative", `v = -3`, intOf, -3, ""},
		{"int fraction", `v = 1.5`, intOf, 0, "k:1:5: v must be a whole number, got 1.5"},
		{"int overflow", `v = 1e40`, intOf, 0, "k:1:5: v is out of range"},
		{"int wrong type", `v = "1"`, intOf, 0, "k:1:5: v must be a number, got string"},

		{"number", `v = 0.25`, numOf, 0.25, ""},
		{"number huge", `v = 1e400`, numOf, 0.0, "k:1:5: v is out of range"},

		{"bool", `v = true`, boolOf, true, ""},
		{"bool wrong type", `v = "true"`, boolOf, false, "k:1:5: v must be a bool, got string"},

		{"map", `v = { a = "1", "b-c" = "2" }`, mapOf, map[string]string{"a": "1", "b-c": "2"}, ""},
		{"map value not string", `v = { a = 1 }`, mapOf, map[string]string(nil), `k:1:5: v["a"] must be a string, got number`},
		{"map wrong type", `v = ["a"]`, mapOf, map[string]string(nil), "k:1:5: v must be a map of strings, got tuple"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file, diags := hclsyntax.ParseConfig([]byte(tt.src), "k", hcl.InitialPos)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			set, diags := file.Body.JustAttributes()
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			p := &problems{key: "k"}
			a := newAttrs(p, testSpec, set)
			if got := tt.read(a); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("value = %#v, want %#v", got, tt.want)
			}
			switch {
			case tt.wantErr == "" && len(p.errs) > 0:
				t.Errorf("unexpected errors: %v", p.errs)
			case tt.wantErr != "" && (len(p.errs) != 1 || !strings.HasPrefix(p.errs[0].Error(), tt.wantErr)):
				t.Errorf("errors = %v, want one starting %q", p.errs, tt.wantErr)
			}
			if ok := a.ok(attrV); ok != (tt.wantErr == "" && a.has(attrV)) {
				t.Errorf("ok = %v with errors %v", ok, p.errs)
			}
		})
	}
}

func strOf(a *attrs) any  { return a.str(attrV) }
func durOf(a *attrs) any  { return a.duration(attrV) }
func intOf(a *attrs) any  { return a.integer(attrV) }
func numOf(a *attrs) any  { return a.number(attrV) }
func boolOf(a *attrs) any { return a.boolean(attrV) }
func mapOf(a *attrs) any  { return a.strMap(attrV) }
func listOf(a *attrs) any {
	v, _ := a.strList(attrV)
	return v
}
