package gateway

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// LastGoodStore keeps each key's last good version where every replica
// reads it (registry.State keeps it in Consul). Without one, a replica
// started after a bad write would serve nothing for that key while the
// replicas that saw the good version keep serving it.
type LastGoodStore interface {
	// Loaded reports whether the first read has answered or failed.
	Loaded() bool
	// Stored returns the stored versions by routes key; ok is false until
	// the first successful read.
	Stored() (map[string]registry.StoredVersion, bool)
	// Record and Forget ask for an entry to be written or removed; they
	// must not block (the store writes on its own goroutine).
	Record(v registry.StoredVersion)
	Forget(key string)
}

// SetLastGoodStore makes the controller fall back on, and keep up to date,
// the versions in store. Call it before Run.
func (c *Controller) SetLastGoodStore(s LastGoodStore) { c.lastGood.store = s }

// Values of ConfigError.Serving.
const (
	servingLastGood = "last_good"
	servingNothing  = "nothing"
)

// errStoredVersion marks a stored last good version the controller ignores.
var errStoredVersion = errors.New("stored last good version unusable")

// lastGoods is the controller's side of last-good persistence. It also
// remembers when each key's serving version was accepted, for /routes.
// Only the controller goroutine touches it.
type lastGoods struct {
	store  LastGoodStore // nil: versions live in memory only
	now    func() time.Time
	logger hclog.Logger

	// Per rebuild: the KV snapshot and the stored versions by key.
	docs   map[string]registry.Document
	stored map[string]registry.StoredVersion

	serving map[string]servedVersion // by key: the version served last
	parsed  map[string]parsedStored  // by key: a stored version, parsed once
	// pending are the versions to store once the table built from them
	// is published (see commit).
	pending []registry.StoredVersion
}

// servedVersion is the version a key serves: its bytes (to store them) and
// when this gateway accepted it.
type servedVersion struct {
	index uint64
	src   []byte
	known bool // src is the version's source (not lost with an old snapshot)
	since time.Time
}

// parsedStored caches the parse of one state entry, by its ModifyIndex, so
// an entry is parsed (and a bad one logged) once, not on every rebuild.
type parsedStored struct {
	stateIndex uint64
	doc        *config.Document // nil when unusable
}

func newLastGoods(now func() time.Time, logger hclog.Logger) *lastGoods {
	return &lastGoods{now: now, logger: logger, serving: map[string]servedVersion{}, parsed: map[string]parsedStored{}}
}

// ready reports whether a rebuild may run: a new replica waits for the
// stored versions, so its first table already serves them.
func (l *lastGoods) ready() bool { return l.store == nil || l.store.Loaded() }

// sync takes this rebuild's snapshots, drops what belongs to deleted keys,
// and asks the store to forget the entries of keys that are gone. A version
// older than its key's CreateIndex belongs to a key deleted since, so a
// re-created key never falls back to what the removed one served.
func (l *lastGoods) sync(snapshot []registry.Document, keys map[string]*keyState) {
	l.docs = make(map[string]registry.Document, len(snapshot))
	for _, d := range snapshot {
		l.docs[d.Key] = d
	}
	l.stored = nil
	if l.store != nil {
		l.stored, _ = l.store.Stored()
	}
	for k, st := range keys {
		if st.lastGood != nil && !l.live(k, st.lastGood.ModifyIndex) {
			st.lastGood = nil
		}
	}
	for k := range l.serving {
		if _, ok := l.docs[k]; !ok {
			delete(l.serving, k)
		}
	}
	for k := range l.parsed {
		if _, ok := l.stored[k]; !ok {
			delete(l.parsed, k)
		}
	}
	for k, sv := range l.stored {
		if !l.live(k, sv.SourceIndex) {
			// The store checks Consul again before deleting, so a key this
			// snapshot has not seen yet keeps its entry.
			l.store.Forget(k)
			continue
		}
		if sv.Err != nil {
			l.ignore(k, sv, sv.Err)
		}
	}
}

// live reports whether version index of key belongs to the key as it
// exists now.
func (l *lastGoods) live(key string, index uint64) bool {
	d, ok := l.docs[key]
	return ok && index >= d.CreateIndex
}

