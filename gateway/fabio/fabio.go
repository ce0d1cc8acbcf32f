// Package fabio turns Fabio's `urlprefix-` service tags into route
// documents, so services registered for Fabio are routed with no change.
//
// Tags are hostile input (anyone who may register a service writes them):
// each is checked against a strict grammar before anything is made of it,
// rendered as one HCL route block, and parsed by config.Parse like any KV
// document, so the same validation applies. A tag outside the supported
// subset is rejected with a reason; it never affects other tags.
package fabio

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// TagPrefix starts every tag this package reads.
const TagPrefix = "urlprefix-"

// KeyPrefix starts the key of every synthetic document, "fabio:<service>",
// which cannot clash with a KV key (those live under the route prefix).
const KeyPrefix = "fabio:"

// MaxRoutes bounds the routes made from tags across all services; tags
// past it are rejected, so tags alone cannot fill the table.
const MaxRoutes = 1000

// maxServiceName bounds a service name put in a route name.
const maxServiceName = 128

// Rejection is a tag that made no route, and why.
type Rejection struct {
	// Key is the synthetic document key, KeyPrefix + service.
	Key string
	// Service is the service that carries the tag.
	Service string
	// Tag is the tag as registered (empty for a note about the service).
	Tag string
	// Reason says what is wrong.
	Reason string
}

// Message renders the rejection for logs and /routes.
func (r Rejection) Message() string {
	if r.Tag == "" {
		return fmt.Sprintf("service %q: %s", r.Service, r.Reason)
	}
	return fmt.Sprintf("service %q: tag %q ignored: %s", r.Service, r.Tag, r.Reason)
}

// Documents makes one document per service from its tags, in the order of
// snap (sorted by service), and lists every tag it could not use. Each
// route is named after its service and tag (see RouteName), so names are
// stable across restarts. Documents with no route are left out.
func Documents(snap registry.CatalogSnapshot) (docs []*config.Document, rejected []Rejection) {
	return DocumentsWith(snap, Route)
}

// DocumentsWith is Documents translating each tag with route (Route, or a
// cache in front of it).
func DocumentsWith(snap registry.CatalogSnapshot, route func(service, tag string) (config.Route, error)) (docs []*config.Document, rejected []Rejection) {
	routes := 0
	if snap.SkippedServices > 0 {
		rejected = append(rejected, Rejection{Key: KeyPrefix + "*", Service: "*",
			Reason: fmt.Sprintf("%d services with %s tags left out, past the limit of %d", snap.SkippedServices, TagPrefix, registry.MaxCatalogServices)})
	}
	for _, s := range snap.Services {
		key := KeyPrefix + s.Name
		reject := func(tag, format string, args ...any) {
			rejected = append(rejected, Rejection{Key: key, Service: s.Name, Tag: tag, Reason: fmt.Sprintf(format, args...)})
		}
		if s.Skipped > 0 {
			reject("", "%d %s tags left out: longer than %d bytes or past %d tags per service",
				s.Skipped, TagPrefix, registry.MaxTagBytes, registry.MaxServiceTags)
		}
		if !validService(s.Name) {
			for _, t := range s.Tags {
				reject(t, "service name must be 1 to %d of [A-Za-z0-9_.-]", maxServiceName)
			}
			continue
		}
		doc := &config.Document{Key: key}
		for _, t := range s.Tags {
			if routes == MaxRoutes {
				reject(t, "more than %d routes from tags", MaxRoutes)
				continue
			}
			r, err := route(s.Name, t)
			if err != nil {
				reject(t, "%v", err)
				continue
			}
			doc.Routes = append(doc.Routes, r)
			routes++
		}
		if len(doc.Routes) > 0 {
			docs = append(docs, doc)
		}
	}
	return docs, rejected
}

// RouteName is the name of the route made from service's tag: stable for
// a given pair, and short whatever the tag's length.
func RouteName(service, tag string) string {
	sum := sha256.Sum256([]byte(tag))
	return "fabio-" + service + "-" + hex.EncodeToString(sum[:4])
}

// Route turns one tag of service into a validated route. The route's tag
// filter is the whole tag, as Fabio routes only to the instances that
// carry it.
func Route(service, tag string) (config.Route, error) {
	t, err := parseTag(tag)
	if err != nil {
		return config.Route{}, err
	}
	key := KeyPrefix + service
	src := t.hcl(RouteName(service, tag), service, tag)
	doc, err := config.Parse(key, []byte(src), 0)
	if err != nil {
		return config.Route{}, err
	}
	return doc.Routes[0], nil
}

// validService reports whether name may appear in a route name and a
// rendered document unescaped.
func validService(name string) bool {
	if name == "" || len(name) > maxServiceName {
		return false
	}
	for _, c := range []byte(name) {
		if !isAlnum(c) && !strings.ContainsRune("_.-", rune(c)) {
			return false
		}
	}
	return true
}
