package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatewayco/gateway/gateway/config"
)

// doc joins lines with newlines, so a case's line numbers are its indexes+1.
func doc(lines ...string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }

func TestParseValidDocument(t *testing.T) {
	src := doc(
		`route "users" {`,
		`  path_prefix  = "/api/users"`,
		`  methods      = ["get", "POST", "Get"]`,
		`  host         = "api.example.com"`,
		`  service      = "users"`,
		`  tag          = "v1"`,
		`  strip_prefix = "/api"`,
		`  balancer     = "random"`,
		`  timeout      = "1m30s"`,
		`}`,
		``,
		`# Minimal: every optional attribute takes its default.`,
		`route "user" {`,
		`  path    = "/api/user/{id:[0-9]+}"`,
		`  service = "users"`,
		`}`,
	)
	got, err := config.Parse("routes/users", src, 42)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &config.Document{
		Key:         "routes/users",
		ModifyIndex: 42,
		Routes: []config.Route{
			{
				Name:        "users",
				SourceKey:   "routes/users",
				Pos:         config.Pos{Key: "routes/users", Line: 1, Column: 1},
				PathPrefix:  "/api/users",
				Methods:     []string{"GET", "POST"},
				Host:        "api.example.com",
				Service:     "users",
				Tag:         "v1",
				StripPrefix: "/api",
				Balancer:    "random",
				Timeout:     90 * time.Second,
			},
			{
				Name:      "user",
				SourceKey: "routes/users",
				Pos:       config.Pos{Key: "routes/users", Line: 13, Column: 1},
				Path:      "/api/user/{id:[0-9]+}",
				Service:   "users",
				Balancer:  "round_robin",
			},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseEmptyDocument(t *testing.T) {
	for _, src := range []string{"", "# nothing yet\n", "\n\n"} {
		got, err := config.Parse("k", []byte(src), 7)
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		if len(got.Routes) != 0 || got.Key != "k" || got.ModifyIndex != 7 {
			t.Errorf("Parse(%q) = %+v, want empty document k@7", src, got)
		}
	}
}

// TestParseAllOrNothing checks that one bad route rejects the whole document,
// so the gateway never serves half of what an operator wrote.
func TestParseAllOrNothing(t *testing.T) {
	src := doc(
		`route "good" {`,
		`  path    = "/good"`,
		`  service = "good"`,
		`}`,
		`route "bad" {`,
		`  path = "/bad"`,
		`}`,
	)
	got, err := config.Parse("k", src, 1)
	if got != nil {
		t.Errorf("Parse returned a document despite errors: %+v", got)
	}
	var es config.Errors
	if !errors.As(err, &es) || len(es) != 1 {
		t.Fatalf("Parse error = %v, want exactly one config.Errors element", err)
	}
	if !errors.Is(err, config.ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
	}
	if want := `k:5:1: route "bad": missing required attribute "service"`; es[0].Error() != want {
		t.Errorf("error = %q, want %q", es[0].Error(), want)
	}
	if es[0].Pos != (config.Pos{Key: "k", Line: 5, Column: 1}) {
		t.Errorf("Pos = %+v", es[0].Pos)
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users.routes") // any extension: content is always HCL
	if err := os.WriteFile(path, doc(`route "a" {`, `  path = "/a"`, `  service = "a"`, `}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := config.ParseFile(path)
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	if got.Key != path || got.ModifyIndex != 0 || len(got.Routes) != 1 || got.Routes[0].Pos.Key != path {
		t.Errorf("ParseFile = %+v", got)
	}

	bad := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(bad, doc(`route "a" {`, `  path = "a"`, `  service = "a"`, `}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.ParseFile(bad); !errors.Is(err, config.ErrInvalid) || !strings.HasPrefix(err.Error(), bad+":2:10: ") {
		t.Errorf("ParseFile(bad) = %v, want ErrInvalid at %s:2:10", err, bad)
	}

	_, err = config.ParseFile(filepath.Join(dir, "missing.hcl"))
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, config.ErrInvalid) {
		t.Errorf("ParseFile(missing) = %v, want fs.ErrNotExist and not ErrInvalid", err)
	}
}
