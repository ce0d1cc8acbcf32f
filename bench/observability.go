package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// obsVariant is one gateway configuration of the observability run.
type obsVariant struct {
	name  string
	flags []string
	env   []string
}

// observabilityBench measures what the access log and tracing cost per
// proxied request: gateways identical but for those settings, on the
// proxy bench's set-up (pinned, same upstreams, same wrk), measured in
// turn, rounds times, so each ratio compares runs minutes apart at most.
// Traces go to an OTLP/HTTP sink in this process that reads and discards
// them, so the gateway pays the whole export (protobuf encoding, HTTP).
func observabilityBench(dir string, bin binaries, dur time.Duration, conns, rounds int, out string) {
	proxyCPU, loadCPU := cpus()
	client, consulAddr := startConsul(dir)
	ports, _ := startUpstreams(dir, bin.upstream, 3)
	for i, p := range ports {
		register(client, "bench", fmt.Sprintf("bench-%d", i+1), p, false)
	}
	putKV(client, "gateway/routes/bench.hcl", benchRoute)
	sink, spans := startOTLPSink()
	otlp := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + sink}
	variants := []obsVariant{
		{name: "access log off, tracing off", flags: []string{"-access-log=off"}},
		{name: "access log on (JSON to a file)", flags: []string{"-access-log", filepath.Join(dir, "access.log")}},
		{name: "tracing 100 %", flags: []string{"-access-log=off", "-tracing", "-trace-sample-ratio", "1"}, env: otlp},
		{name: "tracing 1 %", flags: []string{"-access-log=off", "-tracing", "-trace-sample-ratio", "0.01"}, env: otlp},
	}
	type gw struct {
		p    *proc
		addr string
	}
	gws := make([]gw, len(variants))
	for i, v := range variants {
		listen := fmt.Sprintf("127.0.0.1:%d", freePort())
		admin := fmt.Sprintf("127.0.0.1:%d", freePort())
		args := append([]string{bin.gateway, "-listen", listen, "-admin", admin, "-consul", consulAddr, "-log-level", "warn"}, v.flags...)
		p := start(dir, fmt.Sprintf("gateway-%d", i), proxyCPU, append([]string{"GOMAXPROCS=1"}, v.env...), args...)
		waitHTTP("http://"+admin+"/health", 200)
		waitRoutes(admin, 1, 3)
		gws[i] = gw{p, listen}
	}
	res := make([][]result, len(variants))
	for range rounds {
		for i, v := range variants {
			res[i] = append(res[i], runWrk(v.name, "http://"+gws[i].addr+"/api/bench", gws[i].p.pid(), loadCPU, conns, dur))
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	var b strings.Builder
	fmt.Fprintf(&b, "# Access log and tracing overhead\n\n%s, %d CPUs, %s, load average %s. The proxy benchmark's set-up (`./bench/run.sh -mode observability`): each gateway pinned to CPU 0 with GOMAXPROCS=1, wrk and three upstreams on CPU 1, `wrk -t1 -c%d -d%s` after a 2 s warm-up; the four gateways differ only in the settings named, and are measured in turn, %d rounds. CPU/request is the gateway process's user+system time over the requests wrk completed; traces are exported over OTLP/HTTP to a sink that discards them (%d bytes of OTLP exports received).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), strings.Join(strings.Fields(string(load))[:3], " "),
		conns, dur, rounds, spans.Load())
	fmt.Fprintf(&b, "| gateway | CPU/request per round | median | vs off (median) | mean | vs off (mean) | req/s | p99 (worst round) |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	mean := func(rs []result) float64 {
		s := 0.0
		for _, r := range rs {
			s += us(r.cpuPerReq)
		}
		return s / float64(len(rs))
	}
	// The median resists the rounds a busy neighbour inflated.
	median := func(rs []result) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = us(r.cpuPerReq)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	off, offMed := mean(res[0]), median(res[0])
	for i, v := range variants {
		var per []string
		rps := 0.0
		var p99 time.Duration
		for _, r := range res[i] {
			per = append(per, fmt.Sprintf("%.1f", us(r.cpuPerReq)))
			rps += r.rps / float64(len(res[i]))
			p99 = max(p99, r.p99)
		}
		m, md := mean(res[i]), median(res[i])
		fmt.Fprintf(&b, "| %s | %s µs | %.1f µs | %.2f× (%+.1f µs) | %.1f µs | %.2f× | %.0f | %s |\n", v.name, strings.Join(per, ", "), md, md/offMed, md-offMed, m, m/off, rps, p99)
	}
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	logRatio := median(res[1]) / offMed
	fmt.Fprintf(&b, "\n| target | measured (medians) | status |\n|---|---|---|\n| access log adds ≤ 10 %% CPU per request | %+.1f %% | %s |\n", (logRatio-1)*100, mark(logRatio <= 1.10))
	fmt.Print(b.String())
	must(os.MkdirAll(filepath.Dir(out), 0o755))
	must(os.WriteFile(out, []byte(b.String()), 0o644))
}

// startOTLPSink serves POST /v1/traces on loopback, reading and dropping
// each export and answering an empty ExportTraceServiceResponse (an
// empty protobuf message is zero bytes). It counts the export bodies'
// bytes, not spans: decoding them here would only add noise.
func startOTLPSink() (string, *atomic.Int64) {
	var n atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := io.Copy(io.Discard, r.Body)
		n.Add(c)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), &n
}
