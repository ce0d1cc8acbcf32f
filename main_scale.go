package main

import (
	"flag"

	"github.com/gatewayco/gateway/registry"
)

// scaleFlags size the gateway's use of Consul for many services.
type scaleFlags struct {
	healthWatchThreshold int
	consulMaxAnswerBytes int64
}

// addScaleFlags declares -health-watch-threshold and -consul-max-answer-bytes.
func addScaleFlags(fs *flag.FlagSet, f *scaleFlags) {
	fs.IntVar(&f.healthWatchThreshold, "health-watch-threshold", registry.DefaultShareAbove,
		"above this many watched services, follow health through 2 shared Consul watches and at most 4 targeted reads at once instead of one long poll per service (0: always shared; negative: never)")
	fs.Int64Var(&f.consulMaxAnswerBytes, "consul-max-answer-bytes", registry.DefaultMaxAnswerBytes,
		"largest Consul answer body read; a larger one fails the call and the last snapshot is kept")
}
