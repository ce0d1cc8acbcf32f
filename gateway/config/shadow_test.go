package config_test

import (
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
)

func TestOverlayBaseWins(t *testing.T) {
	kv := mustParse(t, "routes/a", `
route "users" {
  path_prefix = "/users"
  service     = "users"
}
route "taken" {
  path_prefix = "/taken"
  service     = "x"
}`)
	tags := mustParse(t, "fabio:web", `
route "fabio-web-1" {
  path_prefix = "/users"
  service     = "web"
}
route "taken" {
  path_prefix = "/other"
  service     = "web"
}
route "fabio-web-2" {
  path_prefix = "/web"
  service     = "web"
}
route "fabio-web-3" {
  path_prefix = "/web"
  host        = "a.example"
  service     = "web"
}`)
	again := mustParse(t, "fabio:web2", `
route "fabio-web2-1" {
  path_prefix = "/web"
  service     = "web2"
}`)
	added, shadowed := config.Overlay(kv.Routes, nil, []*config.Document{tags, again})
	var names []string
	for _, r := range added {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "fabio-web-2,fabio-web-3" {
		t.Errorf("added %v", names)
	}
	var msgs []string
	for _, s := range shadowed {
		msgs = append(msgs, s.Route.SourceKey+": "+s.Message)
	}
	want := []string{
		`fabio:web: route "fabio-web-1" shadowed: route "users" in routes/a matches the same requests`,
		`fabio:web: route name "taken" already used by route "taken" in routes/a`,
		`fabio:web2: route "fabio-web2-1" shadowed: route "fabio-web-2" in fabio:web matches the same requests`,
	}
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Errorf("shadowed:\n%s", strings.Join(msgs, "\n"))
	}
}

func mustParse(t *testing.T, key, src string) *config.Document {
	t.Helper()
	d, err := config.Parse(key, []byte(src), 1)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
