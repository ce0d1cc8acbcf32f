package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
)

// splitBlock is one split block's lines.
func splitBlock(body ...string) []string {
	return append(append([]string{`  split {`}, body...), `  }`)
}

// TestSplitErrors lists each split rule with its position and message.
func TestSplitErrors(t *testing.T) {
	v1 := splitBlock(`    service = "u"`, `    tag = "v1"`, `    weight = 95`)
	lines := func(parts ...[]string) []byte {
		out := []string{`  path = "/u"`}
		for _, p := range parts {
			out = append(out, p...)
		}
		return routeWith(out...)
	}
	tests := []struct {
		name string
		src  []byte
		want []string
	}{
		{"service and splits", lines([]string{`  service = "u"`}, v1),
			[]string{`k:3:13: only one of "service" and split blocks may be set`}},
		{"tag beside splits", lines([]string{`  tag = "v1"`}, v1),
			[]string{`k:3:9: tag goes inside each split block`}},
		{"sticky beside splits", lines(v1, []string{`  sticky {`, `    cookie = "s"`, `  }`}),
			[]string{`k:8:3: sticky is not supported on a route with split blocks`}},
		{"mirror beside splits", lines(v1, []string{`  mirror {`, `    service = "m"`, `  }`}),
			[]string{`k:8:3: mirror is not supported on a route with split blocks`}},
		{"missing weight", lines(splitBlock(`    service = "u"`)),
			[]string{`k:3:3: split: missing required attribute "weight"`}},
		{"no positive weight", lines(splitBlock(`    service = "u"`, `    weight = 0`, `    when_cookie = { c = "1" }`)),
			[]string{`k:3:3: at least one split must have a positive weight`}},
		{"missing service", lines(splitBlock(`    weight = 1`)),
			[]string{`k:3:3: split: missing required attribute "service"`}},
		{"negative weight", lines(v1, splitBlock(`    service = "u"`, `    weight = -1`)),
			[]string{`k:10:14: weight must be between 0 and 10000, got -1`}},
		{"weight too large", lines(splitBlock(`    service = "u"`, `    weight = 10001`)),
			[]string{`k:5:14: weight must be between 0 and 10000, got 10001`}},
		{"fractional weight", lines(splitBlock(`    service = "u"`, `    weight = 0.5`)),
			[]string{`k:5:14: weight must be a whole number`}},
		{"zero weight without condition", lines(v1, splitBlock(`    service = "u"`, `    weight = 0`)),
			[]string{`k:10:14: weight 0 needs when_header or when_cookie`}},
		{"duplicate destination", lines(v1, v1),
			[]string{`k:8:3: split: destination "u" tag "v1" already split at 3:3`}},
		{"bad header name", lines(splitBlock(`    service = "u"`, `    weight = 1`, `    when_header = { "a b" = "1" }`)),
			[]string{`k:6:19: when_header: "a b" is not a valid name`}},
		{"empty value", lines(splitBlock(`    service = "u"`, `    weight = 1`, `    when_cookie = { c = "" }`)),
			[]string{`k:6:19: when_cookie["c"] must be 1 to 256 printable bytes`}},
		{"long value", lines(splitBlock(`    service = "u"`, `    weight = 1`, `    when_cookie = { c = "`+strings.Repeat("x", 257)+`" }`)),
			[]string{`k:6:19: when_cookie["c"] must be 1 to 256 printable bytes`}},
		{"empty map", lines(splitBlock(`    service = "u"`, `    weight = 1`, `    when_header = {}`)),
			[]string{`k:6:19: when_header must not be empty`}},
		{"too many conditions", lines(splitBlock(`    service = "u"`, `    weight = 1`, `    when_header = { a = "1", b = "1", c = "1" }`, `    when_cookie = { d = "1", e = "1" }`)),
			[]string{`k:3:3: split: at most 4 when_header and when_cookie entries are allowed, got 5`}},
	}
	var many [][]string
	for i := range config.MaxSplits + 1 {
		many = append(many, splitBlock(fmt.Sprintf(`    service = "s%d"`, i), `    weight = 1`))
	}
	tests = append(tests, struct {
		name string
		src  []byte
		want []string
	}{"too many splits", lines(many...), []string{fmt.Sprintf(`k:%d:3: at most %d split blocks are allowed in a route`, 3+4*config.MaxSplits, config.MaxSplits)}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectErrors(t, tt.src, tt.want)
		})
	}
}

// TestSplitZeroWeightForced accepts a destination reached only by its
// conditions (blue/green before any share moves) and canonicalises
// header names.
func TestSplitZeroWeightForced(t *testing.T) {
	src := routeWith(`  path = "/u"`,
		`  split {`, `    service = "u"`, `    weight = 1`, `  }`,
		`  split {`, `    service = "u"`, `    tag = "v2"`, `    weight = 0`, `    when_header = { "x-CANARY" = "1" }`, `  }`)
	d, err := config.Parse("k", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	sp := d.Routes[0].Splits
	if len(sp) != 2 || sp[1].Weight != 0 || sp[1].WhenHeader["X-Canary"] != "1" || d.Routes[0].Service != "" {
		t.Fatalf("splits = %+v", sp)
	}
}
