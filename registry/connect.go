package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"
)

// Bounds on what the agent's Connect answers may hold. An answer past them
// fails the call (the last good snapshot stays), as any other bad answer.
const (
	// MaxConnectRoots bounds the trusted roots kept: a rotation holds two
	// or three; past it the list is not a CA's.
	MaxConnectRoots = 32
	// MaxConnectPEMBytes bounds one root certificate, the leaf chain and
	// the leaf key, each.
	MaxConnectPEMBytes = 64 << 10
	// MaxIntentionsPerService bounds the intentions kept per destination.
	MaxIntentionsPerService = 10_000
)

// ErrConnectAnswer is why a Connect answer of the agent was refused.
var ErrConnectAnswer = errors.New("unusable Connect answer")

// Leaf is the gateway's own Connect leaf certificate, as the agent issued
// it, with the identity its URI SAN carries.
type Leaf struct {
	Cert   tls.Certificate // chain (leaf first) and private key
	URI    string          // spiffe://<trust domain>/ns/<ns>/dc/<dc>/svc/<service>
	Serial string
	// Namespace and Datacenter are read from URI: upstream identities are
	// checked in the same ones.
	Namespace, Datacenter string
}

// Roots are the Connect CA roots the gateway trusts, every root listed
// (during a rotation both old and new), and the trust domain.
type Roots struct {
	Pool        *x509.CertPool
	TrustDomain string
	ActiveID    string
	IDs         []string // sorted, for equality
}

// Verdict is what the intentions say about the gateway reaching one
// destination service, evaluated off the request path.
type Verdict struct {
	// Denied is true when the highest-precedence intention matching the
	// gateway's service (by name or "*") denies it.
	Denied bool
	// Intention names the deciding intention ("src => dst"); "" when none
	// matched and the upstream's default decides.
	Intention string
}

// Connect keeps the gateway's Connect identity live: its leaf certificate
// and the CA roots (both blocking queries of the local agent, so rotations
// arrive within a call), and, per destination service, the intentions
// that match it. It is safe for concurrent use; readers get snapshots.
type Connect struct {
	client  *api.Client
	opts    Options
	service string
	leaf    *watch[*Leaf]
	roots   *watch[*Roots]

	intents *watchSet[string, Verdict]
}

// NewConnect returns the Connect watches of the gateway registered as
// service (the leaf certificate's service ID). Nothing runs until Run.
func NewConnect(client *api.Client, service string, opts Options) *Connect {
	opts = opts.withDefaults()
	agent := client.Agent()
	c := &Connect{client: client, opts: opts, service: service}
	c.intents = newWatchSet(c.intentionWatch)
	log := opts.Logger.Named("connect")
	c.leaf = newWatch(func(q *api.QueryOptions) (*Leaf, *api.QueryMeta, error) {
		l, meta, err := agent.ConnectCALeaf(service, q)
		if err != nil {
			return nil, nil, err
		}
		leaf, err := toLeaf(l)
		return leaf, meta, err
	}, func(a, b *Leaf) bool { return a.Serial == b.Serial }, nil, opts, log.With("watch", "leaf"))
	c.roots = newWatch(func(q *api.QueryOptions) (*Roots, *api.QueryMeta, error) {
		l, meta, err := agent.ConnectCARoots(q)
		if err != nil {
			return nil, nil, err
		}
		roots, err := toRoots(l)
		return roots, meta, err
	}, func(a, b *Roots) bool { return a.ActiveID == b.ActiveID && slices.Equal(a.IDs, b.IDs) }, nil, opts, log.With("watch", "roots"))
	return c
}

// Service is the gateway's Connect service name.
func (c *Connect) Service() string { return c.service }

// Run runs the leaf and roots watches until ctx is done, then stops the
// intention watches; it returns once nothing of them is left running.
func (c *Connect) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { c.leaf.run(ctx) })
	wg.Go(func() { c.roots.run(ctx) })
	wg.Wait()
	c.intents.stop()
}

