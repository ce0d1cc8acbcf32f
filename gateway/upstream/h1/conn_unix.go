//go:build unix

package h1

import (
	"errors"
	"syscall"
)

// peeker is a connection's means of looking at its socket without
// reading from it. Every reuse peeks, so it is set up on the first peek
// and costs no allocation after that.
type peeker struct {
	raw   syscall.RawConn
	fn    func(fd uintptr) bool // the peek, bound to this peeker once
	alive bool
	buf   [1]byte
}

// alive reports whether an idle connection is still open: a peek that
// does not wait finds nothing to read (EAGAIN). End of file means the
// server closed it; bytes mean it sent something unasked, and the
// connection can no longer be trusted to frame the next answer.
func (c *conn) alive() bool {
	p := &c.peek
	if p.fn == nil {
		sc, ok := c.nc.(syscall.Conn)
		if !ok {
			return true
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		p.raw = raw
		p.fn = func(fd uintptr) bool {
			_, _, rerr := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			p.alive = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
			return true
		}
	}
	p.alive = false
	err := p.raw.Read(p.fn)
	return err == nil && p.alive
}

// isBroken reports whether err is the connection reset or closed under
// a write: on a kept-alive connection, the server had closed it.
func isBroken(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
