package gateway

import (
	"net"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayco/gateway/gateway/metrics"
)

// DefaultMaxConns bounds concurrent client connections unless configured
// otherwise. Each proxied request holds a second descriptor towards its
// upstream, so 10,000 stays well inside the descriptor limit of a
// container (Go raises the soft limit to the hard one, commonly 1,048,576)
// while being far more than one replica serves at a healthy load.
const DefaultMaxConns = 10000

// LimitListener returns ln serving at most max client connections at once
// (max <= 0: no limit). At the limit it stops accepting until a connection
// closes, as nginx does once worker_connections are in use: clients wait
// in the kernel's accept backlog instead of being accepted and dropped,
// and the gateway never runs out of descriptors for its upstreams. The
// open connections, and each time the limit stopped accepting, are
// recorded in m (nil records nothing). Hijacked connections (protocol
// upgrades) count until they close.
func LimitListener(ln net.Listener, max int, m *metrics.Metrics) net.Listener {
	return LimitListeners(max, m, ln)[0]
}

// LimitListeners is LimitListener for several listeners sharing one limit
// (the plain and the TLS listener): max bounds their connections together,
// as it bounds the descriptors they use together.
func LimitListeners(max int, m *metrics.Metrics, lns ...net.Listener) []net.Listener {
	var slots chan struct{}
	if max > 0 {
		slots = make(chan struct{}, max)
	}
	open, full := m.Connections()
	out := make([]net.Listener, len(lns))
	for i, ln := range lns {
		out[i] = &limitListener{Listener: ln, done: make(chan struct{}), slots: slots, open: open, full: full}
	}
	return out
}

type limitListener struct {
	net.Listener
	slots     chan struct{} // one per open connection; nil: no limit
	done      chan struct{} // closed by Close, ending a wait for a slot
	closeOnce sync.Once
	open      prometheus.Gauge   // nil without metrics
	full      prometheus.Counter // nil without metrics
}

// Accept takes a slot before accepting, so a connection beyond the limit
// stays in the backlog rather than being accepted only to wait.
func (l *limitListener) Accept() (net.Conn, error) {
	if l.slots != nil {
		select {
		case l.slots <- struct{}{}:
		default:
			if l.full != nil {
				l.full.Inc()
			}
			select {
			case l.slots <- struct{}{}:
			case <-l.done:
				return nil, net.ErrClosed
			}
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	if l.open != nil {
		l.open.Inc()
	}
	return &limitedConn{Conn: c, l: l}, nil
}

func (l *limitListener) release() {
	if l.slots != nil {
		<-l.slots
	}
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitedConn gives its slot back when closed, once.
type limitedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.l.open != nil {
			c.l.open.Dec()
		}
		c.l.release()
	})
	return err
}

// CloseWrite keeps the server's graceful close (half-close, then wait for
// the client) working through the wrapper.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
