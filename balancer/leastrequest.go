package balancer

// leastRequest is the power of two choices on in-flight requests, as
// Envoy's and Linkerd's least-request balancers: draw two distinct
// available instances at random and send to the less loaded one. Two
// draws avoid the herd a strict "least loaded of all" makes (every
// gateway replica piling onto the instance that just went idle) while
// steering clearly away from a slow instance, whose requests pile up.
//
// Weights count twice, on purpose: the draws are in proportion to weight,
// and load is in-flight requests divided by weight (compared by cross
// multiplication, so no division), so an instance of weight 3 is "as
// loaded" as one of weight 1 with a third of its requests. Without
// requests in flight the draws alone decide (a tie goes to the first
// draw), so an idle or sequential workload still gets the weights'
// shares; Envoy's weighted variant (scheduling on weight / (active+1))
// would send every sequential request to the heaviest instance.
//
// intN is injectable so tests are deterministic.
type leastRequest struct {
	intN func(int) int
}

func (b *leastRequest) Pick(p Pool) int {
	n := p.Len()
	total, count := 0, 0
	for i := range n {
		if p.Available(i) {
			total += weight(p, i)
			count++
		}
	}
	if count == 0 {
		return -1
	}
	first := drawWeighted(p, b.intN(total), -1)
	if count == 1 {
		return first
	}
	wa := weight(p, first)
	second := drawWeighted(p, b.intN(total-wa), first)
	wb := weight(p, second)
	// in(second)/wb < in(first)/wa, without dividing.
	if p.InFlight(second)*int64(wa) < p.InFlight(first)*int64(wb) {
		return second
	}
	return first
}

// drawWeighted returns the available instance (other than skip) that the
// point r, below the sum of their weights, falls on.
func drawWeighted(p Pool, r, skip int) int {
	last := -1
	for i := range p.Len() {
		if i == skip || !p.Available(i) {
			continue
		}
		last = i
		if r -= weight(p, i); r < 0 {
			return i
		}
	}
	return last // only if Available changed during the pick
}
