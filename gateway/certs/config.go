package certs

import "crypto/tls"

// GetCertificateFunc is tls.Config's certificate callback.
type GetCertificateFunc func(*tls.ClientHelloInfo) (*tls.Certificate, error)

// Hooks let another part of the gateway take part in the TLS listener's
// handshakes without owning the listener. ACME's TLS-ALPN-01 solver is the
// case they exist for: it adds "acme-tls/1" to NextProtos and wraps
// GetCertificate so a challenge hello is answered before the store is
// asked; certificates it obtains it publishes with Store.Set(SourceACME,
// ...), which lists them in /certs and the expiry metric.
type Hooks struct {
	// NextProtos are offered in ALPN after "h2" and "http/1.1".
	NextProtos []string
	// WrapGetCertificate, if non-nil, receives the store's callback and
	// returns the one handshakes use.
	WrapGetCertificate func(next GetCertificateFunc) GetCertificateFunc
}

// ServerConfig is the TLS listener's configuration: TLS 1.2 at least,
// Go's default cipher suites and curves (secure, and kept current by each
// Go release), ALPN h2 then http/1.1, certificates chosen per handshake
// by s.GetCertificate. http.Server.ServeTLS serves HTTP/2 for "h2".
func ServerConfig(s *Store, h Hooks) *tls.Config {
	get := GetCertificateFunc(s.GetCertificate)
	if h.WrapGetCertificate != nil {
		get = h.WrapGetCertificate(get)
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     append([]string{"h2", "http/1.1"}, h.NextProtos...),
		GetCertificate: get,
	}
}
