package gateway

import (
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/registry"
)

// DefaultPanicThreshold is Envoy's default: when fewer than half of a
// service's registered instances pass their checks, trust the checks less
// than the registrations and route to every registered instance.
const DefaultPanicThreshold = 0.5

// instanceSelector decides which instances of a service get traffic. The
// normal answer is "the passing ones". Two situations override it, because
// answering 503 to every request is worse than trying:
//
//   - panic: fewer than threshold × registered instances pass (a shared
//     dependency of the health checks is down, say): route to all
//     registered instances, as Envoy's panic mode does;
//   - an empty list after a non-empty one (every instance deregistered at
//     once, usually by mistake: a bad deploy, an agent wiped): keep the
//     last instances that served, until any instance is registered again.
//
// A threshold of zero turns panic mode off; the empty-list rule stays. It
// is used by the controller's goroutine only.
type instanceSelector struct {
	threshold float64
	logger    hclog.Logger
	lastKnown map[registry.ServiceKey][]registry.Instance
	reasons   map[registry.ServiceKey]string // current panic reason per service
}

func newInstanceSelector(threshold float64, logger hclog.Logger) *instanceSelector {
	return &instanceSelector{
		threshold: threshold,
		logger:    logger,
		lastKnown: map[registry.ServiceKey][]registry.Instance{},
		reasons:   map[registry.ServiceKey]string{},
	}
}

// choose returns the instances to serve for key and, when it overrode the
// passing set, why. registered is everything Consul lists for key.
func (s *instanceSelector) choose(key registry.ServiceKey, registered []registry.Instance) ([]registry.Instance, string) {
	var serve []registry.Instance
	var reason string
	passing := registry.Passing(registered)
	switch {
	case len(registered) == 0 && len(s.lastKnown[key]) > 0:
		serve = s.lastKnown[key]
		reason = fmt.Sprintf("Consul lists no instances; serving the %d last known", len(serve))
	case len(registered) > 0 && float64(len(passing)) < s.threshold*float64(len(registered)):
		serve = registered
		reason = fmt.Sprintf("only %d of %d instances passing, below the panic threshold of %.0f%%; routing to all registered", len(passing), len(registered), s.threshold*100)
	default:
		serve = passing
		if len(passing) > 0 {
			s.lastKnown[key] = passing
		}
	}
	if reason != s.reasons[key] {
		if reason != "" {
			s.logger.Warn("instance panic mode on", "service", key.String(), "reason", reason)
		} else {
			s.logger.Info("instance panic mode off", "service", key.String(), "passing", len(passing))
		}
	}
	if reason == "" {
		delete(s.reasons, key)
	} else {
		s.reasons[key] = reason
	}
	return serve, reason
}

// forget drops services no route uses any more, so their memory does not
// outlive them.
func (s *instanceSelector) forget(used map[registry.ServiceKey]bool) {
	for k := range s.lastKnown {
		if !used[k] {
			delete(s.lastKnown, k)
			delete(s.reasons, k)
		}
	}
}
