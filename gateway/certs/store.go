// Package certs holds the TLS listener's certificates: an immutable index
// built from every source (files, Consul KV bundles, ACME), swapped
// atomically when a source changes, and the tls.Config that serves from
// it. A handshake only reads the current index; it never waits on a file
// or on Consul.
package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Source kinds. Each source replaces only its own entries (Store.Set), so
// the file poller, the KV watch and ACME never overwrite each other.
const (
	SourceFile = "file"
	SourceKV   = "kv"
	SourceACME = "acme"
)

// ErrNoCertificate is returned to a handshake whose server name matches
// no certificate when no default certificate is configured.
var ErrNoCertificate = errors.New("certs: no certificate for this server name")

// Cert is one certificate the listener can serve.
type Cert struct {
	// Kind is SourceFile, SourceKV or SourceACME.
	Kind string
	// Source names where it came from within its kind: the certificate
	// file's path, the KV key, or the ACME host. Unique within a kind.
	Source string
	// Default marks the certificate served to clients that send no
	// server name or one that matches nothing (see Store.GetCertificate).
	Default bool
	// Names are the leaf's DNS and IP subject alternative names, lower
	// case, as they are matched against SNI.
	Names     []string
	NotBefore time.Time
	NotAfter  time.Time
	// TLS is what the handshake serves; its Leaf is set.
	TLS *tls.Certificate
}

// Rejected is a certificate a source could not use, with the reason. A
// source that rejects a new version keeps serving the last good one of
// the same Source, if any, so Rejected and Cert may name the same Source.
type Rejected struct {
	Kind   string `json:"kind"`
	Source string `json:"source"`
	Error  string `json:"error"`
	// At is when the bad version was first seen.
	At time.Time `json:"at"`
}

// Store is the set of certificates. The zero value is not ready: use
// NewStore.
type Store struct {
	mu      sync.Mutex // serialises Set; readers use idx only
	sources map[string]sourceEntries
	idx     atomic.Pointer[index]
	// OnRejected, when non-nil, is called once for each rejection a Set
	// brings that the previous Set of its kind did not list (the
	// rejected-bundle counter). Set it before the first Set.
	OnRejected func(kind string)
}

type sourceEntries struct {
	certs    []*Cert
	rejected []Rejected
}

// NewStore returns an empty store: handshakes fail until a source adds a
// certificate.
func NewStore() *Store {
	s := &Store{sources: map[string]sourceEntries{}}
	s.idx.Store(&index{exact: map[string]*Cert{}, wildcard: map[string]*Cert{}})
	return s
}

// Set replaces every certificate and rejection of one source kind with
// certs and rejected, and publishes a new index. It is the seam every
// source feeds, ACME included: publishing an obtained certificate is
// Set(SourceACME, all current ACME certificates, nil).
func (s *Store) Set(kind string, certs []*Cert, rejected []Rejected) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.sources[kind]
	if s.OnRejected != nil {
		for _, r := range rejected {
			// A rejection carried over from the previous Set (same
			// source, error and first-seen time) is not news.
			if !slices.ContainsFunc(old.rejected, func(o Rejected) bool { return o.Source == r.Source && o.Error == r.Error && o.At.Equal(r.At) }) {
				s.OnRejected(kind)
			}
		}
	}
	s.sources[kind] = sourceEntries{certs: slices.Clone(certs), rejected: slices.Clone(rejected)}
	s.idx.Store(buildIndex(s.sources))
}

// Certs returns every certificate, sorted by kind then source, and every
// rejection; both are shared and must not be modified.
func (s *Store) Certs() ([]*Cert, []Rejected) {
	i := s.idx.Load()
	return i.all, i.rejected
}

// IsDefault reports whether c is the certificate served without a match.
func (s *Store) IsDefault(c *Cert) bool { return s.idx.Load().def == c }

// GetCertificate picks the certificate for a handshake by its server name
// (tls.Config.GetCertificate): an exact name first, then a wildcard
// "*.example.com", which covers exactly one label ("a.example.com", not
// "example.com" nor "a.b.example.com"); names are compared case-
// insensitively. A client that sends no name, or one nothing matches,
// gets the default certificate, or ErrNoCertificate when there is none.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.idx.Load().lookup(hello.ServerName); c != nil {
		return c.TLS, nil
	}
	return nil, noCertificate(hello.ServerName)
}

// noCertificate says which name went unserved and what would have
// served it; net/http logs it for each failed handshake. The client's
// name is cut at 64 bytes and quoted, since it is the client's bytes.
func noCertificate(name string) error {
	what := "no server name (SNI)"
	if name != "" {
		if len(name) > 64 {
			name = name[:64] + "..."
		}
		what = fmt.Sprintf("server name %q", name)
	}
	return fmt.Errorf("%w: %s, and no default certificate (the first -tls-cert pair, or the KV key default under the cert prefix)", ErrNoCertificate, what)
}

// Lookup returns the certificate GetCertificate would serve for name, nil
// if none.
func (s *Store) Lookup(name string) *Cert { return s.idx.Load().lookup(name) }

type index struct {
	exact    map[string]*Cert
	wildcard map[string]*Cert // keyed by the suffix after "*." ("example.com")
	def      *Cert
	all      []*Cert
	rejected []Rejected
}

func (i *index) lookup(name string) *Cert {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name != "" {
		if c := i.exact[name]; c != nil {
			return c
		}
		if _, parent, ok := strings.Cut(name, "."); ok {
			if c := i.wildcard[parent]; c != nil {
				return c
			}
		}
	}
	return i.def
}

// kindOrder fixes the order of sources in listings and in the default
// rule: files first, then KV, then ACME.
var kindOrder = map[string]int{SourceFile: 0, SourceKV: 1, SourceACME: 2}

func compareCerts(a, b *Cert) int {
	if d := kindOrder[a.Kind] - kindOrder[b.Kind]; d != 0 {
		return d
	}
	return strings.Compare(a.Source, b.Source)
}

// better reports whether c should serve a name instead of cur when both
// cover it: the one valid longer, so a renewed certificate takes over
// from the one it replaces wherever it was published; ties go to source
// order.
func better(c, cur *Cert) bool {
	if !c.NotAfter.Equal(cur.NotAfter) {
		return c.NotAfter.After(cur.NotAfter)
	}
	return compareCerts(c, cur) < 0
}

// buildIndex makes the immutable index. The default certificate is the
// first one flagged Default in source order (the first -tls-cert pair,
// else the KV key named "default" under the prefix); with none flagged
// there is no default and unmatched handshakes fail.
func buildIndex(sources map[string]sourceEntries) *index {
	i := &index{exact: map[string]*Cert{}, wildcard: map[string]*Cert{}}
	for _, e := range sources {
		i.all = append(i.all, e.certs...)
		i.rejected = append(i.rejected, e.rejected...)
	}
	slices.SortFunc(i.all, compareCerts)
	slices.SortFunc(i.rejected, func(a, b Rejected) int {
		if d := kindOrder[a.Kind] - kindOrder[b.Kind]; d != 0 {
			return d
		}
		return strings.Compare(a.Source, b.Source)
	})
	for _, c := range i.all {
		if c.Default && i.def == nil {
			i.def = c
		}
		for _, n := range c.Names {
			m, key := i.exact, n
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				m, key = i.wildcard, rest
			}
			if cur := m[key]; cur == nil || better(c, cur) {
				m[key] = c
			}
		}
	}
	return i
}

// String is for logs.
func (c *Cert) String() string { return fmt.Sprintf("%s:%s", c.Kind, c.Source) }
