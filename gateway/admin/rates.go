package admin

import (
	"sync"
	"time"
)

// Rate windows for the dashboard: the page polls every 1–2 s, and a rate
// taken between two polls alone is noise (one request in 20 ms reads as
// 50 req/s). So each poll is compared with the oldest sample kept from the
// last rateWindowMax, and samples are kept at least rateSampleEvery apart
// so any number of open dashboards costs a bounded ring.
const (
	rateWindowMax   = 10 * time.Second
	rateSampleEvery = time.Second
)

// Rate is one entry's traffic over the window ending now.
type Rate struct {
	// RequestsPerSecond counts every answer.
	RequestsPerSecond float64 `json:"requests_per_second"`
	// ErrorsPerSecond counts 5xx answers.
	ErrorsPerSecond float64 `json:"errors_per_second"`
	// ErrorRatio is 5xx answers over requests in the window; 0 when idle.
	ErrorRatio float64 `json:"error_ratio"`
	// WindowSeconds is how far back the rate looks.
	WindowSeconds float64 `json:"window_seconds"`
}

type rateSample struct {
	at     time.Time
	counts map[string][2]uint64 // entry key -> requests, errors (cumulative)
}

// rateWindow turns cumulative counters into rates. Safe for concurrent use.
type rateWindow struct {
	mu      sync.Mutex
	samples []rateSample // oldest first
}

// observe records counts taken at now and returns the rates of every key
// that also appears in the window's oldest sample. Keys without one (new
// entries, the first poll) get no rate.
func (w *rateWindow) observe(now time.Time, counts map[string][2]uint64) map[string]*Rate {
	w.mu.Lock()
	defer w.mu.Unlock()
	keep := w.samples[:0]
	for _, s := range w.samples {
		if now.Sub(s.at) <= rateWindowMax {
			keep = append(keep, s)
		}
	}
	w.samples = keep
	out := make(map[string]*Rate, len(counts))
	if len(w.samples) > 0 {
		base := w.samples[0]
		dt := now.Sub(base.at).Seconds()
		for k, c := range counts {
			b, ok := base.counts[k]
			if !ok || dt <= 0 || c[0] < b[0] || c[1] < b[1] {
				continue
			}
			dr, de := float64(c[0]-b[0]), float64(c[1]-b[1])
			r := &Rate{RequestsPerSecond: dr / dt, ErrorsPerSecond: de / dt, WindowSeconds: dt}
			if dr > 0 {
				r.ErrorRatio = de / dr
			}
			out[k] = r
		}
	}
	if n := len(w.samples); n == 0 || now.Sub(w.samples[n-1].at) >= rateSampleEvery {
		w.samples = append(w.samples, rateSample{at: now, counts: counts})
	}
	return out
}
