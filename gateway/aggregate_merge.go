package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
)

// mergeBuffers recycles the merged bodies' buffers; a dashboard endpoint
// is hot, and its body is rebuilt for every request.
var mergeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledMerge keeps a rare huge body from pinning its buffer forever.
const maxPooledMerge = 1 << 20

// writeMerged answers 200 with one member per call, in declaration order,
// and an "errors" member when an optional call failed.
func (ag *Aggregate) writeMerged(w http.ResponseWriter, results []callResult) {
	buf := mergeBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledMerge {
			buf.Reset()
			mergeBuffers.Put(buf)
		}
	}()
	partial := mergeResults(buf, ag.Calls, results)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	if partial {
		h.Set("X-Gateway-Partial", "true")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// mergeResults writes the merged object into buf and reports whether any
// call failed. Bodies are copied as they are: each was checked with
// json.Valid already, and decoding and re-encoding them would cost more
// than the whole fan-out's bookkeeping.
func mergeResults(buf *bytes.Buffer, calls []*AggregateCall, results []callResult) (partial bool) {
	size := 2
	for i := range results {
		size += len(calls[i].name) + len(results[i].body) + 2
	}
	buf.Grow(size)
	buf.WriteByte('{')
	for i, c := range calls {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(c.name)
		buf.WriteByte(':')
		if results[i].err.Kind != "" {
			partial = true
			buf.WriteString("null")
			continue
		}
		buf.Write(results[i].body)
	}
	if partial {
		buf.WriteString(`,"errors":{`)
		first := true
		for i, c := range calls {
			if results[i].err.Kind == "" {
				continue
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			buf.Write(c.name)
			buf.WriteByte(':')
			e, _ := json.Marshal(results[i].err)
			buf.Write(e)
		}
		buf.WriteByte('}')
	}
	buf.WriteByte('}')
	return partial
}

// requiredFailureBody is the gateway error of an aggregate whose required
// call failed: the usual error and route, plus that call's failure.
type requiredFailureBody struct {
	Error  string               `json:"error"`
	Route  string               `json:"route"`
	Errors map[string]callError `json:"errors"`
}

// writeRequiredFailure answers for a failed required call: the upstream's
// 4xx for a business failure, 502 for a system one, the aggregate's
// timeout_status for a timeout.
func (ag *Aggregate) writeRequiredFailure(w http.ResponseWriter, i int, e callError) {
	status := http.StatusBadGateway
	switch e.Kind {
	case kindBusiness:
		status = e.Status
	case kindTimeout:
		status = ag.Config.TimeoutStatus
	}
	call := ag.Calls[i].Config.Name
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(requiredFailureBody{
		Error:  "required call " + strconv.Quote(call) + " failed: " + e.Message,
		Route:  ag.Config.Name,
		Errors: map[string]callError{call: e},
	})
}
