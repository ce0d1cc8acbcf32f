package config

import (
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Parse parses and validates one route document. key names the document in
// every position (it is a Consul KV key or a file name; its extension does
// not matter, the content is always HCL native syntax). modifyIndex is
// recorded in the Document; zero is fine for documents not from Consul.
//
// A document is all-or-nothing: on any problem Parse returns a nil Document
// and an Errors holding every problem found, in source order, each with a
// KEY:LINE:COL position; errors.Is(err, ErrInvalid) holds for it. An empty
// document is valid and has no routes.
//
// src is untrusted: its size, nesting and token count are bounded before
// the HCL parser runs, and its block counts before they are decoded (see
// MaxDocumentBytes and the bounds after it). A panic inside Parse is a bug,
// but one document must not take a gateway down with it: it is returned as
// an Errors at KEY:1:1 that also matches *PanicError.
func Parse(key string, src []byte, modifyIndex uint64) (*Document, error) {
	return parse(&problems{key: key}, src, modifyIndex)
}

// parse is Parse recording into p, which names the document.
func parse(p *problems, src []byte, modifyIndex uint64) (doc *Document, err error) {
	key := p.key
	defer func() {
		if v := recover(); v != nil {
			doc, err = nil, panicked(key, v)
		}
	}()
	if checkBytes(p, src) {
		return nil, p.err()
	}
	file, diags := hclparse.NewParser().ParseHCL(src, key)
	if p.diags(diags, hcl.Range{}) {
		// The recovered syntax tree of a broken file yields confusing
		// follow-up errors; the syntax errors are what the user must fix.
		return nil, p.err()
	}
	if checkCounts(p, file.Body) {
		return nil, p.err()
	}
	content, diags := file.Body.Content(documentSpec.schema)
	p.diags(diags, hcl.Range{})

	var routes []*routeSrc
	var aggs []*aggregateSrc
	for _, b := range content.Blocks {
		switch b.Type {
		case routeSpec.typ:
			routes = append(routes, decodeRoute(p, b))
		case aggregateSpec.typ:
			aggs = append(aggs, decodeAggregate(p, b))
		}
	}
	validateDocument(p, routes)
	for _, a := range aggs {
		validateAggregate(p, a)
	}
	validateAggregateNamespace(p, routes, aggs)
	if err := p.err(); err != nil {
		return nil, err
	}

	doc = &Document{Key: key, ModifyIndex: modifyIndex, Routes: make([]Route, len(routes))}
	for i, r := range routes {
		doc.Routes[i] = r.Route
	}
	for _, a := range aggs {
		doc.Aggregates = append(doc.Aggregates, a.Aggregate)
	}
	return doc, nil
}

// ParseFile reads and parses the route document at path, with path (as
// given) as its key and a zero ModifyIndex. A read failure is returned
// wrapped and does not match ErrInvalid; content problems are as for Parse.
func ParseFile(path string) (*Document, error) {
	src, err := ReadDocument(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, src, 0)
}

// ReadDocument reads the route document at path, but no more than one byte
// past MaxDocumentBytes: enough for Parse to reject a huge file as it
// rejects a huge KV value, without loading it.
func ReadDocument(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read route document: %w", err)
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, MaxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read route document: %w", err)
	}
	return src, nil
}

// routeSrc is a decoded, not yet validated route together with the source
// information validation needs to point at the right place.
type routeSrc struct {
	Route
	block     *hcl.Block
	attrs     *attrs
	methodPos []Pos // position of each Methods element
	// failoverAt is the position of each failover datacenter.
	failoverAt []Pos
	// valid is set by validateRoute when neither decoding nor validation
	// found a problem in this route; only valid routes have a meaningful
	// MatchKey.
	valid bool
	// mark is the problem count before this route was decoded.
	mark int
}

// labelPos is where the route's name label starts.
func (r *routeSrc) labelPos(p *problems) Pos {
	return p.pos(r.block.LabelRanges[0])
}

// decodeRoute reads one route block into a routeSrc, recording type and
// schema problems. Content guarantees exactly one label: blocks with any
// other count are reported by HCL and never reach here.
func decodeRoute(p *problems, b *hcl.Block) *routeSrc {
	r := &routeSrc{block: b, mark: p.mark()}
	a, blocks := decodeBody(p, b, routeSpec)
	r.attrs = a

	r.Name = b.Labels[0]
	r.SourceKey = p.key
	r.Pos = p.pos(b.DefRange)

	r.Path = a.str(attrPath)
	r.PathPrefix = a.str(attrPathPrefix)
	r.Methods, r.methodPos = a.strList(attrMethods)
	r.Host = a.str(attrHost)
	r.CaseInsensitive = a.boolean(attrCaseFold)
	r.Service = a.str(attrService)
	r.Tag = a.str(attrTag)
	r.StripPrefix = a.str(attrStripPrefix)
	r.Balancer = a.str(attrBalancer)
	r.AllowWarning = a.boolean(attrAllowWarning)
	r.Timeout = a.duration(attrTimeout)
	r.Protocol = a.str(attrProtocol)
	if tb := single(p, blocks, upstreamTLSSpec); tb != nil {
		r.UpstreamTLS = decodeUpstreamTLS(p, tb)
	}
	r.Splits = decodeSplits(p, blocks)
	r.HTTPSOnly = a.boolean(attrHTTPSOnly)
	r.HSTSMaxAge = a.duration(attrHSTSMaxAge)
	r.ACME = a.boolean(attrACME)
	r.IdleTimeout = a.duration(attrIdleTimeout)
	r.Datacenter = a.str(attrDatacenter)
	r.Connect = a.boolean(attrConnect)
	if fb := single(p, blocks, failoverSpec); fb != nil {
		r.Failover, r.failoverAt = decodeFailover(p, fb)
	}
	decodeTraffic(p, blocks, &r.Route)
	decodeAccessPolicy(p, blocks, &r.Policy)
	decodeUpstreamPolicy(p, blocks, a, &r.Policy, &r.Policy)
	return r
}
