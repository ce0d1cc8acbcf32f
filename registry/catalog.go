package registry

import (
	"context"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Bounds on what a Catalog keeps of Consul's service list. Tags are
// written by anyone who may register a service, so they are bounded before
// anything else reads them; what is left out is counted, not hidden.
const (
	// MaxCatalogServices is how many services with a matching tag a
	// Catalog keeps, the first by name.
	MaxCatalogServices = 1000
	// MaxServiceTags is how many matching tags of one service it keeps,
	// the first in sorted order.
	MaxServiceTags = 32
	// MaxTagBytes is the longest tag it keeps.
	MaxTagBytes = 512
)

// ServiceTags is one service's tags that start with a Catalog's prefix.
type ServiceTags struct {
	// Name is the Consul service name.
	Name string
	// Tags are the matching tags, sorted, at most MaxServiceTags, each at
	// most MaxTagBytes long.
	Tags []string
	// Skipped counts the matching tags left out by those two bounds.
	Skipped int
}

// CatalogSnapshot is what a Catalog publishes: the services with at least
// one matching tag, sorted by name, and how many were left out past
// MaxCatalogServices.
type CatalogSnapshot struct {
	Services        []ServiceTags
	SkippedServices int
}

// Catalog watches the tags of every service in the local datacenter with
// one blocking /v1/catalog/services query, keeping only the tags that start
// with a prefix (e.g. Fabio's "urlprefix-").
type Catalog struct {
	w *watch[CatalogSnapshot]
}

// NewCatalog returns a watcher of the services' tags starting with prefix.
// notify is as for NewKV. Nothing runs until Run is called.
func NewCatalog(client *api.Client, prefix string, opts Options, notify func()) *Catalog {
	opts = opts.withDefaults()
	cat := client.Catalog()
	fetch := func(q *api.QueryOptions) (CatalogSnapshot, *api.QueryMeta, error) {
		services, meta, err := cat.Services(q)
		if err != nil {
			return CatalogSnapshot{}, nil, err
		}
		return filterTags(services, prefix), meta, nil
	}
	log := opts.Logger.Named("catalog").With("tag_prefix", prefix)
	return &Catalog{w: newWatch(fetch, equalCatalog, notify, opts, log)}
}

// Run watches until ctx is done and returns only once nothing of the watch
// is left running. Call it once, typically in its own goroutine.
func (c *Catalog) Run(ctx context.Context) { c.w.run(ctx) }

// Services returns the latest snapshot; ok is false until the first
// successful answer. While Consul is unreachable the last snapshot is
// kept. The value is shared: callers must not modify it.
func (c *Catalog) Services() (snap CatalogSnapshot, ok bool) { return c.w.snapshot() }

// filterTags keeps the services with tags starting with prefix, applying
// the bounds above.
func filterTags(services map[string][]string, prefix string) CatalogSnapshot {
	var snap CatalogSnapshot
	names := make([]string, 0, len(services))
	for name, tags := range services {
		if slices.ContainsFunc(tags, func(t string) bool { return strings.HasPrefix(t, prefix) }) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if len(names) > MaxCatalogServices {
		snap.SkippedServices = len(names) - MaxCatalogServices
		names = names[:MaxCatalogServices]
	}
	for _, name := range names {
		st := ServiceTags{Name: name}
		tags := slices.Clone(services[name])
		slices.Sort(tags)
		tags = slices.Compact(tags)
		for _, t := range tags {
			switch {
			case !strings.HasPrefix(t, prefix):
			case len(t) > MaxTagBytes || len(st.Tags) == MaxServiceTags:
				st.Skipped++
			default:
				st.Tags = append(st.Tags, t)
			}
		}
		snap.Services = append(snap.Services, st)
	}
	return snap
}

func equalCatalog(a, b CatalogSnapshot) bool {
	return a.SkippedServices == b.SkippedServices && slices.EqualFunc(a.Services, b.Services, func(x, y ServiceTags) bool {
		return x.Name == y.Name && x.Skipped == y.Skipped && slices.Equal(x.Tags, y.Tags)
	})
}
