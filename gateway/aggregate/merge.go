package aggregate

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// mergeBuffers recycles the merged bodies' buffers; a dashboard endpoint
// is hot, and its body is rebuilt for every request.
var mergeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledMerge keeps a rare huge body from pinning its buffer forever;
// a merged body larger than this is written straight to the client
// instead, so it never exists in memory twice.
const maxPooledMerge = 1 << 20

// writeMerged answers 200 with one member per call, in declaration order
// (or composed, see writeComposed), the answers already shaped,
// and an "errors" member when an optional call failed. A small body is
// assembled in a pooled buffer, reserved in hold like the call bodies,
// and written at once; a large one is streamed from the call bodies.
func (ag *Aggregate) writeMerged(w http.ResponseWriter, results []callResult, hold *share) {
	if ag.composed() {
		ag.writeComposed(w, results, hold)
		return
	}
	errs := mergeErrors(ag.Calls, results)
	size := mergedLen(ag.Calls, results, errs)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(size))
	if errs != nil {
		h.Set("X-Gateway-Partial", "true")
	}
	if size > maxPooledMerge {
		w.WriteHeader(http.StatusOK)
		writeMergedTo(w, ag.Calls, results, errs)
		return
	}
	if !hold.take(int64(size)) {
		h.Del("Content-Length")
		h.Del("X-Gateway-Partial")
		ag.writeMemoryLimit(w)
		return
	}
	buf := mergeBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledMerge {
			buf.Reset()
			mergeBuffers.Put(buf)
		}
	}()
	buf.Grow(size)
	writeMergedTo(buf, ag.Calls, results, errs)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// mergeResults writes the merged object into buf and reports whether any
// call failed.
func mergeResults(buf *bytes.Buffer, calls []*Call, results []callResult) (partial bool) {
	errs := mergeErrors(calls, results)
	buf.Grow(mergedLen(calls, results, errs))
	writeMergedTo(buf, calls, results, errs)
	return errs != nil
}

// mergedLen is the length of what writeMergedTo writes, so the answer can
// carry a Content-Length before any of it is written.
func mergedLen(calls []*Call, results []callResult, errs []byte) int {
	n := 2 + len(errs) + max(len(calls)-1, 0) // braces, errors, commas
	for i, c := range calls {
		n += len(c.key) + 1
		if results[i].err.Kind != "" {
			n += len("null")
		} else {
			n += len(results[i].body)
		}
	}
	return n
}

// mergeErrors encodes the `,"errors":{...}` member of the failed calls,
// nil when every call succeeded.
func mergeErrors(calls []*Call, results []callResult) []byte {
	var b []byte
	for i, c := range calls {
		if results[i].err.Kind == "" {
			continue
		}
		if b == nil {
			// Room for a typical member: name, kind, status, message.
			b = make([]byte, 0, 128*len(calls))
			b = append(b, `,"errors":{`...)
		} else {
			b = append(b, ',')
		}
		b = append(b, c.name...)
		b = append(b, ':')
		e, _ := json.Marshal(results[i].err)
		b = append(b, e...)
	}
	if b != nil {
		b = append(b, '}')
	}
	return b
}

// writeMergedTo writes the merged object. Bodies are copied as they are:
// each was checked with json.Valid already, and decoding and re-encoding
// them would cost more than the whole fan-out's bookkeeping. A write
// error means the client went away; there is nobody to tell.
func writeMergedTo(w io.Writer, calls []*Call, results []callResult, errs []byte) {
	for i, c := range calls {
		if i == 0 {
			_, _ = w.Write(mergeOpen)
		} else {
			_, _ = w.Write(mergeComma)
		}
		_, _ = w.Write(c.key)
		_, _ = w.Write(mergeColon)
		if results[i].err.Kind != "" {
			_, _ = w.Write(mergeNull)
			continue
		}
		_, _ = w.Write(results[i].body)
	}
	if len(calls) == 0 {
		_, _ = w.Write(mergeOpen)
	}
	_, _ = w.Write(errs)
	_, _ = w.Write(mergeClose)
}

// The merged body's punctuation, shared so writing it allocates nothing.
var (
	mergeOpen  = []byte("{")
	mergeComma = []byte(",")
	mergeColon = []byte(":")
	mergeNull  = []byte("null")
	mergeClose = []byte("}")
)

// requiredFailureBody is the gateway error of an aggregate whose required
// call failed: the usual error and route, plus that call's failure.
type requiredFailureBody struct {
	Error  string               `json:"error"`
	Route  string               `json:"route"`
	Errors map[string]CallError `json:"errors"`
}

// writeRequiredFailure answers for a failed required call by its class:
// the aggregate's business_status for a business failure (200 by
// default, the error in the body), 503 for a system failure without an
// instance to call (as a route answers it) and 502 for any other, the
// aggregate's timeout_status for a timeout.
func (ag *Aggregate) writeRequiredFailure(w http.ResponseWriter, i int, e CallError) {
	status := http.StatusBadGateway
	switch e.Kind {
	case KindBusiness:
		status = ag.Config.BusinessStatus
		if status == 0 {
			status = e.Status
		}
	case KindTimeout:
		status = ag.Config.TimeoutStatus
	case KindSystem:
		if e.Status == http.StatusServiceUnavailable {
			status = http.StatusServiceUnavailable
		}
	}
	call := ag.Calls[i].Config.Name
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(requiredFailureBody{
		Error:  "required call " + strconv.Quote(call) + " failed: " + e.Message,
		Route:  ag.Config.Name,
		Errors: map[string]CallError{call: e},
	})
}
