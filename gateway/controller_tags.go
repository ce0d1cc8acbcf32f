package gateway

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/gateway/fabio"
	"github.com/gatewayco/gateway/registry"
)

// TagSource is the service-tag side of the registry (a registry.Catalog
// watching Fabio's urlprefix- tags): ok is false until Consul answered once.
type TagSource interface {
	Services() (snap registry.CatalogSnapshot, ok bool)
}

// SetTagSource makes the controller add routes from services' Fabio tags
// to every table, below the KV documents: a KV route or aggregate with the
// same name or matcher wins and the tag route is listed as shadowed. Call
// it before Run; the source's changes must reach Notify.
func (c *Controller) SetTagSource(src TagSource) {
	c.tags = &tagRoutes{src: src, cache: map[[2]string]tagResult{}, logged: map[string]bool{}}
}

// tagRoutes is the controller's state for routes from tags.
type tagRoutes struct {
	src TagSource
	// cache keeps each service and tag's translation across builds, which
	// health changes trigger far more often than tags change.
	cache map[[2]string]tagResult
	// logged holds the messages logged already, so each is logged once
	// while it lasts.
	logged map[string]bool
}

type tagResult struct {
	route config.Route
	err   error
}

// addTagRoutes appends the routes from tags that nothing in routes and
// aggs shadows, and one ConfigError per tag left out.
func (c *Controller) addTagRoutes(routes []config.Route, aggs []config.Aggregate, errs []ConfigError) ([]config.Route, []ConfigError) {
	if c.tags == nil {
		return routes, errs
	}
	snap, ok := c.tags.src.Services()
	if !ok {
		return routes, errs
	}
	cache := make(map[[2]string]tagResult, len(c.tags.cache))
	docs, rejected := fabio.DocumentsWith(snap, func(service, tag string) (config.Route, error) {
		k := [2]string{service, tag}
		res, hit := c.tags.cache[k]
		if !hit {
			res.route, res.err = fabio.Route(service, tag)
		}
		cache[k] = res
		return res.route, res.err
	})
	c.tags.cache = cache
	added, shadowed := config.Overlay(routes, aggs, docs)
	logged := make(map[string]bool, len(rejected)+len(shadowed))
	first := len(errs)
	note := func(key, msg string) {
		errs = append(errs, ConfigError{Key: key, Message: msg, Serving: servingNothing})
		logged[msg] = true
		if !c.tags.logged[msg] {
			c.logger.Warn("route from service tag left out", "key", key, "reason", msg)
		}
	}
	for _, r := range rejected {
		note(r.Key, r.Message())
	}
	for _, s := range shadowed {
		note(s.Route.SourceKey, s.Message)
	}
	c.tags.logged = logged
	// Listed by key, as the KV documents' errors are.
	slices.SortStableFunc(errs[first:], func(a, b ConfigError) int { return strings.Compare(a.Key, b.Key) })
	return append(routes, added...), errs
}

// rejectPanicked turns the tag route whose build panicked into a
// rejected tag, so the next build leaves it out rather than the previous
// table serving on; false when the panic was not a tag route's.
func (c *Controller) rejectPanicked(bp *buildPanic) bool {
	if c.tags == nil || bp.kind != "route" {
		return false
	}
	for k, res := range c.tags.cache {
		if res.err == nil && res.route.Name == bp.name && res.route.SourceKey == bp.at.Key {
			c.logger.Error("panic while building a route from a service tag; the tag is rejected", "key", bp.at.Key,
				"route", bp.name, "panic", fmt.Sprint(bp.cause.Value), "stack", string(bp.cause.Stack))
			c.tags.cache[k] = tagResult{err: fmt.Errorf("internal error while building its route (%v); it is rejected, please report this", bp.cause.Value)}
			return true
		}
	}
	return false
}
