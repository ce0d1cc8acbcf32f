package gateway

import (
	"slices"
	"strings"
)

// OnPublish sets f to be called on the controller's goroutine after every
// table it publishes, e.g. to hand the table's ACME hosts to the
// certificate manager off the request path. f must not block: the next
// build waits for it. Call it before Run.
func (c *Controller) OnPublish(f func(*Table)) { c.published = f }

// ACMEHosts returns the hosts of the table's `acme = true` routes, lower
// case, sorted and without duplicates.
func (t *Table) ACMEHosts() []string {
	var hosts []string
	for _, r := range t.routes {
		if r.Config.ACME && r.Config.Host != "" {
			hosts = append(hosts, strings.ToLower(r.Config.Host))
		}
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}
