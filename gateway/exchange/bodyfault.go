package exchange

import "net/http"

// BodyFaultStatus is the answer to a fault of the client's request body
// (Fault.InBody): 413 for a body over -max-body-bytes, 408 for one not in
// time, 400 for a malformed one. Every handler that reads a client body
// answers its faults with it, so the client gets the same status whatever
// read the body.
func BodyFaultStatus(f Fault) (status int, msg string) {
	switch f {
	case FaultBodyTooLarge:
		return http.StatusRequestEntityTooLarge, MsgBodyTooLarge
	case FaultBodyTimeout:
		return http.StatusRequestTimeout, MsgBodyTimeout
	}
	return http.StatusBadRequest, MsgBodyMalformed
}