// fallback is the version a key falls back to when its current one is
// rejected: the newest of what this gateway served and what is stored.
// Preferring the newest makes every replica converge on the same version,
// whatever each one happened to see.
func (l *lastGoods) fallback(key string, st *keyState) *config.Document {
	mem := st.lastGood
	sv, ok := l.stored[key]
	if !ok || sv.Err != nil || !l.live(key, sv.SourceIndex) {
		return mem
	}
	if mem != nil && mem.ModifyIndex >= sv.SourceIndex {
		return mem
	}
	if sv.SourceIndex == st.index {
		// The stored version is the current one, which Resolve tries
		// first anyway (and if it failed to parse here, its copy would
		// fail the same way): it is no fallback.
		return mem
	}
	if p, ok := l.parsed[key]; ok && p.stateIndex == sv.StateIndex {
		if p.doc == nil {
			return mem
		}
		return p.doc
	}
	doc, err := parseStored(key, sv)
	if err != nil {
		l.ignore(key, sv, err)
		return mem
	}
	l.parsed[key] = parsedStored{stateIndex: sv.StateIndex, doc: doc}
	return doc
}

// ignore logs, once per entry version, why a stored version is not used.
func (l *lastGoods) ignore(key string, sv registry.StoredVersion, err error) {
	if p, ok := l.parsed[key]; ok && p.stateIndex == sv.StateIndex {
		return
	}
	l.parsed[key] = parsedStored{stateIndex: sv.StateIndex}
	l.logger.Warn("stored last good version ignored", "key", key, "source_index", sv.SourceIndex, "error", err)
}

// parseStored parses a stored version: it is as untrusted as the routes
// prefix, so it goes through the same parser and bounds, and a panic in
// there costs the fallback, not the process.
func parseStored(key string, sv registry.StoredVersion) (doc *config.Document, err error) {
	defer func() {
		if r := recover(); r != nil {
			doc, err = nil, fmt.Errorf("%w: parser panicked: %v", errStoredVersion, r)
		}
	}()
	return config.Parse(key, sv.Source, sv.SourceIndex)
}

// accepted notes that key serves d, and asks the store to keep d unless the
// stored version is as new. The first gateway to accept a version stores
// its time, which every replica then shows.
func (l *lastGoods) accepted(key string, d *config.Document) {
	sv, ok := l.serving[key]
	if !ok || sv.index != d.ModifyIndex {
		sv = servedVersion{index: d.ModifyIndex, since: l.now()}
		if doc, ok := l.docs[key]; ok && doc.ModifyIndex == d.ModifyIndex {
			sv.src, sv.known = doc.Value, true
		} else if st, ok := l.stored[key]; ok && st.Err == nil && st.SourceIndex == d.ModifyIndex {
			sv.src, sv.known, sv.since = st.Source, true, st.AcceptedAt
		}
		l.serving[key] = sv
	}
	if l.store == nil || !sv.known {
		return
	}
	if st, ok := l.stored[key]; ok && st.Err == nil && st.SourceIndex >= d.ModifyIndex {
		return
	}
	l.pending = append(l.pending, registry.StoredVersion{Key: key, Source: sv.src, SourceIndex: d.ModifyIndex, AcceptedAt: sv.since})
}

// commit stores the versions accepted since the last commit: the table
// built from them is serving, so they are good.
func (l *lastGoods) commit() {
	for _, v := range l.pending {
		l.store.Record(v)
	}
	l.pending = l.pending[:0]
}

// discard forgets accepted versions not committed: their build failed,
// or the build was abandoned.
func (l *lastGoods) discard() { l.pending = l.pending[:0] }

// configError describes a rejected key and what it serves instead: served
// is the version accepted for it, nil when none.
func (l *lastGoods) configError(key string, served *config.Document, msg string) ConfigError {
	e := ConfigError{Key: key, Message: msg, Serving: servingNothing}
	if served == nil {
		return e
	}
	e.Serving, e.LastGoodIndex = servingLastGood, served.ModifyIndex
	since := l.serving[key].since
	if st, ok := l.stored[key]; ok && st.Err == nil && st.SourceIndex == served.ModifyIndex && !st.AcceptedAt.IsZero() {
		since = st.AcceptedAt
	}
	e.LastGoodSince = since.UTC()
	return e
}
