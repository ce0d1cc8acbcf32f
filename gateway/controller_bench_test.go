package gateway

import (
	"context"
	"fmt"
	"testing"

	"github.com/gatewayco/gateway/internal/registrytest"
	"github.com/gatewayco/gateway/registry"
)

// BenchmarkControllerHealthChange is one health change reaching a
// published table at 1,000 routes over 1,000 services of 3 instances, one
// route document each, as the scale bench runs it: the whole path from the
// notice (reparse check, resolve, watch alignment, instance choice, build,
// publish, change log), not only the build BenchmarkTableRebuild times.
func BenchmarkControllerHealthChange(b *testing.B) {
	gw := New(Options{})
	c := NewController(gw, nil)
	docs, insts := &registrytest.Docs{}, &registrytest.Instances{}
	for i, r := range benchRoutes(1000) {
		match := fmt.Sprintf("path_prefix = %q", r.PathPrefix)
		if r.Path != "" {
			match = fmt.Sprintf("path = %q", r.Path)
		}
		if r.Host != "" {
			match += fmt.Sprintf("\n  host = %q", r.Host)
		}
		docs.Put(fmt.Sprintf("gateway/routes/r%04d.hcl", i), fmt.Sprintf("route %q {\n  %s\n  service = %q\n}\n", r.Name, match, r.Service))
	}
	service := func(i int, passing bool) []registry.Instance {
		out := make([]registry.Instance, 3)
		for j := range out {
			out[j] = registry.Instance{ID: fmt.Sprintf("i%d-%d", i, j), Address: "10.0.0.1", Port: 8000 + j, Passing: passing || j > 0}
		}
		return out
	}
	for i := range 1000 {
		insts.Set(fmt.Sprintf("svc%d", i), service(i, true)...)
	}
	ctx := context.Background()
	c.reload(ctx, docs, insts)
	if n := len(gw.Table().Routes()); n != 1000 {
		b.Fatalf("%d routes served", n)
	}
	b.ReportAllocs()
	flap := false
	for b.Loop() {
		flap = !flap
		insts.Set("svc7", service(7, !flap)...)
		c.reload(ctx, docs, insts)
	}
}
