package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

const grpcBenchRoute = `route "grpc" {
  path_prefix = "/grpc.testing.TestService/"
  service     = "grpc"
  protocol    = "h2c"
}
`

// grpcResult is one gRPC load run against one target.
type grpcResult struct {
	name       string
	calls      int64
	errors     int64
	cps        float64
	p50, p99   time.Duration
	cpuPerCall time.Duration // the measured process's CPU time per call
	rssLoad    float64
}

// grpcBench measures unary calls/s and CPU per call through the gateway
// (-h2c, protocol h2c) against the same grpc-go server called directly,
// pinned like the proxy benchmark: the gateway on one core, the load
// generator and the upstream on the other.
func grpcBench(dir string, bin binaries, dur time.Duration, conc int, out string) {
	proxyCPU, loadCPU := cpus()
	peer := filepath.Join(dir, "grpcpeer")
	cmd := exec.Command("go", "build", "-o", peer, "./bench/grpcpeer")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	must(cmd.Run())

	client, consulAddr := startConsul(dir)
	port := freePort()
	up := start(dir, "grpc-upstream", loadCPU, []string{"GOMAXPROCS=1"}, peer, "-serve", fmt.Sprintf("127.0.0.1:%d", port))
	waitTCP(fmt.Sprintf("127.0.0.1:%d", port))
	register(client, "grpc", "grpc-1", port, false)
	putKV(client, "gateway/routes/grpc.hcl", grpcBenchRoute)
	gw, gwAddr, admin := startGateway(dir, bin.gateway, consulAddr, proxyCPU, "-h2c")
	waitRoutes(admin, 1, 1)

	results := []grpcResult{
		runGRPCLoad("direct", peer, fmt.Sprintf("127.0.0.1:%d", port), up.pid(), loadCPU, conc, dur),
		runGRPCLoad("gateway", peer, gwAddr, gw.pid(), loadCPU, conc, dur),
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# gRPC benchmark\n\n%s, %d CPUs, %s. Unary TestService/UnaryCall (64-byte payload) from a grpc-go client, %d calls in flight over 4 connections for %s after a 2 s warm-up. The gateway (-h2c, route protocol h2c, GOMAXPROCS=1) is pinned to CPU %s; the client and the grpc-go upstream (GOMAXPROCS=1) to CPU %s. CPU/call is the measured process's user+system time from /proc/PID/stat divided by the calls completed.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), conc, dur, proxyCPU, loadCPU)
	fmt.Fprintf(&b, "| target | measured process | calls/s | p50 | p99 | CPU/call | RSS load |\n|---|---|---:|---:|---:|---:|---:|\n")
	names := map[string]string{"direct": "upstream", "gateway": "gateway"}
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %.1f µs | %.1f MB |\n", r.name, names[r.name], r.cps, r.p50, r.p99, us(r.cpuPerCall), r.rssLoad)
	}
	direct, via := results[0], results[1]
	fmt.Fprintf(&b, "\nThrough the gateway: %.2f× the direct calls/s, p99 %.2f× direct; the gateway spends %.1f× the CPU per call the grpc-go upstream does.\n",
		via.cps/direct.cps, float64(via.p99)/float64(direct.p99), float64(via.cpuPerCall)/float64(direct.cpuPerCall))
	fmt.Fprintf(&b, "\nThe gateway terminates one HTTP/2 stream and opens another with the standard library's HTTP/2 server and client (no hand-rolled framer), where grpc-go answers with its own transport; each call costs both sides' frames (headers, data, trailers), flushed as they come so streams are never buffered. A CPU profile of the gateway in this set-up puts about a third of its time in write syscalls: the standard library's HTTP/2 client flushes a request's headers, its data and its end of stream separately, and the server the answer's headers and data, then its trailers.\n")
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "\nLoad average when the run ended: %s (figures from a shared machine are ratios within one run).\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
	fmt.Print(b.String())
	must(os.MkdirAll(filepath.Dir(out), 0o755))
	must(os.WriteFile(out, []byte(b.String()), 0o644))
}

// runGRPCLoad warms up, then runs the grpcpeer load pinned to cpu against
// target, measuring the CPU time of the process pid meanwhile.
func runGRPCLoad(name, peer, target string, pid int, cpu string, conc int, d time.Duration) grpcResult {
	load := func(d time.Duration) grpcResultJSON {
		out, err := exec.Command("taskset", "-c", cpu, peer, "-load", target, "-c", fmt.Sprint(conc), "-d", d.String()).Output()
		if err != nil {
			fail("grpc load %s: %v\n%s", name, err, out)
		}
		var r grpcResultJSON
		must(json.Unmarshal(out, &r))
		return r
	}
	load(2 * time.Second)
	before := cpuTicks(pid)
	start := time.Now()
	j := load(d)
	elapsed := time.Since(start)
	after := cpuTicks(pid)
	r := grpcResult{name: name, calls: j.Calls, errors: j.Errors, p50: j.P50, p99: j.P99, rssLoad: rssMB(pid)}
	if r.calls == 0 || r.errors > 0 {
		fail("grpc load %s: %d calls, %d errors", name, r.calls, r.errors)
	}
	r.cps = float64(r.calls) / min(elapsed, d).Seconds()
	r.cpuPerCall = time.Duration(float64(after-before) / clockTick * float64(time.Second) / float64(r.calls))
	return r
}

// grpcResultJSON is grpcpeer's output line.
type grpcResultJSON struct {
	Calls  int64         `json:"calls"`
	Errors int64         `json:"errors"`
	P50    time.Duration `json:"p50"`
	P99    time.Duration `json:"p99"`
}

// waitTCP waits until addr accepts connections.
func waitTCP(addr string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	fail("%s never accepted a connection", addr)
}
