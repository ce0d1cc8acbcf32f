package config

import (
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Sticky is a route's `sticky` block: a cookie naming the instance that
// served a client, so its next requests go there while that instance can
// take them.
type Sticky struct {
	// Cookie is the cookie's name.
	Cookie string
	// MaxAge is the cookie's Max-Age; zero means a session cookie.
	MaxAge time.Duration
	// Path is the cookie's Path, "/" unless set.
	Path string
	// SameSite is SameSiteLax (the default), SameSiteStrict or
	// SameSiteNone; with none the cookie is always Secure, as browsers
	// require.
	SameSite string
	// Pos is where the block starts.
	Pos Pos
}

// SameSite values a sticky block may name.
const (
	SameSiteLax    = "lax"
	SameSiteStrict = "strict"
	SameSiteNone   = "none"
)

// Bounds of a sticky block.
const (
	// MaxStickyCookieName bounds the cookie's name.
	MaxStickyCookieName = 64
	// MaxStickyMaxAge bounds max_age: a year.
	MaxStickyMaxAge = 365 * 24 * time.Hour
)

// Mirror is one of a route's `mirror` blocks: a copy of a share of the
// route's requests goes to another destination, whose answers are
// ignored.
type Mirror struct {
	// Service and Tag are the destination's health watch.
	Service string
	Tag     string
	// Percent is the share of requests copied, 0 < Percent <= 100;
	// 100 unless set.
	Percent float64
	// MaxConcurrency bounds the copies in flight at once, per gateway;
	// a copy beyond it is dropped. DefaultMirrorConcurrency unless set.
	MaxConcurrency int
	// Pos is where the block starts.
	Pos Pos
}

// Bounds and defaults of mirror blocks.
const (
	// MaxMirrors bounds the mirror blocks of one route.
	MaxMirrors = 4
	// DefaultMirrorConcurrency is a mirror's max_concurrency unless set.
	DefaultMirrorConcurrency = 16
	// MaxMirrorConcurrency bounds max_concurrency.
	MaxMirrorConcurrency = 1024
)

// decodeTraffic reads a route's sticky block and mirror blocks.
func decodeTraffic(p *problems, blocks hcl.Blocks, r *Route) {
	if b := single(p, blocks, stickySpec); b != nil {
		r.Sticky = decodeSticky(p, b)
	}
	for _, b := range blocks {
		if b.Type != mirrorSpec.typ {
			continue
		}
		if len(r.Mirrors) == MaxMirrors {
			p.addf(p.pos(b.DefRange), "at most %d %s blocks are allowed in a route", MaxMirrors, mirrorSpec.typ)
			break
		}
		r.Mirrors = append(r.Mirrors, decodeMirror(p, b))
	}
}

// decodeSticky reads and checks a sticky block.
func decodeSticky(p *problems, b *hcl.Block) *Sticky {
	a, _ := decodeBody(p, b, stickySpec)
	s := &Sticky{Cookie: a.str(attrCookie), MaxAge: a.duration(attrMaxAge), Path: a.str(attrPath),
		SameSite: a.str(attrSameSite), Pos: p.pos(b.DefRange)}
	switch {
	case !a.has(attrCookie):
		p.addf(s.Pos, "%s: missing required attribute %q", stickySpec.typ, attrCookie)
	case a.ok(attrCookie) && (!isToken(s.Cookie) || len(s.Cookie) > MaxStickyCookieName):
		p.addf(a.pos(attrCookie), "%s must be a cookie name (a token of at most %d bytes), got %q", stickySpec.ref(attrCookie), MaxStickyCookieName, s.Cookie)
	}
	if a.ok(attrMaxAge) && (s.MaxAge < time.Second || s.MaxAge > MaxStickyMaxAge) {
		p.addf(a.pos(attrMaxAge), "%s must be between 1s and %s (omit it for a session cookie)", stickySpec.ref(attrMaxAge), MaxStickyMaxAge)
	}
	switch {
	case !a.has(attrPath):
		s.Path = "/"
	case a.ok(attrPath) && (!strings.HasPrefix(s.Path, "/") || strings.ContainsFunc(s.Path, badCookieByte)):
		p.addf(a.pos(attrPath), "%s must start with \"/\" and hold no ';', space or control byte, got %q", stickySpec.ref(attrPath), s.Path)
	}
	switch {
	case !a.has(attrSameSite):
		s.SameSite = SameSiteLax
	case a.ok(attrSameSite):
		s.SameSite = strings.ToLower(s.SameSite)
		if s.SameSite != SameSiteLax && s.SameSite != SameSiteStrict && s.SameSite != SameSiteNone {
			p.addf(a.pos(attrSameSite), "%s must be one of lax, strict, none, got %q", stickySpec.ref(attrSameSite), s.SameSite)
		}
	}
	return s
}

// badCookieByte is a rune a cookie attribute value cannot hold.
func badCookieByte(r rune) bool {
	return r == ';' || r <= ' ' || r == 0x7f || r > 0x7e
}

// decodeMirror reads and checks a mirror block.
func decodeMirror(p *problems, b *hcl.Block) Mirror {
	a, _ := decodeBody(p, b, mirrorSpec)
	m := Mirror{Service: a.str(attrService), Tag: a.str(attrTag), Percent: a.number(attrPercent),
		MaxConcurrency: a.integer(attrMaxConcurrency), Pos: p.pos(b.DefRange)}
	switch {
	case !a.has(attrService):
		p.addf(m.Pos, "%s: missing required attribute %q", mirrorSpec.typ, attrService)
	case a.ok(attrService) && m.Service == "":
		p.addf(a.pos(attrService), "%s must not be empty", mirrorSpec.ref(attrService))
	}
	if a.ok(attrTag) {
		checkTag(p, a, m.Tag)
	}
	switch {
	case !a.has(attrPercent):
		m.Percent = 100
	case a.ok(attrPercent) && !(m.Percent > 0 && m.Percent <= 100):
		p.addf(a.pos(attrPercent), "%s must be above 0 and at most 100, got %g", mirrorSpec.ref(attrPercent), m.Percent)
	}
	switch {
	case !a.has(attrMaxConcurrency):
		m.MaxConcurrency = DefaultMirrorConcurrency
	case a.ok(attrMaxConcurrency) && (m.MaxConcurrency < 1 || m.MaxConcurrency > MaxMirrorConcurrency):
		p.addf(a.pos(attrMaxConcurrency), "%s must be between 1 and %d, got %d", mirrorSpec.ref(attrMaxConcurrency), MaxMirrorConcurrency, m.MaxConcurrency)
	}
	return m
}
