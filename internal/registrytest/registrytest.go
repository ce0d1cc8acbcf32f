// Package registrytest stands in for the registry's live views, so the
// gateway's controller can be driven in tests without Consul: Docs plays
// the KV watch of route documents and Instances the health watches. The
// integration tests run the same rules against a real agent.
package registrytest

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/gatewayco/gateway/registry"
)

// Docs is a route-document snapshot tests edit; the zero value has not
// answered yet (Documents reports ok=false until the first Put, Set or
// Ready). Safe for concurrent use.
type Docs struct {
	mu   sync.Mutex
	docs map[string]registry.Document
	ok   bool
	idx  uint64
}

// Put stores src under key as a new version, with the next ModifyIndex.
func (f *Docs) Put(key, src string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.idx++
	f.set(registry.Document{Key: key, Value: []byte(src), ModifyIndex: f.idx})
}

// Set stores src under key with explicit indexes, as Consul reports them.
func (f *Docs) Set(key, src string, modify, create uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set(registry.Document{Key: key, Value: []byte(src), ModifyIndex: modify, CreateIndex: create})
}

func (f *Docs) set(d registry.Document) {
	if f.docs == nil {
		f.docs = map[string]registry.Document{}
	}
	f.docs[d.Key] = d
	f.ok = true
}

// Delete removes key.
func (f *Docs) Delete(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.docs, key)
}

// Ready makes Documents answer, even with no document.
func (f *Docs) Ready() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ok = true
}

// Documents returns the snapshot sorted by key, as the KV watch does.
func (f *Docs) Documents() ([]registry.Document, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]registry.Document, 0, len(f.docs))
	for _, d := range f.docs {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b registry.Document) int { return strings.Compare(a.Key, b.Key) })
	return out, f.ok
}

// Instances serves each service's instances by name (any tag), as tests
// set them, and remembers what the controller asked to watch. Safe for
// concurrent use.
type Instances struct {
	mu      sync.Mutex
	insts   map[string][]registry.Instance
	ensured []registry.ServiceKey
}

// Set makes service name list insts.
func (f *Instances) Set(name string, insts ...registry.Instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.insts == nil {
		f.insts = map[string][]registry.Instance{}
	}
	f.insts[name] = insts
}

// Ensure records keys as the watched set.
func (f *Instances) Ensure(ctx context.Context, keys []registry.ServiceKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ensured = slices.Clone(keys)
}

// Ensured is the watched set the controller asked for last.
func (f *Instances) Ensured() []registry.ServiceKey {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ensured)
}

// Instances returns what Set gave key's service; ok is false for a
// service never set, as for a watch that has not answered.
func (f *Instances) Instances(k registry.ServiceKey) ([]registry.Instance, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.insts[k.Name]
	return in, ok
}
