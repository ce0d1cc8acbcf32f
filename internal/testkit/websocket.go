package testkit

import (
	"net/http"

	"github.com/coder/websocket"
)

// WebSocketEcho is an upstream handler that accepts a WebSocket
// (coder/websocket, a real client and server library) and echoes every
// message back until either side closes; the package tests and the
// end-to-end tests both proxy tunnels to it.
func WebSocketEcho(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		typ, b, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if c.Write(r.Context(), typ, b) != nil {
			return
		}
	}
}
