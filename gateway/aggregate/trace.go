package aggregate

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/gatewayco/gateway/gateway/tracing"
)

// traced is do inside one span per call, named aggregate/call, whose
// attempts (retries included) are its children.
func (c *Call) traced(ctx context.Context, aggregate, target string, header http.Header, body []byte, limit int64, hold *share) callResult {
	if !tracing.On() {
		return c.do(ctx, target, header, body, limit, hold)
	}
	ctx, span := tracing.Start(ctx, aggregate+"/"+c.Config.Name, tracing.KeyRoute.String(aggregate),
		tracing.KeyCall.String(c.Config.Name), tracing.KeyService.String(c.Service.Name))
	res := c.do(ctx, target, header, body, limit, hold)
	if res.err.Kind != "" || res.memory {
		kind := res.err.Kind
		if res.memory {
			kind = KindMemory
		}
		span.SetStatus(codes.Error, kind)
		span.SetAttributes(attribute.String("gateway.aggregate.failure", kind), attribute.Int("http.response.status_code", res.err.Status))
	}
	span.End()
	return res
}
