package config_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
)

// mkdoc parses a document of routes given as "NAME PATH"; each route takes
// four lines, so route i starts on line 4i+1.
func mkdoc(t *testing.T, key string, index uint64, routes ...string) *config.Document {
	t.Helper()
	var b strings.Builder
	for _, r := range routes {
		name, path, _ := strings.Cut(r, " ")
		fmt.Fprintf(&b, "route %q {\n  path = %q\n  service = \"svc\"\n}\n", name, path)
	}
	d, err := config.Parse(key, []byte(b.String()), index)
	if err != nil {
		t.Fatalf("mkdoc: %v", err)
	}
	return d
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name  string
		cands func(t *testing.T) []config.Candidate
		// accepted maps each serving key to the ModifyIndex it serves.
		accepted map[string]uint64
		errs     map[string][]string
	}{
		{
			name: "independent keys unaffected",
			cands: func(t *testing.T) []config.Candidate {
				return []config.Candidate{
					{Key: "a", Current: mkdoc(t, "a", 5, "a1 /a", "a2 /a/2"), LastGood: mkdoc(t, "a", 4, "a1 /a")},
					{Key: "b", Current: mkdoc(t, "b", 3, "b1 /b")},
					{Key: "c", LastGood: mkdoc(t, "c", 2, "c1 /c")}, // newest version of c failed to parse
				}
			},
			accepted: map[string]uint64{"a": 5, "b": 3, "c": 2},
		},
		{
			name: "duplicate name across keys keeps the newer key's last good",
			cands: func(t *testing.T) []config.Candidate {
				return []config.Candidate{
					// Listed first but newer: input order must not matter.
					{Key: "b", Current: mkdoc(t, "b", 9, "b1 /b", "users /b/users"), LastGood: mkdoc(t, "b", 3, "b1 /b")},
					{Key: "a", Current: mkdoc(t, "a", 5, "a1 /a", "users /a/users")},
				}
			},
			accepted: map[string]uint64{"a": 5, "b": 3},
			errs: map[string][]string{
				"b": {`b:5:1: route name "users" already defined in a at 5:1`},
			},
		},
		{
			name: "newer conflicting key without last good serves nothing",
			cands: func(t *testing.T) []config.Candidate {
				return []config.Candidate{
					{Key: "a", Current: mkdoc(t, "a", 5, "users /a")},
					{Key: "b", Current: mkdoc(t, "b", 9, "users /b")},
				}
			},
			accepted: map[string]uint64{"a": 5},
			errs: map[string][]string{
				"b": {`b:1:1: route name "users" already defined in a at 1:1`},
			},
		},
		{
			name: "identical matchers across keys",
			cands: func(t *testing.T) []config.Candidate {
				return []config.Candidate{
					{Key: "a", Current: mkdoc(t, "a", 5, "x /x")},
					{Key: "b", Current: mkdoc(t, "b", 6, "other /o", "y /x")},
				}
			},
			accepted: map[string]uint64{"a": 5},
			errs: map[string][]string{
				"b": {`b:5:1: route "y" matches the same requests as route "x" in a at 1:1`},
			},
		},
		{
			name: "last good conflicting too serves nothing and says so",
			cands: func(t *testing.T) []config.Candidate {
				return []config.Candidate{
					{Key: "a", Current: mkdoc(t, "a", 5, "x /x")},
					{Key: "b", Current: mkdoc(t, "b", 9, "x /b"), LastGood: mkdoc(t, "b", 2, "y /b", "z /x")},
				}
			},
			accepted: map[string]uint64{"a": 5},
			errs: map[string][]string{
				"b": {
					`b:1:1: route name "x" already defined in a at 1:1`,
					`b:5:1: last good version (index 2): route "z" matches the same requests as route "x" in a at 1:1`,
				},
			},
		},
		{
			name: "unchanged conflicting version reported once",
			cands: func(t *testing.T) []config.Candidate {
				a := mkdoc(t, "a", 5, "x /x")
				b := mkdoc(t, "b", 9, "x /b")
				return []config.Candidate{{Key: "a", Current: a}, {Key: "b", Current: b, LastGood: b}}
			},
			accepted: map[string]uint64{"a": 5},
			errs: map[string][]string{
				"b": {`b:1:1: route name "x" already defined in a at 1:1`},
			},
		},
		{
			name: "failed parse keeps last good and its age",
			cands: func(t *testing.T) []config.Candidate {
				return []config.Candidate{
					{Key: "b", LastGood: mkdoc(t, "b", 2, "x /b")},
					{Key: "a", Current: mkdoc(t, "a", 5, "x /a")},
				}
			},
			accepted: map[string]uint64{"b": 2},
			errs: map[string][]string{
				"a": {`a:1:1: route name "x" already defined in b at 1:1`},
			},
		},
		{
			name: "equal indexes tie by key",
			cands: func(t *testing.T) []config.Candidate {
				return []config.Candidate{
					{Key: "b", Current: mkdoc(t, "b", 7, "x /b")},
					{Key: "a", Current: mkdoc(t, "a", 7, "x /a")},
				}
			},
			accepted: map[string]uint64{"a": 7},
			errs: map[string][]string{
				"b": {`b:1:1: route name "x" already defined in a at 1:1`},
			},
		},
		{
			name: "key with nothing serves nothing",
			cands: func(t *testing.T) []config.Candidate {
				return []config.Candidate{{Key: "a"}}
			},
			accepted: map[string]uint64{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			accepted, errs := config.Resolve(tt.cands(t))
			got := map[string]uint64{}
			for k, d := range accepted {
				if d.Key != k {
					t.Errorf("accepted[%q].Key = %q", k, d.Key)
				}
				got[k] = d.ModifyIndex
			}
			if !reflect.DeepEqual(got, tt.accepted) {
				t.Errorf("accepted = %v, want %v", got, tt.accepted)
			}
			gotErrs := map[string][]string{}
			for k, es := range errs {
				for _, e := range es {
					gotErrs[k] = append(gotErrs[k], e.Error())
				}
			}
			if tt.errs == nil {
				tt.errs = map[string][]string{}
			}
			if !reflect.DeepEqual(gotErrs, tt.errs) {
				t.Errorf("errs:\n got %q\nwant %q", gotErrs, tt.errs)
			}
		})
	}
}
