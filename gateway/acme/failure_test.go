package acme

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestRecordFailureBoundsTextOnARuneBoundary: a CA's problem document is
// its own text, cut to maxFailureText bytes for /certs, and the cut must
// not split a character into invalid UTF-8.
func TestRecordFailureBoundsTextOnARuneBoundary(t *testing.T) {
	m := &Manager{hosts: map[string]bool{"a.test": true}, failures: map[string]Failure{}}
	long := strings.Repeat("a", maxFailureText-1) + strings.Repeat("é", 10)
	m.recordFailure(map[string]any{"identifier": "a.test"}, errors.New(long))
	f := m.Failures()
	if len(f) != 1 {
		t.Fatalf("failures %+v", f)
	}
	if !utf8.ValidString(f[0].Error) || len(f[0].Error) > maxFailureText+len("...") {
		t.Errorf("kept %d bytes, valid UTF-8 %v: %q", len(f[0].Error), utf8.ValidString(f[0].Error), f[0].Error[len(f[0].Error)-8:])
	}
}
