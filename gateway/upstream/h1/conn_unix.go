//go:build unix

package h1

import (
	"errors"
	"syscall"
)

// alive reports whether an idle connection is still open: a peek that
// does not wait finds nothing to read (EAGAIN). End of file means the
// server closed it; bytes mean it sent something unasked, and the
// connection can no longer be trusted to frame the next answer.
func (c *conn) alive() bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && alive
}

// isBroken reports whether err is the connection reset or closed under
// a write: on a kept-alive connection, the server had closed it.
func isBroken(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
