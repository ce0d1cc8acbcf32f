package config_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
)

// shapedCall is a call block named name with the given extra lines; it
// is 4+len(lines) lines long.
func shapedCall(name string, lines ...string) string {
	return strings.Join(append(append([]string{`  call "` + name + `" {`, `    service = "s"`, `    path = "/x"`}, lines...), `  }`), "\n")
}

func TestParseShapeErrors(t *testing.T) {
	many := make([]string, config.MaxShapePaths+1)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprint("f", i))
	}
	deep := strings.TrimSuffix(strings.Repeat("a.", config.MaxShapePathDepth+1), ".")
	tests := []struct {
		name string
		src  []byte
		want []string
	}{
		{"empty path segment", aggWith(shapedCall("c", `    fields = ["id", "address..city"]`)),
			[]string{`k:6:21: fields: path "address..city" has an empty segment`}},
		{"too deep", aggWith(shapedCall("c", `    omit = ["`+deep+`"]`)),
			[]string{fmt.Sprintf(`k:6:13: omit: path %q has more than %d segments, the limit`, deep, config.MaxShapePathDepth)}},
		{"too many fields", aggWith(shapedCall("c", `    fields = [`+strings.Join(many, ", ")+`]`)),
			[]string{fmt.Sprintf(`k:6:14: fields has %d paths, more than %d, the limit`, config.MaxShapePaths+1, config.MaxShapePaths)}},
		{"field listed twice", aggWith(shapedCall("c", `    fields = ["id", "id"]`)),
			[]string{`k:6:21: fields: path "id" is listed twice`}},
		{"fields not a list", aggWith(shapedCall("c", `    fields = "id"`)),
			[]string{`k:6:14: fields must be a list of strings, got string`}},
		{"rename to a path", aggWith(shapedCall("c", `    rename = { id = "a.b" }`)),
			[]string{`k:6:14: rename["id"]: the new name must be one non-empty segment, got "a.b"`}},
		{"rename two to one", aggWith(shapedCall("c", `    rename = { a = "x", b = "x" }`)),
			[]string{`k:6:14: rename: "a" and "b" are both renamed to "x"`}},
		{"rename onto a kept field", aggWith(shapedCall("c", `    fields = ["id", "user_id"]`, `    rename = { id = "user_id" }`)),
			[]string{`k:7:14: rename["id"] = "user_id" collides with "user_id" of fields`}},
		{"empty target segment", aggWith(shapedCall("c", `    target = ".data"`)),
			[]string{`k:6:14: target: path ".data" has an empty segment`}},
		{"group and flatten", aggWith(shapedCall("c", `    group = "g"`, `    flatten = true`)),
			[]string{`k:6:13: group and flatten = true exclude each other`}},
		{"empty group", aggWith(shapedCall("c", `    group = ""`)),
			[]string{`k:6:13: group must not be empty (use flatten = true`}},
		{"group errors", aggWith(shapedCall("c", `    group = "errors"`)),
			[]string{`k:6:13: call "c": member "errors" is reserved for the merged body's error member`}},
		{"two calls, one group", aggWith(shapedCall("a", `    group = "g"`), shapedCall("b", `    group = "g"`)),
			[]string{`k:11:13: call "b": member "g" of the merged body is already call "a"'s`}},
		{"group onto another call's name", aggWith(shapedCall("a"), shapedCall("b", `    group = "a"`)),
			[]string{`k:10:13: call "b": member "a" of the merged body is already call "a"'s`}},
		{"flat fields collide", aggWith(
			shapedCall("a", `    fields = ["id", "name"]`, `    flatten = true`),
			shapedCall("b", `    fields = ["x", "uid"]`, `    rename = { uid = "id" }`, `    flatten = true`)),
			[]string{`k:12:14: call "b": member "id" of the merged body is already call "a"'s`}},
		{"flat field collides with a group", aggWith(shapedCall("name"), shapedCall("b", `    fields = ["name.first"]`, `    flatten = true`)),
			[]string{`k:10:14: call "b": member "name" of the merged body is already call "name"'s`}},
		{"static collides with a group", aggWith(`  static = { user = 1 }`, shapedCall("user")),
			[]string{`k:4:3: call "user": member "user" of the merged body is already static's`}},
		{"static errors", aggWith(`  static = { errors = 1 }`, okCall),
			[]string{`k:3:12: static: member "errors" is reserved`}},
		{"static not an object", aggWith(`  static = ["a"]`, okCall),
			[]string{`k:3:12: static must be an object or a string of a JSON object, got tuple`}},
		{"static string not JSON", aggWith(`  static = "{nope"`, okCall),
			[]string{`k:3:12: static: the string is not valid JSON`}},
		{"static string not an object", aggWith(`  static = "[1]"`, okCall),
			[]string{`k:3:12: static must be a JSON object`}},
		{"static too large", aggWith(`  static = "{\"a\":\"`+strings.Repeat("x", config.MaxStaticBytes)+`\"}"`, okCall),
			[]string{fmt.Sprintf(`k:3:12: static is larger than %d bytes, the limit`, config.MaxStaticBytes)}},
		{"business_status 302", aggWith(`  business_status = 302`, okCall),
			[]string{`k:3:21: business_status must be 200, a 4xx or 5xx status, or "upstream", got 302`}},
		{"business_status word", aggWith(`  business_status = "pass"`, okCall),
			[]string{`k:3:21: business_status must be a status number or "upstream", got string`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { expectErrors(t, tt.src, tt.want) })
	}
}

// TestParseShapeDefaults: the group defaults to the call's name, flat
// calls without fields are accepted (their conflicts are run-time,
// last-wins), and business_status defaults to 200, timeout_status to 408.
func TestParseShapeDefaults(t *testing.T) {
	d, err := config.Parse("k", aggWith(
		shapedCall("a", `    flatten = true`),
		shapedCall("b", `    flatten = true`),
		shapedCall("c", `    fields = ["x.y"]`, `    omit = ["x.y.z"]`),
	), 1)
	if err != nil {
		t.Fatal(err)
	}
	ag := d.Aggregates[0]
	if ag.BusinessStatus != 200 || ag.TimeoutStatus != 408 || ag.Static != nil {
		t.Errorf("business_status %d timeout_status %d static %s, want 200 408 none", ag.BusinessStatus, ag.TimeoutStatus, ag.Static)
	}
	got := []config.Shape{ag.Calls[0].Shape, ag.Calls[1].Shape, ag.Calls[2].Shape}
	want := []config.Shape{{Flatten: true}, {Flatten: true}, {Fields: []string{"x.y"}, Omit: []string{"x.y.z"}, Group: "c"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("shapes %+v, want %+v", got, want)
	}
}
