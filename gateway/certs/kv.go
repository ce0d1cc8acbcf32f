package certs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/registry"
)

// MaxKVCerts bounds the keys under the certificate prefix that are
// parsed; keys beyond it (in key order) are rejected as too many.
const MaxKVCerts = 1000

// DefaultKey is the key, under the prefix, whose bundle is the default
// certificate when no -tls-cert pair is given.
const DefaultKey = "default"

// KVBundles turns the documents under the certificate prefix into
// certificates: each key one PEM bundle. A bad version of a key is
// rejected with the key named and the key's last good version, if any,
// keeps serving; a deleted key stops serving.
type KVBundles struct {
	store  *Store
	prefix string
	now    func() time.Time
	logger hclog.Logger
	max    int                 // MaxKVCerts; tests lower it
	keys   map[string]*kvState // only the updating goroutine touches it
}

type kvState struct {
	modifyIndex uint64
	// over is a key past max in the snapshot it was last judged in. A key
	// moves when others are added or removed before it, so an unchanged
	// key is judged again when it crosses the bound either way.
	over     bool
	good     *Cert
	rejected *Rejected
}

// NewKVBundles returns the KV source for keys under prefix, publishing
// into store; now (nil: time.Now) is the validity clock.
func NewKVBundles(store *Store, prefix string, now func() time.Time, logger hclog.Logger) *KVBundles {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &KVBundles{store: store, prefix: prefix, now: now, logger: logger, max: MaxKVCerts, keys: map[string]*kvState{}}
}

// Update applies a snapshot of the prefix (sorted by key, as
// registry.KV gives it) and publishes the result.
func (k *KVBundles) Update(docs []registry.Document) {
	seen := make(map[string]bool, len(docs))
	for n, d := range docs {
		seen[d.Key] = true
		st := k.keys[d.Key]
		if st == nil {
			st = &kvState{}
			k.keys[d.Key] = st
		} else if st.modifyIndex == d.ModifyIndex && st.over == (n >= k.max) {
			continue
		}
		st.modifyIndex, st.over = d.ModifyIndex, n >= k.max
		if st.over {
			st.good = nil
			st.rejected = &Rejected{Kind: SourceKV, Source: d.Key, Error: fmt.Sprintf("%s: more than %d keys under %s", ErrTooLarge, k.max, k.prefix), At: k.now()}
			continue
		}
		c, err := ParseBundle(d.Value, k.now())
		if err != nil {
			st.rejected = &Rejected{Kind: SourceKV, Source: d.Key, Error: err.Error(), At: k.now()}
			k.logger.Warn("certificate bundle rejected", "key", d.Key, "error", err, "last_good", st.good != nil)
			continue
		}
		def := strings.TrimPrefix(d.Key, k.prefix) == DefaultKey
		st.good, st.rejected = NewCert(SourceKV, d.Key, c, def), nil
		k.logger.Info("certificate loaded", "key", d.Key, "names", st.good.Names, "not_after", st.good.NotAfter)
	}
	for key := range k.keys {
		if !seen[key] {
			delete(k.keys, key)
			k.logger.Info("certificate removed", "key", key)
		}
	}
	var certs []*Cert
	var rejected []Rejected
	for _, st := range k.keys {
		if st.good != nil {
			certs = append(certs, st.good)
		}
		if st.rejected != nil {
			rejected = append(rejected, *st.rejected)
		}
	}
	k.store.Set(SourceKV, certs, rejected)
}

// Follow applies docs() each time changed fires, until ctx is done; the
// KV watch's notify does a non-blocking send on changed.
func (k *KVBundles) Follow(ctx context.Context, changed <-chan struct{}, docs func() ([]registry.Document, bool)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			if d, ok := docs(); ok {
				k.Update(d)
			}
		}
	}
}
