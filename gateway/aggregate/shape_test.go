package aggregate

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gatewayco/gateway/gateway/config"
)

// TestShaperAppliesTargetFieldsOmitRename covers each shaping step alone
// and together, on objects, collections and values shaping cannot cut.
func TestShaperAppliesTargetFieldsOmitRename(t *testing.T) {
	user := `{"id":7,"name":"Ada","email":"a@x","address":{"city":"Paris","zip":"75001","geo":{"lat":1,"lng":2}},"tags":["a"]}`
	tests := []struct {
		name  string
		shape config.Shape
		in    string
		want  string
	}{
		{"fields keep listed members in answer order", config.Shape{Fields: []string{"name", "id"}}, user,
			`{"id":7,"name":"Ada"}`},
		{"fields with a nested path keep the structure", config.Shape{Fields: []string{"id", "address.city", "address.geo.lat"}}, user,
			`{"id":7,"address":{"city":"Paris","geo":{"lat":1}}}`},
		{"fields naming an absent member keep nothing for it", config.Shape{Fields: []string{"id", "phone", "name.first"}}, user,
			`{"id":7}`},
		{"empty fields keep nothing", config.Shape{Fields: []string{}}, user, `{}`},
		{"omit drops members, nested too", config.Shape{Omit: []string{"email", "address.zip", "address.geo", "tags"}}, user,
			`{"id":7,"name":"Ada","address":{"city":"Paris"}}`},
		{"rename renames at any level", config.Shape{Fields: []string{"id", "address.city"}, Rename: map[string]string{"id": "user_id", "address.city": "town"}}, user,
			`{"user_id":7,"address":{"town":"Paris"}}`},
		{"a renamed member replaces one of its new name", config.Shape{Rename: map[string]string{"id": "name"}, Fields: []string{"id", "name"}}, user,
			`{"name":7}`},
		{"target takes a sub-object first", config.Shape{Target: "data", Fields: []string{"id"}}, `{"data":{"id":1,"x":2},"meta":{}}`,
			`{"id":1}`},
		{"target with a dot path", config.Shape{Target: "data.user"}, `{"data":{"user":{"id":1}}}`, `{"id":1}`},
		{"absent target is null", config.Shape{Target: "data"}, `{"meta":1}`, `null`},
		{"target into a non-object is null", config.Shape{Target: "data.x"}, `{"data":[1]}`, `null`},
		{"collection: fields apply per element", config.Shape{Fields: []string{"id"}, Rename: map[string]string{"id": "sku"}},
			`[{"id":1,"p":2},{"id":2,"p":3},{"p":4}]`, `[{"sku":1},{"sku":2},{}]`},
		{"collection: scalars under an allow list are dropped", config.Shape{Fields: []string{"id"}}, `[{"id":1},5,"x"]`, `[{"id":1}]`},
		{"nested collection: paths go through arrays", config.Shape{Fields: []string{"orders.id"}},
			`{"user":1,"orders":[{"id":"a","total":1},{"id":"b","total":2}]}`, `{"orders":[{"id":"a"},{"id":"b"}]}`},
		{"a scalar answer passes unchanged", config.Shape{Fields: []string{"id"}}, `42`, `42`},
		{"keys and values are copied as written", config.Shape{Omit: []string{"b"}}, `{"a\"<":1.50,"b":2,"\u00e9":"\u00e9"}`,
			`{"a\"<":1.50,"\u00e9":"\u00e9"}`},
		{"escaped keys match their paths; a renamed key is encoded", config.Shape{Fields: []string{"é", "<b>"}, Rename: map[string]string{"é": "e<"}},
			` { "\u00e9" : [ 1 , {"x":"}"} ] , "<b>":true, "c" : null } `, `{"e<":[ 1 , {"x":"}"} ],"<b>":true}`},
		{"repeated keys: the last wins", config.Shape{Fields: []string{"a"}}, `{"a":1,"a":2}`, `{"a":2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newShaper(tt.shape)
			if s == nil {
				t.Fatal("shape is not active")
			}
			got, err := s.apply([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Fatalf("%s is not valid JSON", got)
			}
		})
	}
}

// TestShaperBoundsTheMembersItVisits: an answer with more members and
// elements than MaxShapeItems fails instead of being walked.
func TestShaperBoundsTheMembersItVisits(t *testing.T) {
	s := newShaper(config.Shape{Fields: []string{"id"}})
	small := "[" + strings.Repeat(`{},`, MaxShapeItems-1) + "{}]"
	if _, err := s.apply([]byte(small)); err != nil {
		t.Fatalf("%d elements: %v", MaxShapeItems, err)
	}
	big := "[" + strings.Repeat(`{},`, MaxShapeItems) + "{}]"
	if _, err := s.apply([]byte(big)); !errors.Is(err, errShapeTooLarge) {
		t.Fatalf("%d elements: err %v, want errShapeTooLarge", MaxShapeItems+1, err)
	}
}

// TestBusinessErrorFindsTopLevelErrorOnly: a 2xx whose object carries a
// top-level "error" that is not null is a business failure; an error
// further down, a null one, or a string mentioning it is not.
func TestBusinessErrorFindsTopLevelErrorOnly(t *testing.T) {
	tests := []struct {
		body   string
		failed bool
		detail string
	}{
		{`{"error":"quota exceeded"}`, true, `"quota exceeded"`},
		{`{"data":1,"error":{"code":7}}`, true, `{"code":7}`},
		{`{"\u0065rror":true}`, true, `true`},
		{`{"error":null}`, false, ""},
		{`{"data":{"error":"deep"}}`, false, ""},
		{`{"msg":"\"error\""}`, false, ""},
		{`["error"]`, false, ""},
		{`{"error":"` + strings.Repeat("x", maxErrorDetail) + `"}`, true, ""},
	}
	for _, tt := range tests {
		r := businessError(callResult{body: []byte(tt.body)})
		if got := r.err.Kind == KindBusiness; got != tt.failed {
			t.Errorf("%.40s: business failure %v, want %v", tt.body, got, tt.failed)
			continue
		}
		if tt.failed && (r.err.Status != 200 || string(r.err.Detail) != tt.detail) {
			t.Errorf("%.40s: status %d detail %s, want 200 and %s", tt.body, r.err.Status, r.err.Detail, tt.detail)
		}
	}
}

// FuzzShape checks that shaping any valid JSON answer yields valid JSON,
// or an error, and that classifying it never panics.
func FuzzShape(f *testing.F) {
	for _, s := range []string{`{"data":{"id":1,"a":{"b":[{"c":1,"d":2}]}}}`, `[{"id":1},2,[3]]`, `{"error":1}`, `"x"`, `{"a":1,"a":{}}`} {
		f.Add([]byte(s))
	}
	s := newShaper(config.Shape{Target: "data", Fields: []string{"id", "a.b.c", "a.b.d"}, Omit: []string{"a.b.d"},
		Rename: map[string]string{"id": "a", "a.b": "id"}})
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.TrimSpace(body)
		if !json.Valid(body) || !utf8.Valid(body) {
			return // do refuses such answers before any shaping
		}
		_ = businessError(callResult{body: body})
		budget := MaxShapeItems
		if ms, ok, err := objectMembers(body, &budget); ok && err == nil {
			// The scanner splits as encoding/json decodes.
			dec := json.NewDecoder(bytes.NewReader(body))
			_, _ = dec.Token()
			for i := 0; dec.More(); i++ {
				k, _ := dec.Token()
				var v json.RawMessage
				if err := dec.Decode(&v); err != nil || i >= len(ms) || ms[i].key != k || !bytes.Equal(ms[i].val, v) {
					t.Fatalf("member %d of %s: scanner %q, decoder %q %s", i, body, ms[min(i, len(ms)-1)].key, k, v)
				}
			}
		} else if err != nil {
			t.Fatalf("scanner failed on valid %s: %v", body, err)
		}
		for _, sh := range []*shaper{s, {keep: s.keep}, {omit: s.omit}, {rename: s.rename}} {
			out, err := sh.apply(body)
			if err == nil && !json.Valid(out) {
				t.Fatalf("shaping %s gave invalid JSON %s", body, out)
			}
		}
	})
}

// BenchmarkShape measures what shaping adds per call: a 1 KiB user answer
// cut to three fields and a rename, and the business-error scan every
// successful answer gets.
func BenchmarkShape(b *testing.B) {
	body := []byte(`{"id":42,"name":"Ada","bio":"` + strings.Repeat("x", 900) + `","address":{"city":"Paris","zip":"75001"},"tags":["a","b"]}`)
	s := newShaper(config.Shape{Fields: []string{"id", "name", "address.city"}, Rename: map[string]string{"id": "user_id"}})
	b.Run("fields+rename", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.apply(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("business-error-scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = businessError(callResult{body: body})
		}
	})
}
