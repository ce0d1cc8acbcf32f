package registry

import (
	"fmt"
	"strings"
	"testing"
)

// TestFilterTagsBounds checks the bounds a Catalog applies to hostile
// tags: prefix filter, per-service count, length, and service count.
func TestFilterTagsBounds(t *testing.T) {
	services := map[string][]string{
		"none": {"a", "b"},
		"web":  {"urlprefix-/b", "urlprefix-/a", "urlprefix-/a", "other", "urlprefix-/" + strings.Repeat("x", MaxTagBytes)},
	}
	var many []string
	for i := range MaxServiceTags + 5 {
		many = append(many, fmt.Sprintf("urlprefix-/%03d", i))
	}
	services["many"] = many
	snap := filterTags(services, "urlprefix-")
	if len(snap.Services) != 2 || snap.Services[0].Name != "many" || snap.Services[1].Name != "web" {
		t.Fatalf("services %+v", snap.Services)
	}
	if m := snap.Services[0]; len(m.Tags) != MaxServiceTags || m.Skipped != 5 || m.Tags[0] != "urlprefix-/000" {
		t.Errorf("many: %d tags, %d skipped", len(m.Tags), m.Skipped)
	}
	if w := snap.Services[1]; strings.Join(w.Tags, ",") != "urlprefix-/a,urlprefix-/b" || w.Skipped != 1 {
		t.Errorf("web: %q, %d skipped", w.Tags, w.Skipped)
	}

	lots := map[string][]string{}
	for i := range MaxCatalogServices + 7 {
		lots[fmt.Sprintf("s%05d", i)] = []string{"urlprefix-/"}
	}
	snap = filterTags(lots, "urlprefix-")
	if len(snap.Services) != MaxCatalogServices || snap.SkippedServices != 7 || snap.Services[0].Name != "s00000" {
		t.Errorf("%d services kept, %d skipped", len(snap.Services), snap.SkippedServices)
	}
	if !equalCatalog(snap, filterTags(lots, "urlprefix-")) {
		t.Error("equal inputs compare unequal")
	}
}
