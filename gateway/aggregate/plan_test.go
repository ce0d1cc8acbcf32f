package aggregate

import (
	"errors"
	"strings"
	"testing"
)

func TestAnswerValueReadsScalarsAsWritten(t *testing.T) {
	body := `{"user":{"id":"a\u00e9\/b","n":-1.5e3,"ok":true,"no":false,"nil":null,"o":{},"l":[1]},"id":1,"id":2}`
	ans := newAnswers([]callResult{{body: []byte(body)}})
	for _, tt := range []struct {
		field, want string
	}{
		{"user.id", "aé/b"}, {"user.n", "-1.5e3"}, {"user.ok", "true"}, {"user.no", "false"}, {"id", "2"},
		{"user.nil", ""}, {"user.o", ""}, {"user.l", ""}, {"user.missing", ""}, {"user.id.x", ""}, {"user", ""},
	} {
		got, err := ans.value(&ref{call: "c", field: strings.Split(tt.field, ".")})
		if tt.want == "" {
			if !errors.Is(err, errRefValue) {
				t.Errorf("{c.%s} = %q, %v; want errRefValue", tt.field, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("{c.%s} = %q, %v; want %q", tt.field, got, err, tt.want)
		}
	}
}

// A value is taken from an answer of any size without decoding it: the
// answer's bytes are bounded by the budget, a decoded copy would not be.
func TestAnswerValueDoesNotDecodeTheAnswer(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := range 20_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"k":"v","n":1}`)
	}
	b.WriteString(`],"account_id":"acc-9"}`)
	results := []callResult{{body: []byte(b.String())}}
	r := &ref{call: "user", field: []string{"account_id"}}
	allocs := testing.AllocsPerRun(5, func() {
		// A request's answers are new: the first read is the one counted.
		if v, err := newAnswers(results).value(r); err != nil || v != "acc-9" {
			t.Fatalf("value = %q, %v", v, err)
		}
	})
	if allocs > 20 {
		t.Errorf("value of a 20,000-element answer made %.0f allocations, want a handful", allocs)
	}
}
