package fabio

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gatewayco/gateway/gateway/config"
)

// ErrTag marks every reason a tag is rejected.
var ErrTag = errors.New("unsupported urlprefix tag")

// tag is the supported subset of one urlprefix- tag:
//
//	urlprefix-[host]/path [strip=/prefix] [proto=http|https|grpc|grpcs] [tlsskipverify=false]
type tag struct {
	host, path, strip, protocol string
}

// pathChars are the bytes a path or strip value may hold: RFC 3986 pchar
// without percent-encoding, and nothing HCL or a mux template would read
// specially ($, %, {, }, ", \).
const pathChars = "-._~/:@!&'()*+,;="

func parseTag(s string) (tag, error) {
	var t tag
	rest, ok := strings.CutPrefix(s, TagPrefix)
	if !ok {
		return t, fmt.Errorf("%w: does not start with %q", ErrTag, TagPrefix)
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return t, fmt.Errorf("%w: no host or path after %q", ErrTag, TagPrefix)
	}
	// Anything but spaces between fields (tabs, newlines, controls) is
	// refused rather than normalised: the tag is used as written as the
	// instances' filter.
	if strings.Join(fields, " ") != rest {
		return t, fmt.Errorf("%w: fields must be separated by single spaces", ErrTag)
	}
	slash := strings.IndexByte(fields[0], '/')
	if slash < 0 {
		return t, fmt.Errorf("%w: %q has no path (TCP routes such as \":3306 proto=tcp\" are not supported)", ErrTag, fields[0])
	}
	t.host, t.path = fields[0][:slash], fields[0][slash:]
	if t.host != "" {
		if err := checkHost(t.host); err != nil {
			return t, err
		}
	}
	if err := checkPath("path", t.path); err != nil {
		return t, err
	}
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		name, value, ok := strings.Cut(f, "=")
		if !ok {
			return t, fmt.Errorf("%w: option %q is not name=value", ErrTag, f)
		}
		if seen[name] {
			return t, fmt.Errorf("%w: option %q given twice", ErrTag, name)
		}
		seen[name] = true
		switch name {
		case "strip":
			if err := checkPath("strip", value); err != nil {
				return t, err
			}
			if !strings.HasPrefix(t.path, value) {
				return t, fmt.Errorf("%w: strip=%s is not a prefix of the path %s", ErrTag, value, t.path)
			}
			t.strip = value
		case "proto":
			switch value {
			case "http":
				t.protocol = config.ProtocolHTTP
			case "https", "grpcs":
				t.protocol = config.ProtocolHTTPS
			case "grpc":
				t.protocol = config.ProtocolH2C
			default:
				return t, fmt.Errorf("%w: proto=%s is not supported (http, https, grpc, grpcs are)", ErrTag, printable(value))
			}
		case "tlsskipverify":
			if value != "false" {
				return t, fmt.Errorf("%w: tlsskipverify=%s: upstream certificates are always verified (use a KV route with upstream_tls.ca_file)", ErrTag, printable(value))
			}
		default:
			return t, fmt.Errorf("%w: option %q is not supported (strip, proto, tlsskipverify=false are)", ErrTag, printable(name))
		}
	}
	return t, nil
}

// checkHost accepts one lower-case DNS name: no port, no wildcard.
func checkHost(h string) error {
	bad := len(h) > 253
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			bad = true
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				bad = true
			}
		}
	}
	if bad {
		return fmt.Errorf("%w: host %q must be a lower-case DNS name without port or wildcard", ErrTag, printable(h))
	}
	return nil
}

func checkPath(what, p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w: %s %q must start with \"/\"", ErrTag, what, printable(p))
	}
	for _, c := range []byte(p) {
		if !isAlnum(c) && !strings.ContainsRune(pathChars, rune(c)) {
			return fmt.Errorf("%w: %s %q may hold only letters, digits and %s", ErrTag, what, printable(p), pathChars)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// printable quotes hostile text safely for messages, and shortens it.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strings.Trim(fmt.Sprintf("%q", s), `"`)
}

// hcl renders the tag as one route block. Every value was checked above
// to hold none of the bytes HCL quoting or templates would read (the
// whole tag too: its fields are the checked values and single spaces).
func (t tag) hcl(name, service, raw string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "route %q {\n", name)
	fmt.Fprintf(&b, "  path_prefix = %q\n", t.path)
	if t.host != "" {
		fmt.Fprintf(&b, "  host = %q\n", t.host)
	}
	fmt.Fprintf(&b, "  service = %q\n", service)
	fmt.Fprintf(&b, "  tag = %q\n", raw)
	if t.strip != "" {
		fmt.Fprintf(&b, "  strip_prefix = %q\n", t.strip)
	}
	if t.protocol != "" {
		fmt.Fprintf(&b, "  protocol = %q\n", t.protocol)
	}
	b.WriteString("}\n")
	return b.String()
}
