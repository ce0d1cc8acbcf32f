package balancer

import (
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/gatewayco/gateway/registry"
)

// DefaultPanicThreshold is zero: panic mode is off unless asked for, so
// by default an instance whose check is critical gets no traffic, as
// Consul DNS, Fabio and Traefik do. Envoy's 0.5 is the usual opt-in value.
const DefaultPanicThreshold = 0.0

// minPanicInstances is the fewest known-good instances panic mode applies
// to: with one, "most checks failing" cannot tell a shared dependency of
// the checks from that instance being down, and the check is the only
// evidence there is.
const minPanicInstances = 2

// Selector decides which instances of a service get traffic. The
// normal answer is "the passing ones". Two situations override it, because
// answering 503 to every request is worse than trying:
//
//   - panic (opt-in, threshold above zero): fewer than threshold × the
//     known-good instances pass (a shared dependency of the health checks
//     is down, say): route to all of them, as Envoy's panic mode does.
//     Known-good means registered, not in maintenance and seen passing at
//     least once since it was last in maintenance: an instance that
//     registers before it is ready starts critical in Consul and must
//     never get traffic before its first passing check, panic or not. A
//     service needs at least minPanicInstances known-good instances to
//     panic;
//   - an empty list after a non-empty one (every instance deregistered at
//     once, usually by mistake: a bad deploy, an agent wiped): keep the
//     instances the last non-empty list served, until any instance is
//     registered again. If that list served none (every instance in
//     maintenance or critical), nothing is kept.
//
// The normal answer also carries the instances whose checks warn (none
// critical), marked Warning, so that a route with allow_warning can take
// them; Servable leaves them out for every other caller. The panic
// threshold counts them as not passing, as Consul does.
//
// Neither ever sends traffic to an instance in service or node
// maintenance: that is an operator's explicit "no traffic here", not a
// health check that might be wrong. It is used by the controller's
// goroutine only.
type Selector struct {
	threshold float64
	logger    hclog.Logger
	lastKnown map[registry.ServiceKey][]registry.Instance
	reasons   map[registry.ServiceKey]string // current panic reason per service
	// everPassed holds, per service, the instances seen passing at least
	// once and still registered and out of maintenance, keyed by node and
	// ID.
	everPassed map[registry.ServiceKey]map[instanceID]bool
}

type instanceID struct{ node, id string }

// NewSelector returns a selector with the given panic threshold (zero or
// less: panic mode off), logging mode changes on logger (nil discards).
func NewSelector(threshold float64, logger hclog.Logger) *Selector {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Selector{
		threshold:  threshold,
		logger:     logger,
		lastKnown:  map[registry.ServiceKey][]registry.Instance{},
		reasons:    map[registry.ServiceKey]string{},
		everPassed: map[registry.ServiceKey]map[instanceID]bool{},
	}
}

// SetThreshold changes the panic threshold; call it before the first
// Choose.
func (s *Selector) SetThreshold(threshold float64) { s.threshold = threshold }

// Choose returns the instances to serve for key and, when it overrode the
// passing set, why. registered is everything Consul lists for key.
func (s *Selector) Choose(key registry.ServiceKey, registered []registry.Instance) ([]registry.Instance, string) {
	var serve []registry.Instance
	var reason string
	passing := registry.Passing(registered)
	known := s.knownGood(key, registered)
	switch {
	case len(registered) == 0:
		// Only a truly empty answer: instances in maintenance are listed,
		// so draining every one of them never lands here.
		serve = s.lastKnown[key]
		if len(serve) > 0 {
			reason = fmt.Sprintf("Consul lists no instances; serving the %d last known", len(serve))
		}
	case s.threshold > 0 && len(known) >= minPanicInstances && float64(len(passing)) < s.threshold*float64(len(known)):
		serve = known
		reason = fmt.Sprintf("only %d of %d known-good instances passing, below the panic threshold of %.0f%%; routing to all of them", len(passing), len(known), s.threshold*100)
		s.lastKnown[key] = serve
	default:
		serve = servingOrWarning(registered, passing)
		s.lastKnown[key] = serve
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
// registered ones in it, in registration order. An instance in
// maintenance is dropped from the record: when it comes back it may be a
// new deployment, and must pass again before panic mode may pick it.
func (s *Selector) knownGood(key registry.ServiceKey, registered []registry.Instance) []registry.Instance {
	prev := s.everPassed[key]
	if same, known := unchangedKnown(prev, registered); same {
		// Most builds follow a change to another service: keep the
		// record rather than allocate an equal one per service.
		return known
	}
	next := make(map[instanceID]bool, len(registered))
	var known []registry.Instance
	for _, in := range registered {
		if in.Maintenance {
			continue
		}
		id := instanceID{in.Node, in.ID}
		if in.Passing || prev[id] {
			next[id] = true
			known = append(known, in)
		}
	}
	s.everPassed[key] = next
	return known
}

// unchangedKnown reports whether registered leaves the record prev as it
// is, and if so returns the known-good instances knownGood would.
func unchangedKnown(prev map[instanceID]bool, registered []registry.Instance) (bool, []registry.Instance) {
	if prev == nil {
		return false, nil
	}
	var known []registry.Instance
	for _, in := range registered {
		if in.Maintenance {
			continue
		}
		id := instanceID{in.Node, in.ID}
		if !prev[id] {
			if in.Passing {
				return false, nil
			}
			continue
		}
		known = append(known, in)
	}
	if len(known) != len(prev) || len(known) > maxQuickCompare {
		return false, nil
	}
	// Equal counts make equal sets only without repeats, which Consul
	// does not list but a hostile answer might.
	for i := range known {
		for j := range i {
			if known[i].Node == known[j].Node && known[i].ID == known[j].ID {
				return false, nil
			}
		}
	}
	return true, known
}

// maxQuickCompare bounds the instances unchangedKnown compares pairwise;
// larger services take knownGood's map path.
const maxQuickCompare = 32

// Forget drops services no route uses any more, so their memory does not
// outlive them.
func (s *Selector) Forget(used map[registry.ServiceKey]bool) {
	for k := range s.everPassed {
		if !used[k] {
			delete(s.lastKnown, k)
			delete(s.reasons, k)
			delete(s.everPassed, k)
		}
	}
}

// servingOrWarning is registered's passing and warning instances, in
// order; passing itself when none warns, so the usual case does not
// allocate.
func servingOrWarning(registered, passing []registry.Instance) []registry.Instance {
	n := 0
	for _, in := range registered {
		if in.Warning && !in.Maintenance {
			n++
		}
	}
	if n == 0 {
		return passing
	}
	out := make([]registry.Instance, 0, len(passing)+n)
	for _, in := range registered {
		if in.Passing || (in.Warning && !in.Maintenance) {
			out = append(out, in)
		}
	}
	return out
}

// Servable is what one caller of a service gets from Choose's answer
// chosen: the instances whose checks warn are left out unless
// allowWarning, and then those whose warning weight is zero (Consul's
// "no traffic while warning") still are. In panic (panicking), every
// chosen instance serves, as Choose decided. It returns chosen itself
// when nothing is left out.
func Servable(chosen []registry.Instance, allowWarning, panicking bool) []registry.Instance {
	drop := func(in registry.Instance) bool {
		return in.Warning && !panicking && (!allowWarning || in.Weights.Warning == 0)
	}
	n := 0
	for _, in := range chosen {
		if drop(in) {
			n++
		}
	}
	if n == 0 {
		return chosen
	}
	out := make([]registry.Instance, 0, len(chosen)-n)
	for _, in := range chosen {
		if !drop(in) {
			out = append(out, in)
		}
	}
	return out
}
