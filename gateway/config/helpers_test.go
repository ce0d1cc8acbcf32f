package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
)

// expectErrors parses src as key "k" and checks it is rejected as a whole
// (no document, config.Errors matching ErrInvalid) with exactly the
// errors want, each given as a prefix of its text (position first).
func expectErrors(t *testing.T, src []byte, want []string) {
	t.Helper()
	got, err := config.Parse("k", src, 1)
	if got != nil {
		t.Errorf("Parse returned a document despite errors: %+v", got)
	}
	var es config.Errors
	if !errors.As(err, &es) || !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("Parse error %v is not config.Errors matching ErrInvalid", err)
	}
	if len(es) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(es), len(want), err)
	}
	for i, e := range es {
		if !strings.HasPrefix(e.Error(), want[i]) {
			t.Errorf("error %d:\n got %q\nwant prefix %q", i, e.Error(), want[i])
		}
	}
}
