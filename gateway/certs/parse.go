package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Bounds on what a certificate source may hand the gateway; a bundle
// beyond any of them is rejected before it costs more than its bytes.
const (
	// MaxBundleBytes bounds one PEM bundle (a KV value, or a cert file
	// and key file together). A leaf, two intermediates and a key fit in
	// under 16 KiB.
	MaxBundleBytes = 64 << 10
	// MaxPEMBlocks bounds the PEM blocks in one bundle (chain plus key).
	MaxPEMBlocks = 16
	// MaxNames bounds the subject alternative names of one leaf
	// (Let's Encrypt issues at most 100).
	MaxNames = 100
	// MaxRSABits bounds RSA keys: a larger key makes every handshake
	// slow enough to be a denial of service.
	MaxRSABits = 8192
	// MinRSABits is the weakest RSA key accepted.
	MinRSABits = 2048
	// maxKeyDER bounds the private key block: an 8192-bit RSA key is
	// under 5 KiB, and parsing a far larger one (which the leaf check
	// alone would not stop) costs seconds of CPU.
	maxKeyDER = 8 << 10
)

// Sentinel errors of bundle parsing, wrapped with details.
var (
	ErrTooLarge   = errors.New("bundle too large")
	ErrBadPEM     = errors.New("bad PEM")
	ErrNoKey      = errors.New("no private key")
	ErrNoChain    = errors.New("no certificate")
	ErrKeyMatch   = errors.New("private key does not match the certificate")
	ErrExpired    = errors.New("certificate expired")
	ErrNotYet     = errors.New("certificate not yet valid")
	ErrWeakKey    = errors.New("weak or unsupported key")
	ErrTooMany    = errors.New("too many names")
	ErrNoDNSNames = errors.New("certificate names no host")
	ErrChainOrder = errors.New("the leaf certificate must come first in the chain")
)

// ParseBundle reads one PEM bundle: the certificate chain, leaf first,
// and its private key (in any position). It checks the bounds above, that
// the key matches the leaf, the key's strength, and that the leaf is
// valid at now. Errors wrap the sentinels above.
func ParseBundle(data []byte, now time.Time) (*tls.Certificate, error) {
	if len(data) > MaxBundleBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxBundleBytes)
	}
	var chain, key []byte
	rest := data
	for n := 0; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if n >= MaxPEMBlocks {
			return nil, fmt.Errorf("%w: more than %d PEM blocks", ErrTooLarge, MaxPEMBlocks)
		}
		switch {
		case b.Type == "CERTIFICATE":
			chain = append(chain, pem.EncodeToMemory(b)...)
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			if key != nil {
				return nil, fmt.Errorf("%w: more than one private key", ErrBadPEM)
			}
			if len(b.Bytes) > maxKeyDER {
				return nil, fmt.Errorf("%w: private key of %d bytes, limit %d", ErrWeakKey, len(b.Bytes), maxKeyDER)
			}
			key = pem.EncodeToMemory(b)
		default:
			return nil, fmt.Errorf("%w: unexpected block %q", ErrBadPEM, b.Type)
		}
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		if chain == nil && key == nil {
			return nil, fmt.Errorf("%w: no PEM block", ErrBadPEM)
		}
		return nil, fmt.Errorf("%w: trailing data that is not PEM", ErrBadPEM)
	}
	return parsePair(chain, key, now)
}

// ParsePair is ParseBundle for a certificate file and a key file.
func ParsePair(certPEM, keyPEM []byte, now time.Time) (*tls.Certificate, error) {
	if len(certPEM)+len(keyPEM) > MaxBundleBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(certPEM)+len(keyPEM), MaxBundleBytes)
	}
	if hasKey(certPEM) && hasKey(keyPEM) {
		return nil, fmt.Errorf("%w: the certificate file holds a private key as well as the key file (a combined PEM? give the chain and the key as separate files, or put the bundle in Consul KV)", ErrBadPEM)
	}
	var b bytes.Buffer
	b.Write(certPEM)
	b.WriteByte('\n')
	b.Write(keyPEM)
	return ParseBundle(b.Bytes(), now)
}

// hasKey reports whether data holds a private key block, reading at most
// MaxPEMBlocks blocks (the caller bounds the bytes).
func hasKey(data []byte) bool {
	rest := data
	for range MaxPEMBlocks {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return false
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			return true
		}
	}
	return false
}

func parsePair(chain, key []byte, now time.Time) (*tls.Certificate, error) {
	if chain == nil {
		return nil, ErrNoChain
	}
	if key == nil {
		return nil, ErrNoKey
	}
	// Check the leaf's key before X509KeyPair does any arithmetic with
	// it: the size bound must come first.
	blk, _ := pem.Decode(chain)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPEM, err)
	}
	if err := checkKey(leaf.PublicKey); err != nil {
		return nil, err
	}
	if n := len(leaf.DNSNames) + len(leaf.IPAddresses); n > MaxNames {
		return nil, fmt.Errorf("%w: %d, limit %d", ErrTooMany, n, MaxNames)
	} else if n == 0 {
		if i := keyOwner(chain, key); i > 0 {
			return nil, misordered(i)
		}
		return nil, ErrNoDNSNames
	}
	c, err := tls.X509KeyPair(chain, key)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			if i := keyOwner(chain, key); i > 0 {
				return nil, misordered(i)
			}
			return nil, fmt.Errorf("%w: %w", ErrKeyMatch, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrBadPEM, err)
	}
	c.Leaf = leaf
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("%w: valid from %s", ErrNotYet, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("%w: on %s", ErrExpired, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &c, nil
}

func misordered(i int) error {
	return fmt.Errorf("%w: the private key belongs to certificate %d of the chain, not the first", ErrChainOrder, i)
}

// keyOwner returns the position (1-based) of the certificate after the
// first whose public key the key matches, or 0. A chain pasted CA or
// intermediate first (cat ca.crt leaf.crt) would otherwise be reported
// by what the first certificate lacks, which points the operator at the
// wrong file. Each certificate's key passes checkKey first, so the bounds
// hold; the chain has at most MaxPEMBlocks certificates.
func keyOwner(chain, key []byte) int {
	rest := chain
	for i := 1; ; i++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return 0
		}
		if i == 1 {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil || checkKey(c.PublicKey) != nil {
			continue
		}
		if _, err := tls.X509KeyPair(pem.EncodeToMemory(b), key); err == nil {
			return i
		}
	}
}

func checkKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if b := k.N.BitLen(); b < MinRSABits || b > MaxRSABits {
			return fmt.Errorf("%w: RSA %d bits, want %d to %d", ErrWeakKey, b, MinRSABits, MaxRSABits)
		}
	case *ecdsa.PublicKey:
		if b := k.Curve.Params().BitSize; b < 256 {
			return fmt.Errorf("%w: ECDSA %d bits", ErrWeakKey, b)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: %T", ErrWeakKey, pub)
	}
	return nil
}

// NewCert describes a parsed certificate for the store.
func NewCert(kind, source string, c *tls.Certificate, def bool) *Cert {
	names := make([]string, 0, len(c.Leaf.DNSNames)+len(c.Leaf.IPAddresses))
	for _, n := range c.Leaf.DNSNames {
		names = append(names, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	for _, ip := range c.Leaf.IPAddresses {
		names = append(names, net.IP(ip).String())
	}
	return &Cert{Kind: kind, Source: source, Default: def, Names: names,
		NotBefore: c.Leaf.NotBefore, NotAfter: c.Leaf.NotAfter, TLS: c}
}
