package gateway

import (
	"encoding/json"
	"net/http"
)

// errorBody is the JSON every gateway-generated error carries, so clients
// and operators can tell a gateway answer from an upstream one.
type errorBody struct {
	Error string `json:"error"`
	Route string `json:"route,omitempty"`
}

// writeError answers with status and a JSON body. route is empty when no
// route matched.
func writeError(w http.ResponseWriter, status int, msg, route string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: msg, Route: route})
}

// Messages of the gateway's own errors; tests and clients match on them.
const (
	msgNoRoute          = "no route matches the request"
	msgMethodNotAllowed = "method not allowed"
	msgNoInstance       = "no healthy instance"
	msgUpstreamDown     = "upstream unavailable"
	msgUpstreamTimeout  = "upstream timed out"
)
