package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocLinksResolve keeps the README and docs/ navigable as they are
// split and edited: every relative link names a file that exists and, for
// a Markdown file, a heading (or <a id>) that exists in it, using
// GitHub's anchor rules.
func TestDocLinksResolve(t *testing.T) {
	files, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"README.md", "ARCHITECTURE.md"}, files...)
	anchors := map[string]map[string]bool{}
	texts := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts[f] = proseLines(string(b))
		anchors[f] = map[string]bool{}
		for _, l := range texts[f] {
			if m := heading.FindStringSubmatch(l); m != nil {
				anchors[f][anchorOf(m[1])] = true
			}
			for _, m := range explicitAnchor.FindAllStringSubmatch(l, -1) {
				anchors[f][m[1]] = true
			}
		}
	}
	for _, f := range files {
		for i, l := range texts[f] {
			for _, m := range mdLink.FindAllStringSubmatch(l, -1) {
				target := m[1]
				if strings.Contains(target, ":") || strings.HasPrefix(target, "/") {
					continue // a URL or an absolute path: not ours to check
				}
				path, frag, _ := strings.Cut(target, "#")
				dest := f
				if path != "" {
					dest = filepath.Clean(filepath.Join(filepath.Dir(f), path))
					if _, err := os.Stat(dest); err != nil {
						t.Errorf("%s:%d: link %q: %v", f, i+1, target, err)
						continue
					}
				}
				if frag == "" || !strings.HasSuffix(dest, ".md") {
					continue
				}
				if _, known := anchors[dest]; !known {
					continue // a Markdown file outside the documentation set
				}
				if !anchors[dest][frag] {
					t.Errorf("%s:%d: link %q: %s has no heading with anchor %q", f, i+1, target, dest, frag)
				}
			}
		}
	}
}

var (
	heading        = regexp.MustCompile(`^#{1,6} (.+)$`)
	explicitAnchor = regexp.MustCompile(`<a (?:name|id)="([^"]+)"`)
	mdLink         = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	notAnchorChar  = regexp.MustCompile(`[^\p{L}\p{N}_\- ]`)
)

// proseLines is text's lines with fenced code blocks blanked, so a "#" in
// a shell example is not taken for a heading.
func proseLines(text string) []string {
	lines := strings.Split(text, "\n")
	fenced := false
	for i, l := range lines {
		if strings.HasPrefix(l, "```") {
			fenced = !fenced
			lines[i] = ""
			continue
		}
		if fenced {
			lines[i] = ""
		}
	}
	return lines
}

// anchorOf is GitHub's anchor for a heading: lower case, punctuation
// dropped, spaces as hyphens.
func anchorOf(h string) string {
	s := notAnchorChar.ReplaceAllString(strings.ToLower(strings.TrimSpace(h)), "")
	return strings.ReplaceAll(s, " ", "-")
}
