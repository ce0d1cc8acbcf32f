package config_test

import (
	"errors"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
)

// FuzzParse checks that no document, however broken, panics the parser or
// yields an error without a position: Parse runs on whatever anyone writes
// to Consul, and the CLI promises KEY:LINE:COL for every problem. Parse
// bounds size, nesting and tokens before HCL runs, so no input can exhaust
// the fuzzer's stack or memory either; the corpus in testdata holds
// nesting-heavy seeds (every kind of nesting, past the bound and inside
// text), block and attribute floods, long strings and templates.
func FuzzParse(f *testing.F) {
	seeds := [][]byte{
		doc(
			`route "users" {`,
			`  path_prefix  = "/api/users"`,
			`  methods      = ["GET", "post"]`,
			`  host         = "{sub}.example.com"`,
			`  service      = "users"`,
			`  tag          = "v1"`,
			`  strip_prefix = "/api"`,
			`  balancer     = "random"`,
			`  timeout      = "5s"`,
			`}`,
		),
		doc(`route "u" {`, `  path = "/u/{id:[0-9]+}"`, `  service = "u"`, `}`),
		doc(`route "" {`, `  path = "/{a"`, `  service = var.x`, `  jwt {}`, `}`),
		doc(`route "a" "b" {`, `  path = lower("/A")`, `  methods = [null, 1, "G T"]`, `}`),
		doc(`route {`, `  timeout = "-1s"`, `  host = "{"`, `}`, `x = 1`),
		doc(`route "a" {`, `  path = "/x`, `}`),
		doc(`route "a" {`, `  path = "/${x}"`, `  service = <<EOT`, `s`, `EOT`, `}`),
		doc(`route "a" {`, `  path = {a = 1}`, `  service = [for s in [1] : s]`, `  tag = 1e999999`, `}`),
		doc(`aggregate "d" {`, `  path = "/d/{id:[0-9]+}"`, `  host = "{t}.x"`, `  timeout = "2s"`, `  timeout_status = 408`,
			`  max_concurrency = 2`, `  max_response_bytes = 100`, `  forward_headers = ["X-T"]`,
			`  call "u" {`, `    service = "u"`, `    path = "/u/{id}?t={t}&q={query.q}"`, `    required = true`, `    timeout = "1s"`, `  }`, `}`),
		doc(`aggregate "d" {`, `  path = "/d/{"`, `  call "" {`, `    path = "/{x}/{query.}/{"`, `  }`, `  call "" {}`, `}`),
		doc(`aggregate "s" {`, `  path = "/s"`, `  static = { a = [1, null, { b = true }] }`, `  business_status = "upstream"`,
			`  call "u" {`, `    service = "u"`, `    path = "/u"`, `    target = "data.x"`, `    fields = ["id", "a.b.c"]`,
			`    omit = ["a.b.d"]`, `    rename = { id = "uid", "a.b" = "z" }`, `    flatten = true`, `  }`,
			`  call "v" {`, `    service = "v"`, `    path = "/v"`, `    group = "uid"`, `  }`, `}`),
		doc(`aggregate "s" {`, `  path = "/s"`, `  static = "{\"a\":"`, `  business_status = 1e9`,
			`  call "u" {`, `    service = "u"`, `    path = "/u"`, `    fields = [".", ""]`, `    rename = { "" = "" }`, `    group = ""`, `    flatten = "yes"`, `  }`, `}`),
		[]byte("\xef\xbb\xbfroute \"a\" {\r\n}\r\n"),
		[]byte("route \"\xff\" {}"),
		{},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		d, err := config.Parse("k", src, 1)
		if err == nil {
			if d == nil {
				t.Fatal("nil Document without an error")
			}
			return
		}
		if d != nil {
			t.Fatal("Document returned with an error")
		}
		var es config.Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error %T %v is not a non-empty config.Errors", err, err)
		}
		if !errors.Is(err, config.ErrInvalid) {
			t.Fatalf("error %v does not match ErrInvalid", err)
		}
		for _, e := range es {
			if e.Pos.Key != "k" || e.Pos.Line < 1 || e.Pos.Column < 1 {
				t.Fatalf("error without a position: %+v", e)
			}
		}
	})
}
