package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// aggregateDoc is the aggregate mode's document: a route to the bench
// service, and an aggregate making three calls to the same service with
// the same paths a client would ask the route for.
const aggregateDoc = `route "bench" {
  path_prefix = "/p/"
  service     = "bench"
}
aggregate "agg" {
  path = "/agg"
  call "a" {
    service = "bench"
    path    = "/p/a"
  }
  call "b" {
    service = "bench"
    path    = "/p/b"
  }
  call "c" {
    service = "bench"
    path    = "/p/c"
  }
}
`

// opResult is one closed-loop run of an operation: one aggregate request,
// or the three proxied requests one after another.
type opResult struct {
	name     string
	ops      int64
	opsPerS  float64
	p50, p99 time.Duration
	cpuPerOp time.Duration // the gateway's CPU time per operation
}

// aggregateBench compares, in one run against one gateway, an aggregate of
// three calls with the three proxied requests a client would otherwise
// make one after another (issue 16's goal: CPU ≤ 1.3×, p99 below).
func aggregateBench(dir string, bin binaries, dur time.Duration, conns int, out string) {
	proxyCPU, loadCPU := cpus()
	// This process is the load generator: on the load CPU, with wrk's
	// place in the other modes.
	must(exec.Command("taskset", "-a", "-p", "-c", loadCPU, strconv.Itoa(os.Getpid())).Run())
	client, consulAddr := startConsul(dir)
	ports, _ := startUpstreams(dir, bin.upstream, 3)
	for i, p := range ports {
		register(client, "bench", fmt.Sprintf("bench-%d", i+1), p, false)
	}
	putKV(client, "gateway/routes/bench.hcl", aggregateDoc)
	gw, gwAddr, admin := startGateway(dir, bin.gateway, consulAddr, proxyCPU)
	waitRoutes(admin, 1, 3)
	base := "http://" + gwAddr
	waitHTTP(base+"/agg", 200)

	aggOp := func(c *http.Client) error { return get(c, base+"/agg") }
	seqOp := func(c *http.Client) error {
		for _, p := range []string{"/p/a", "/p/b", "/p/c"} {
			if err := get(c, base+p); err != nil {
				return err
			}
		}
		return nil
	}
	// Interleaved, so a change in the machine's load during the run
	// weighs on both alike.
	var seqs, aggs []opResult
	for range 2 {
		seqs = append(seqs, runOps("three proxied requests, one after another", gw.pid(), conns, dur/2, seqOp))
		aggs = append(aggs, runOps("one aggregate of the three", gw.pid(), conns, dur/2, aggOp))
	}
	rs := []opResult{merge(seqs), merge(aggs)}
	rep := aggregateReport(rs, dur, conns)
	fmt.Print(rep)
	must(os.MkdirAll(filepath.Dir(out), 0o755))
	must(os.WriteFile(out, []byte(rep), 0o644))
}

// merge is the runs of one operation as one: operations and CPU summed,
// the worse of the latencies.
func merge(rs []opResult) opResult {
	m := opResult{name: rs[0].name}
	var cpu time.Duration
	for _, r := range rs {
		m.ops += r.ops
		m.opsPerS += r.opsPerS / float64(len(rs))
		m.p50, m.p99 = max(m.p50, r.p50), max(m.p99, r.p99)
		cpu += r.cpuPerOp * time.Duration(r.ops)
	}
	m.cpuPerOp = cpu / time.Duration(m.ops)
	return m
}

// get asks for url and reads the answer whole; anything but 200 fails.
func get(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return err
}

// runOps runs op in a closed loop on conns workers for d, after a 2 s
// warm-up, and measures its latency and the CPU time process pid spent.
func runOps(name string, pid, conns int, d time.Duration, op func(*http.Client) error) opResult {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	run := func(d time.Duration) ([]time.Duration, error) {
		var mu sync.Mutex
		var all []time.Duration
		var firstErr error
		end := time.Now().Add(d)
		var wg sync.WaitGroup
		for range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var lat []time.Duration
				for time.Now().Before(end) {
					t0 := time.Now()
					if err := op(c); err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						return
					}
					lat = append(lat, time.Since(t0))
				}
				mu.Lock()
				all = append(all, lat...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return all, firstErr
	}
	if _, err := run(2 * time.Second); err != nil {
		fail("%s warm-up: %v", name, err)
	}
	before := cpuTicks(pid)
	t0 := time.Now()
	lat, err := run(d)
	elapsed := time.Since(t0)
	after := cpuTicks(pid)
	if err != nil || len(lat) == 0 {
		fail("%s: %d operations, error %v", name, len(lat), err)
	}
	slices.Sort(lat)
	r := opResult{name: name, ops: int64(len(lat)), opsPerS: float64(len(lat)) / elapsed.Seconds(),
		p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
	r.cpuPerOp = time.Duration(float64(after-before) / clockTick * float64(time.Second) / float64(len(lat)))
	return r
}

func aggregateReport(rs []opResult, dur time.Duration, conns int) string {
	var b strings.Builder
	seq, agg := rs[0], rs[1]
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&b, "# Aggregate benchmark\n\n%s, %d CPUs, %s, load average %s. The gateway pinned to CPU 0 (GOMAXPROCS=1); the three upstreams and the Go load generator (%d connections, closed loop, %s per operation in two interleaved halves, each after a 2 s warm-up; latencies are the worse half's) on CPU 1. One operation is one aggregate request of three calls, or the same three requests proxied by the route, made one after another by the client. CPU/operation is the gateway's user+system time from /proc/PID/stat divided by the operations completed.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), strings.Join(strings.Fields(string(load))[:3], " "), conns, dur)
	fmt.Fprintf(&b, "| operation | ops/s | p50 | p99 | gateway CPU/operation |\n|---|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %.1f µs |\n", r.name, r.opsPerS, ms(r.p50), ms(r.p99), us(r.cpuPerOp))
	}
	cpuRatio := float64(agg.cpuPerOp) / float64(seq.cpuPerOp)
	p99Ratio := float64(agg.p99) / float64(seq.p99)
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(&b, "\n## Targets\n\n| target | measured | status |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| aggregate CPU ≤ 1.3× the three proxied requests | %.2f× (%.1f µs vs %.1f µs) | %s |\n", cpuRatio, us(agg.cpuPerOp), us(seq.cpuPerOp), mark(cpuRatio <= 1.3))
	fmt.Fprintf(&b, "| aggregate p99 below the three one after another | %.2f× (%s vs %s) | %s |\n", p99Ratio, ms(agg.p99), ms(seq.p99), mark(agg.p99 < seq.p99))
	return b.String()
}

// ms renders a latency in milliseconds, to the microsecond.
func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }
