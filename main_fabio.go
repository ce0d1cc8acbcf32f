package main

import (
	"context"
	"flag"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/gatewayco/gateway/gateway"
	"github.com/gatewayco/gateway/gateway/fabio"
	"github.com/gatewayco/gateway/registry"
)

// addFabioFlags declares -fabio-tags.
func addFabioFlags(fs *flag.FlagSet, on *bool) {
	fs.BoolVar(on, "fabio-tags", false, "also route from Fabio urlprefix- service tags (KV documents win on conflicts)")
}

// runFabioTags starts the catalog watch feeding ctl routes from Fabio tags,
// when on; it must run before ctl.Run so the first build sees the source.
func runFabioTags(ctx context.Context, on bool, client *api.Client, opts registry.Options, ctl *gateway.Controller, wg *sync.WaitGroup) {
	if !on {
		return
	}
	tags := registry.NewCatalog(client, fabio.TagPrefix, opts, ctl.Notify)
	ctl.SetTagSource(tags)
	wg.Go(func() { tags.Run(ctx) })
}
