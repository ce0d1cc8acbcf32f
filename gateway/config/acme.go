package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrACMEHost is wrapped by every reason ValidACMEHost rejects a name.
var ErrACMEHost = errors.New("not an exact DNS name an ACME CA can issue for")

// maxHostLen is the longest DNS name (RFC 1035: 255 octets on the wire).
const maxHostLen = 253

// ValidACMEHost reports why name cannot be the host of an `acme = true`
// route, or nil. Only one exact DNS name qualifies: a CA issues for names,
// not for mux templates, wildcards (which need DNS-01, not offered here),
// ports or IP addresses, and a name with one label cannot be public. The
// manager checks again what it is handed, since route documents are
// hostile.
func ValidACMEHost(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrACMEHost)
	case len(name) > maxHostLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrACMEHost, maxHostLen)
	case strings.ContainsAny(name, "{}"):
		return fmt.Errorf("%w: a template", ErrACMEHost)
	case strings.Contains(name, "*"):
		return fmt.Errorf("%w: a wildcard", ErrACMEHost)
	case strings.Contains(name, ":"):
		return fmt.Errorf("%w: carries a port", ErrACMEHost)
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return fmt.Errorf("%w: an IP address", ErrACMEHost)
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return fmt.Errorf("%w: a single label", ErrACMEHost)
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 {
			return fmt.Errorf("%w: label %q must be 1 to 63 bytes", ErrACMEHost, l)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%w: label %q starts or ends with '-'", ErrACMEHost, l)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%w: %q holds %q (letters, digits, '-' and '.' only)", ErrACMEHost, name, string(c))
			}
		}
	}
	return nil
}

// checkACMEHost applies the rule of an `acme = true` route: an exact host.
// hostOK says the host attribute was read and checked cleanly; a host
// already reported is not reported twice.
func checkACMEHost(p *problems, a *attrs, host string, hostOK bool) {
	switch {
	case !a.has(attrHost):
		p.addf(a.pos(attrACME), "%s = true needs an exact %q (the name the certificate is for)", attrACME, attrHost)
	case hostOK:
		if err := ValidACMEHost(host); err != nil {
			p.addf(a.pos(attrHost), "%s %q: %v (%s = true)", attrHost, host, err, attrACME)
		}
	}
}
