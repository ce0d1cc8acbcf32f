package fabio_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/fabio"
	"github.com/gatewayco/gateway/registry"
)

func TestRouteSupportedSubset(t *testing.T) {
	cases := []struct {
		tag                           string
		host, prefix, strip, protocol string
	}{
		{tag: "urlprefix-/css", prefix: "/css"},
		{tag: "urlprefix-i.com/static", host: "i.com", prefix: "/static"},
		{tag: "urlprefix-mysite.com/", host: "mysite.com", prefix: "/"},
		{tag: "urlprefix-/foo/bar strip=/foo", prefix: "/foo/bar", strip: "/foo"},
		{tag: "urlprefix-/h proto=http", prefix: "/h", protocol: config.ProtocolHTTP},
		{tag: "urlprefix-/foo/bar proto=https", prefix: "/foo/bar", protocol: config.ProtocolHTTPS},
		{tag: "urlprefix-/g proto=grpc", prefix: "/g", protocol: config.ProtocolH2C},
		{tag: "urlprefix-/g proto=grpcs tlsskipverify=false", prefix: "/g", protocol: config.ProtocolHTTPS},
	}
	for _, c := range cases {
		r, err := fabio.Route("web", c.tag)
		if err != nil {
			t.Errorf("%q: %v", c.tag, err)
			continue
		}
		if r.Host != c.host || r.PathPrefix != c.prefix || r.StripPrefix != c.strip || r.Protocol != c.protocol {
			t.Errorf("%q: got host %q prefix %q strip %q protocol %q", c.tag, r.Host, r.PathPrefix, r.StripPrefix, r.Protocol)
		}
		if r.Service != "web" || r.Tag != c.tag || r.SourceKey != "fabio:web" || r.Name != fabio.RouteName("web", c.tag) {
			t.Errorf("%q: got service %q tag %q key %q name %q", c.tag, r.Service, r.Tag, r.SourceKey, r.Name)
		}
	}
}

func TestRouteRejectsHostileTags(t *testing.T) {
	bad := []string{
		"urlprefix-",
		"urlprefix-:3306 proto=tcp",
		"urlprefix-/a proto=tcp",
		"urlprefix-/a tlsskipverify=true",
		"urlprefix-/a strip=/b",
		"urlprefix-/a strip=/a strip=/a",
		"urlprefix-/a redirect=301,https://x/",
		"urlprefix-/a weight=0.5",
		"urlprefix-/a  proto=http",
		"urlprefix-/a\tproto=http",
		"urlprefix-/a\nproto=http",
		"urlprefix-*.example.com/",
		"urlprefix-Example.com/",
		"urlprefix-example.com:8080/",
		"urlprefix-/${env.HOME}",
		"urlprefix-/%{ for x in y }",
		`urlprefix-/a"b`,
		`urlprefix-/a\b`,
		"urlprefix-/{id}",
		"urlprefix-/%2e%2e",
		"urlprefix-ex..com/",
		"urlprefix-/a noval",
		"urlprefix-/\xff",
	}
	for _, tag := range bad {
		if r, err := fabio.Route("web", tag); !errors.Is(err, fabio.ErrTag) {
			t.Errorf("%q: got route %+v, err %v; want ErrTag", tag, r, err)
		}
	}
}

func TestDocumentsReportsAndBounds(t *testing.T) {
	snap := registry.CatalogSnapshot{
		Services: []registry.ServiceTags{
			{Name: "api", Tags: []string{"urlprefix-/api", "urlprefix-/x proto=tcp"}, Skipped: 2},
			{Name: "bad name", Tags: []string{"urlprefix-/b"}},
			{Name: "web", Tags: []string{"urlprefix-/"}},
		},
		SkippedServices: 3,
	}
	docs, rejected := fabio.Documents(snap)
	if len(docs) != 2 || docs[0].Key != "fabio:api" || len(docs[0].Routes) != 1 || docs[1].Key != "fabio:web" {
		t.Fatalf("docs: %+v", docs)
	}
	var msgs []string
	for _, r := range rejected {
		msgs = append(msgs, r.Key+" "+r.Message())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"3 services", `fabio:api service "api": 2 urlprefix- tags left out`, `tag "urlprefix-/x proto=tcp" ignored`, `fabio:bad name service "bad name": tag "urlprefix-/b" ignored`} {
		if !strings.Contains(all, want) {
			t.Errorf("rejections lack %q:\n%s", want, all)
		}
	}

	// Past MaxRoutes, tags are rejected, not routed.
	var many []registry.ServiceTags
	for i := range fabio.MaxRoutes/registry.MaxServiceTags + 1 {
		st := registry.ServiceTags{Name: "s" + strings.Repeat("x", i)}
		for j := range registry.MaxServiceTags {
			st.Tags = append(st.Tags, "urlprefix-/p"+strings.Repeat("y", j))
		}
		many = append(many, st)
	}
	docs, rejected = fabio.Documents(registry.CatalogSnapshot{Services: many})
	n := 0
	for _, d := range docs {
		n += len(d.Routes)
	}
	if n != fabio.MaxRoutes || len(rejected) != len(many)*registry.MaxServiceTags-fabio.MaxRoutes {
		t.Errorf("got %d routes and %d rejections", n, len(rejected))
	}
}

func TestRouteNameStable(t *testing.T) {
	a, b := fabio.RouteName("web", "urlprefix-/a"), fabio.RouteName("web", "urlprefix-/a")
	if a != b || a == fabio.RouteName("web", "urlprefix-/b") || !strings.HasPrefix(a, "fabio-web-") {
		t.Errorf("names %q %q", a, b)
	}
}

// FuzzRoute feeds arbitrary tags through the grammar and config.Parse: no
// panic, and a tag accepted makes a route that filters on exactly it.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{"urlprefix-/a strip=/a proto=grpc", "urlprefix-h.example/x", "urlprefix-/${a}", "urlprefix-/a\"\n}\nroute \"x\" {"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		r, err := fabio.Route("svc", tag)
		if err != nil {
			return
		}
		if r.Tag != tag || r.Service != "svc" || !strings.HasPrefix(tag, fabio.TagPrefix) || !strings.HasPrefix(r.PathPrefix, "/") {
			t.Fatalf("tag %q made %+v", tag, r)
		}
	})
}
