package upstream

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	"github.com/gatewayco/gateway/gateway/config"
	"github.com/gatewayco/gateway/registry"
)

// sticky is an upstream's cookie pinning, computed once per table: each
// instance's cookie value, and the way back from a value to the instance,
// so a request costs one map lookup and hashes nothing.
type sticky struct {
	name string
	// values are the instances' cookie values, in snapshot order.
	values []string
	// index maps a value back to its instance.
	index map[string]int
	// plain and secure are each instance's whole Set-Cookie value,
	// without and with the Secure attribute.
	plain, secure []string
	// warningOK: the route has allow_warning, so an instance whose checks
	// warn serves it and a client may stay pinned to it.
	warningOK bool
}

// stickyValue is an instance's cookie value: a hash of the service and the
// instance's Consul identity (node and service ID), so it says nothing of
// the instance's address and every gateway replica computes the same one.
// 128 bits leave no chance of two instances sharing a value.
func stickyValue(service string, in registry.Instance) string {
	id := in.ID
	if id == "" {
		id = in.HostPort()
	}
	sum := sha256.Sum256([]byte("gateway-sticky\x00" + service + "\x00" + in.Node + "\x00" + id))
	return hex.EncodeToString(sum[:16])
}

func newSticky(c *config.Sticky, service registry.ServiceKey, insts []registry.Instance) *sticky {
	s := &sticky{name: c.Cookie, values: make([]string, len(insts)), index: make(map[string]int, len(insts)),
		plain: make([]string, len(insts)), secure: make([]string, len(insts))}
	same := http.SameSiteLaxMode
	switch c.SameSite {
	case config.SameSiteStrict:
		same = http.SameSiteStrictMode
	case config.SameSiteNone:
		same = http.SameSiteNoneMode
	}
	for i, in := range insts {
		v := stickyValue(service.Name, in)
		s.values[i] = v
		s.index[v] = i
		ck := http.Cookie{Name: c.Cookie, Value: v, Path: c.Path, HttpOnly: true, SameSite: same,
			MaxAge: int(c.MaxAge.Seconds()), Secure: same == http.SameSiteNoneMode}
		s.plain[i] = ck.String()
		ck.Secure = true
		s.secure[i] = ck.String()
	}
	return s
}

// pinned is the instance r's cookie names, or -1: a missing, forged or
// stale value (an instance gone from the table) is simply not found.
func (s *sticky) pinned(r *http.Request) int {
	for _, c := range r.CookiesNamed(s.name) {
		if i, ok := s.index[c.Value]; ok {
			return i
		}
	}
	return -1
}

// answer sets the cookie naming instance i on resp, unless r already
// carries it. r is the request as sent upstream, whose X-Forwarded-Proto
// the proxy has set from the connection or a trusted proxy, so the cookie
// is Secure exactly when the client reached the gateway over HTTPS.
func (s *sticky) answer(r *http.Request, resp *http.Response, i int) {
	for _, c := range r.CookiesNamed(s.name) {
		if c.Value == s.values[i] {
			return
		}
	}
	v := s.plain[i]
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		v = s.secure[i]
	}
	resp.Header.Add("Set-Cookie", v)
}

// WithSticky returns a copy of u that pins clients to instances by the
// cookie c describes (nil: u itself). A pinned instance is used while it
// is passing, not in maintenance, not ejected and not already tried by
// this request; otherwise the balancer picks, and the answer carries the
// new instance's cookie. allowWarning is the route's allow_warning: with
// it, an instance whose checks warn (and whose warning weight is not zero)
// counts as passing. It must run on the goroutine that builds tables.
func (u *Upstream) WithSticky(c *config.Sticky, allowWarning bool) *Upstream {
	if c == nil {
		return u
	}
	cp := *u
	cp.sticky = newSticky(c, u.service, u.insts)
	cp.sticky.warningOK = allowWarning
	return &cp
}

// stickyOK reports whether pinned instance i may take the request: the
// pool view's rules, and Consul's own verdict, since a table in panic mode
// holds failing instances a client must not be pinned to. A warning
// instance is no failing one on an allow_warning route, which serves it
// anyway: refusing the pin would move the client on every request.
func (u *Upstream) stickyOK(v *poolView, i int) bool {
	in := &u.insts[i]
	serves := in.Passing || u.sticky.warningOK && in.Warning && in.Weights.Warning > 0
	return serves && !in.Maintenance && v.Available(i)
}
