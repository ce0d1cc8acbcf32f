//go:build !unix

package h1

// peeker holds nothing here: there is no peek.
type peeker struct{}

// alive cannot peek without waiting here; a closed connection is found
// by the exchange failing instead.
func (c *conn) alive() bool { return true }

func isBroken(err error) bool { return false }
