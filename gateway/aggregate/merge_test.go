package aggregate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// BenchmarkAggregateMerge measures building the merged body from three
// call results of about 1 KiB each, the part of an aggregate request the
// gateway adds on top of the calls themselves.
func BenchmarkAggregateMerge(b *testing.B) {
	item := `{"id":42,"name":"` + strings.Repeat("x", 1000) + `"}`
	calls := make([]*Call, 3)
	results := make([]callResult, 3)
	for i := range calls {
		name, _ := json.Marshal(fmt.Sprint("call", i))
		calls[i] = &Call{name: name, key: name}
		results[i] = callResult{body: []byte(item)}
	}
	b.Run("validate+merge", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			for i := range results {
				if !json.Valid(results[i].body) {
					b.Fatal("invalid")
				}
			}
			mergeResults(&buf, calls, results)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/3, "ns/call")
	})
	b.Run("merge", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			mergeResults(&buf, calls, results)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/3, "ns/call")
	})
	b.Run("merge-with-one-error", func(b *testing.B) {
		b.ReportAllocs()
		failed := slices.Clone(results)
		failed[1] = failure(KindSystem, 500, "upstream answered 500 Internal Server Error")
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			mergeResults(&buf, calls, failed)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/3, "ns/call")
	})
}