// Ready returns once both the leaf and the roots watches answered or
// failed once.
func (c *Connect) Ready(ctx context.Context) {
	for _, ch := range []chan struct{}{c.leaf.ready, c.roots.ready} {
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// Leaf is the current leaf certificate; ok is false until the first.
func (c *Connect) Leaf() (*Leaf, bool) { return c.leaf.snapshot() }

// Roots are the current trusted roots; ok is false until the first.
func (c *Connect) Roots() (*Roots, bool) { return c.roots.snapshot() }

// Verdict is what the intentions say about reaching service; ok is false
// for a service not passed to the last EnsureIntentions, or before its
// first answer.
func (c *Connect) Verdict(service string) (Verdict, bool) { return c.intents.snapshot(service) }

// EnsureIntentions makes the intention watches those of services, as
// Health.Ensure does for instances, and waits for new ones' first answer.
func (c *Connect) EnsureIntentions(ctx context.Context, services []string) {
	c.intents.ensure(ctx, services)
}

// intentionWatch is the intention watch of dst.
func (c *Connect) intentionWatch(dst string) *watch[Verdict] {
	conn := c.client.Connect()
	src := c.service
	fetch := func(q *api.QueryOptions) (Verdict, *api.QueryMeta, error) {
		m, meta, err := conn.IntentionMatch(&api.IntentionMatch{By: api.IntentionMatchDestination, Names: []string{dst}}, q)
		if err != nil {
			return Verdict{}, nil, err
		}
		list := m[dst]
		if len(list) > MaxIntentionsPerService {
			return Verdict{}, nil, fmt.Errorf("%w: %d intentions for %s (bound %d)", ErrConnectAnswer, len(list), dst, MaxIntentionsPerService)
		}
		return evaluate(list, src), meta, nil
	}
	return newWatch(fetch, func(a, b Verdict) bool { return a == b }, nil, c.opts, c.opts.Logger.Named("connect").With("intentions", dst))
}

// evaluate applies Consul's rule to list (the intentions matching one
// destination, highest precedence first): the first whose source is src or
// "*" decides. One with L7 permissions (no action) allows the connection;
// the sidecar enforces its permissions per request.
func evaluate(list []*api.Intention, src string) Verdict {
	for _, in := range list {
		if in == nil || (in.SourceName != src && in.SourceName != "*") {
			continue
		}
		if in.SourcePeer != "" {
			continue
		}
		name := in.SourceName + " => " + in.DestinationName
		return Verdict{Denied: in.Action == api.IntentionActionDeny, Intention: name}
	}
	return Verdict{}
}

func toLeaf(l *api.LeafCert) (*Leaf, error) {
	if l == nil {
		return nil, fmt.Errorf("%w: no leaf certificate", ErrConnectAnswer)
	}
	if len(l.CertPEM) > MaxConnectPEMBytes || len(l.PrivateKeyPEM) > MaxConnectPEMBytes {
		return nil, fmt.Errorf("%w: leaf PEM larger than %d bytes", ErrConnectAnswer, MaxConnectPEMBytes)
	}
	cert, err := tls.X509KeyPair([]byte(l.CertPEM), []byte(l.PrivateKeyPEM))
	if err != nil {
		return nil, fmt.Errorf("%w: leaf: %w", ErrConnectAnswer, err)
	}
	leaf := &Leaf{Cert: cert, URI: l.ServiceURI, Serial: l.SerialNumber}
	u, err := url.Parse(l.ServiceURI)
	if err != nil || u.Scheme != "spiffe" {
		return nil, fmt.Errorf("%w: leaf URI %q", ErrConnectAnswer, l.ServiceURI)
	}
	// /ns/<ns>/dc/<dc>/svc/<service>
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	for i := 0; i+1 < len(parts); i += 2 {
		switch parts[i] {
		case "ns":
			leaf.Namespace = parts[i+1]
		case "dc":
			leaf.Datacenter = parts[i+1]
		}
	}
	if leaf.Datacenter == "" {
		return nil, fmt.Errorf("%w: leaf URI %q names no datacenter", ErrConnectAnswer, l.ServiceURI)
	}
	if leaf.Namespace == "" {
		leaf.Namespace = "default"
	}
	return leaf, nil
}

func toRoots(l *api.CARootList) (*Roots, error) {
	if l == nil || len(l.Roots) == 0 {
		return nil, fmt.Errorf("%w: no CA roots", ErrConnectAnswer)
	}
	if len(l.Roots) > MaxConnectRoots {
		return nil, fmt.Errorf("%w: %d CA roots (bound %d)", ErrConnectAnswer, len(l.Roots), MaxConnectRoots)
	}
	r := &Roots{Pool: x509.NewCertPool(), TrustDomain: l.TrustDomain, ActiveID: l.ActiveRootID}
	for _, root := range l.Roots {
		if root == nil {
			continue
		}
		if len(root.RootCertPEM) > MaxConnectPEMBytes || !r.Pool.AppendCertsFromPEM([]byte(root.RootCertPEM)) {
			return nil, fmt.Errorf("%w: CA root %s unusable", ErrConnectAnswer, root.ID)
		}
		r.IDs = append(r.IDs, root.ID)
	}
	slices.Sort(r.IDs)
	if r.TrustDomain == "" {
		return nil, fmt.Errorf("%w: no trust domain", ErrConnectAnswer)
	}
	return r, nil
}
