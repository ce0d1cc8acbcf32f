package admin

import (
	"encoding/json"
	"math"
	"net/http"
	"time"

	"github.com/gatewayco/gateway/gateway"
	"github.com/gatewayco/gateway/gateway/metrics"
)

// seriesBody is what /api/series answers: every route's and aggregate's
// last 15 minutes in SeriesBucketWidth points, oldest first, for the
// dashboard's charts. Entries without a request in that window, or that
// record no series (past metrics.MaxSeriesRoutes), are left out, so idle
// routes cost the page nothing; "unmatched" is the requests no route
// matched.
type seriesBody struct {
	Now           time.Time    `json:"now"`
	BucketSeconds float64      `json:"bucket_seconds"`
	Series        []seriesView `json:"series"`
}

// seriesView is one entry's points as parallel arrays, so 90 points cost
// a few hundred bytes rather than 90 objects. The last point is the
// bucket in progress: its rate is over the part of it that has passed.
type seriesView struct {
	Kind              string    `json:"kind"` // route, aggregate or unmatched
	Name              string    `json:"name"`
	Start             time.Time `json:"start"` // of the first point
	Requests          []uint64  `json:"requests"`
	RequestsPerSecond []float64 `json:"requests_per_second"`
	ErrorRatio        []float64 `json:"error_ratio"` // 5xx over requests; 0 when idle
	P50Millis         []float64 `json:"p50_ms"`
	P99Millis         []float64 `json:"p99_ms"`
}

// mountSeries adds /api/series. A ?name= query keeps one entry.
func mountSeries(mux *http.ServeMux, g *gateway.Gateway) {
	mux.HandleFunc("GET /api/series", func(w http.ResponseWriter, r *http.Request) {
		// Compact, unlike the other views: the dashboard polls it every
		// 5 s with 90 points per series, and indenting puts each number
		// on a line of its own, several times the bytes of the numbers.
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(buildSeries(g, r.URL.Query().Get("name")))
	})
}

func buildSeries(g *gateway.Gateway, only string) seriesBody {
	m := g.Metrics()
	body := seriesBody{Now: g.Now(), BucketSeconds: metrics.SeriesBucketWidth.Seconds(), Series: []seriesView{}}
	add := func(kind, name string, series func() ([]metrics.SeriesPoint, bool)) {
		if only != "" && only != name {
			return
		}
		pts, ok := series()
		if !ok || !anyRequest(pts) {
			return
		}
		body.Series = append(body.Series, newSeriesView(kind, name, pts, body.Now))
	}
	t := g.Table()
	named := func(name string) func() ([]metrics.SeriesPoint, bool) {
		return func() ([]metrics.SeriesPoint, bool) { return m.Series(name) }
	}
	for _, rt := range t.Routes() {
		add("route", rt.Config.Name, named(rt.Config.Name))
	}
	for _, ag := range t.Aggregates() {
		add("aggregate", ag.Config.Name, named(ag.Config.Name))
	}
	add("unmatched", "unmatched", m.UnmatchedSeries)
	return body
}

func newSeriesView(kind, name string, pts []metrics.SeriesPoint, now time.Time) seriesView {
	n := len(pts)
	v := seriesView{Kind: kind, Name: name, Start: pts[0].Start,
		Requests: make([]uint64, n), RequestsPerSecond: make([]float64, n), ErrorRatio: make([]float64, n),
		P50Millis: make([]float64, n), P99Millis: make([]float64, n)}
	width := metrics.SeriesBucketWidth.Seconds()
	for i, p := range pts {
		secs := width
		if i == n-1 {
			// The bucket in progress: a rate over the part that has
			// passed, at least a second so its first request is no spike.
			secs = math.Min(width, math.Max(1, now.Sub(p.Start).Seconds()))
		}
		v.Requests[i] = p.Requests
		v.RequestsPerSecond[i] = round3(float64(p.Requests) / secs)
		if p.Requests > 0 {
			v.ErrorRatio[i] = round3(float64(p.Errors) / float64(p.Requests))
		}
		v.P50Millis[i] = round3(float64(p.P50) / float64(time.Millisecond))
		v.P99Millis[i] = round3(float64(p.P99) / float64(time.Millisecond))
	}
	return v
}

// round3 keeps three decimals, which is all a chart can show, so the
// JSON stays small.
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func anyRequest(pts []metrics.SeriesPoint) bool {
	for _, p := range pts {
		if p.Requests > 0 {
			return true
		}
	}
	return false
}
