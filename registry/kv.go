package registry

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"
)

// KV watches every key under a prefix with one blocking recursive KV list
// query, however many keys there are.
type KV struct {
	w *watch[[]Document]
}

// NewKV returns a watcher of the keys under prefix. The prefix is matched as a
// plain string prefix, as Consul does: "routes" also matches "routes2/x", so
// pass "routes/" to watch a folder. Keys ending in "/" (folder markers created
// by the Consul UI) carry no document and are left out.
//
// notify, if non-nil, is called from the watch goroutine after each change of
// the snapshot; it must be cheap and must not block (e.g. a non-blocking send
// on a channel of capacity 1). Nothing runs until Run is called.
func NewKV(client *api.Client, prefix string, opts Options, notify func()) *KV {
	opts = opts.withDefaults()
	kv := client.KV()
	fetch := func(q *api.QueryOptions) ([]Document, *api.QueryMeta, error) {
		pairs, meta, err := kv.List(prefix, q)
		if err := aclChecked(fmt.Sprintf("KV prefix %q", prefix), "key_prefix read", meta, err); err != nil {
			return nil, nil, err
		}
		return toDocuments(pairs), meta, nil
	}
	log := opts.Logger.Named("kv").With("prefix", prefix)
	return &KV{w: newWatch(fetch, equalDocuments, notify, opts, log)}
}

// Run watches until ctx is done and returns only once nothing of the watch is
// left running. Call it once per KV, typically in its own goroutine.
func (k *KV) Run(ctx context.Context) { k.w.run(ctx) }

// Documents returns the latest snapshot sorted by key; ok is false until the
// first successful answer. While Consul is unreachable the last snapshot is
// kept. The slice is shared: callers must not modify it or its values.
func (k *KV) Documents() (docs []Document, ok bool) { return k.w.snapshot() }

func toDocuments(pairs api.KVPairs) []Document {
	docs := make([]Document, 0, len(pairs))
	for _, p := range pairs {
		if p == nil || strings.HasSuffix(p.Key, "/") {
			continue
		}
		docs = append(docs, Document{Key: p.Key, Value: p.Value, ModifyIndex: p.ModifyIndex, CreateIndex: p.CreateIndex})
	}
	slices.SortFunc(docs, func(a, b Document) int { return strings.Compare(a.Key, b.Key) })
	return docs
}

func equalDocuments(a, b []Document) bool {
	return slices.EqualFunc(a, b, func(x, y Document) bool {
		return x.Key == y.Key && x.ModifyIndex == y.ModifyIndex && bytes.Equal(x.Value, y.Value)
	})
}
