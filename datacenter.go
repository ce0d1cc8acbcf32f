package main

import (
	"context"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/gateway"
	"github.com/gatewayco/gateway/registry"
)

// localDCTimeout bounds the one question to the agent at start; the
// gateway starts without Consul, so an unreachable agent must not hold it.
const localDCTimeout = 2 * time.Second

// nameLocalDatacenter tells the controller the local agent's datacenter,
// so /routes and metrics name it; without an answer they say
// gateway.LocalDatacenter.
func nameLocalDatacenter(ctl *gateway.Controller, client *api.Client, logger hclog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), localDCTimeout)
	defer cancel()
	dc, err := registry.LocalDatacenter(ctx, client)
	if err != nil {
		logger.Warn("local consul datacenter unknown; routes name it "+gateway.LocalDatacenter, "error", err)
		return
	}
	ctl.SetLocalDatacenter(dc)
}
