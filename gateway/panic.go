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
//   - panic: fewer than threshold × the known-good instances pass (a
//     shared dependency of the health checks is down, say): route to all
//     of them, as Envoy's panic mode does. Known-good means registered
//     and seen passing at least once: an instance that registers before
//     it is ready starts critical in Consul and must never get traffic
//     before its first passing check, panic or not;
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
	// everPassed holds, per service, the instances seen passing at least
	// once and still registered, keyed by node and ID.
	everPassed map[registry.ServiceKey]map[instanceID]bool
}

type instanceID struct{ node, id string }

func newInstanceSelector(threshold float64, logger hclog.Logger) *instanceSelector {
	return &instanceSelector{
		threshold:  threshold,
		logger:     logger,
		lastKnown:  map[registry.ServiceKey][]registry.Instance{},
		reasons:    map[registry.ServiceKey]string{},
		everPassed: map[registry.ServiceKey]map[instanceID]bool{},
	}
}

// choose returns the instances to serve for key and, when it overrode the
// passing set, why. registered is everything Consul lists for key.
func (s *instanceSelector) choose(key registry.ServiceKey, registered []registry.Instance) ([]registry.Instance, string) {
	var serve []registry.Instance
	var reason string
	passing := registry.Passing(registered)
	known := s.knownGood(key, registered)
	switch {
	case len(registered) == 0 && len(s.lastKnown[key]) > 0:
		serve = s.lastKnown[key]
		reason = fmt.Sprintf("Consul lists no instances; serving the %d last known", len(serve))
	case len(known) > 0 && float64(len(passing)) < s.threshold*float64(len(known)):
		serve = known
		reason = fmt.Sprintf("only %d of %d known-good instances passing, below the panic threshold of %.0f%%; routing to all of them", len(passing), len(known), s.threshold*100)
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

// knownGood updates the record of instances seen passing and returns the
// registered ones in it, in registration order.
func (s *instanceSelector) knownGood(key registry.ServiceKey, registered []registry.Instance) []registry.Instance {
	prev := s.everPassed[key]
	next := make(map[instanceID]bool, len(registered))
	var known []registry.Instance
	for _, in := range registered {
		id := instanceID{in.Node, in.ID}
		if in.Passing || prev[id] {
			next[id] = true
			known = append(known, in)
		}
	}
	s.everPassed[key] = next
	return known
}

// forget drops services no route uses any more, so their memory does not
// outlive them.
func (s *instanceSelector) forget(used map[registry.ServiceKey]bool) {
	for k := range s.everPassed {
		if !used[k] {
			delete(s.lastKnown, k)
			delete(s.reasons, k)
			delete(s.everPassed, k)
		}
	}
}
