package exchange

import (
	"encoding/json"
	"errors"
	"net/http"
)

// ErrorBody is the JSON every gateway-generated error carries, so clients
// and operators can tell a gateway answer from an upstream one.
type ErrorBody struct {
	// Error is one of the Msg constants, or a policy's reason.
	Error string `json:"error"`
	// Route is the matched route or aggregate; empty when none matched.
	Route string `json:"route,omitempty"`
}

// WriteError answers with status and a JSON body. route is empty when no
// route matched. A gRPC client (see Exchange.GRPC) gets the same error in
// gRPC's form instead: HTTP 200 with grpc-status and grpc-message (see
// GRPCCode), so every error path of the gateway speaks its client's
// protocol without knowing it.
func WriteError(w http.ResponseWriter, status int, msg, route string) {
	if ex := exchangeOf(w); ex != nil && ex.GRPC {
		writeGRPCError(ex, w, status, msg)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ErrorBody{Error: msg, Route: route})
}

// Messages of the gateway's own errors; tests and clients match on them.
const (
	MsgNoRoute          = "no route matches the request"
	MsgMethodNotAllowed = "method not allowed"
	MsgNoInstance       = "no healthy instance"
	MsgUpstreamDown     = "upstream unavailable"
	MsgUpstreamTimeout  = "upstream timed out"
	MsgBreakerOpen      = "circuit breaker open"
	MsgBodyTooLarge     = "request body too large"
	MsgBodyMalformed    = "malformed or incomplete request body"
	MsgBodyTimeout      = "request body not received in time"
	MsgGRPCTimeout      = "malformed grpc-timeout"
	MsgDeadline         = "the client's deadline passed"
	MsgTooManyTunnels   = "too many open tunnels"
	MsgUpgradeBody      = "a WebSocket handshake must not have a body"
	MsgMeshRefused      = "the service refused the gateway's mesh identity (an intention denies it, or it does not trust the gateway's CA)"
)

// StatusClientClosed is nginx's non-standard code for a client that closed
// the connection before the answer; only logs and metrics show it.
const StatusClientClosed = 499

// IsBodyTooLarge reports whether err came from crossing the body limit.
func IsBodyTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
