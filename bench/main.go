// Command bench measures the gateway against nginx and a direct backend on
// loopback, in one run, so every figure is a ratio within the same machine
// state. Modes:
//
//	go run ./bench                   proxy load: gateway vs nginx vs direct
//	go run ./bench -mode freshness   KV change -> served, health change -> excluded
//	go run ./bench -mode scale       1,000 services x 3 instances, 1,000 routes (-services 10000 for 10,000)
//	go run ./bench -mode grpc        gRPC unary calls: gateway (h2c) vs direct
//	go run ./bench -mode tls         HTTPS and TLS handshakes: gateway vs nginx
//	go run ./bench -mode cluster     a cluster rate limit over three replicas, then two
//	go run ./bench -mode aggregate   one aggregate of three calls vs the three proxied requests
//	go run ./bench -mode observability  access log and tracing cost per request
//
// It needs consul (scripts/install-consul.sh), nginx, wrk and taskset;
// bench/run.sh installs them. Results go to stdout and bench/results/.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

func main() {
	mode := flag.String("mode", "proxy", "proxy, tls, observability, freshness, scale, grpc, cluster or aggregate")
	dur := flag.Duration("duration", 10*time.Second, "load duration per target")
	conns := flag.Int("c", 32, "wrk connections")
	out := flag.String("out", "bench/results/proxy.md", "markdown report (proxy mode; tls mode: bench/results/tls.md; grpc mode: bench/results/grpc.md; scale mode: bench/results/scale-N.md)")
	changes := flag.Int("changes", 100, "changes per freshness measurement")
	services := flag.Int("services", 1000, "services (and routes) in scale mode")
	perService := flag.Bool("per-service", false, "scale mode: one health watch per service (-health-watch-threshold -1) against a Consul with a raised connection limit, for comparison")
	settle := flag.Duration("settle", 70*time.Second, "steady-state and churn windows in scale mode: at least one long-poll cycle (60 s + jitter)")
	profile := flag.String("profile", "", "proxy mode: also take a CPU profile of the gateway (access log off) and write its top functions to bench/results/profile-NAME.txt")
	baseline := flag.String("baseline", "", "proxy mode: another gateway binary (say, built from main) measured in the same run, access log off")
	traefikBin := flag.String("traefik", "", "proxy mode: a Traefik binary measured in the same run (bench/build-traefik.sh builds one)")
	rounds := flag.Int("rounds", 3, "measurements of every target, in turn (proxy mode), or of each gateway (observability mode)")
	flag.Parse()

	dir, err := os.MkdirTemp("", "gateway-bench-")
	must(err)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; fail("interrupted") }()
	defer stopAll()

	bin := buildBinaries(dir)
	switch *mode {
	case "proxy":
		proxyBench(dir, bin, proxyOptions{dur: *dur, conns: *conns, out: *out, profile: *profile, baseline: *baseline, traefik: *traefikBin, rounds: *rounds})
	case "tls":
		if *out == "bench/results/proxy.md" {
			*out = "bench/results/tls.md"
		}
		tlsBench(dir, bin, *dur, *conns, *out)
	case "observability":
		if *out == "bench/results/latest.md" {
			*out = "bench/results/observability.md"
		}
		observabilityBench(dir, bin, *dur, *conns, *rounds, *out)
	case "freshness":
		freshnessBench(dir, bin, *changes)
	case "scale":
		if *out == "bench/results/proxy.md" {
			*out = fmt.Sprintf("bench/results/scale-%d.md", *services)
			if *perService {
				*out = fmt.Sprintf("bench/results/scale-%d-per-service.md", *services)
			}
		}
		scaleBench(dir, bin, *services, *settle, *changes, *out, *perService)
	case "grpc":
		if *out == "bench/results/proxy.md" {
			*out = "bench/results/grpc.md"
		}
		grpcBench(dir, bin, *dur, *conns, *out)
	case "cluster":
		if *out == "bench/results/proxy.md" {
			*out = "bench/results/cluster.md"
		}
		clusterBench(dir, bin, *dur, *conns, *out)
	case "aggregate":
		if *out == "bench/results/proxy.md" {
			*out = "bench/results/aggregate.md"
		}
		aggregateBench(dir, bin, *dur, *conns, *out)
	default:
		fail("unknown mode %q", *mode)
	}
	fmt.Fprintf(os.Stderr, "logs of this run: %s\n", dir)
}

type binaries struct{ gateway, upstream, floor string }

func buildBinaries(dir string) binaries {
	b := binaries{gateway: filepath.Join(dir, "gateway"), upstream: filepath.Join(dir, "upstream"), floor: filepath.Join(dir, "floor")}
	for out, pkg := range map[string]string{b.gateway: ".", b.upstream: "./bench/upstream", b.floor: "./bench/floor"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		must(cmd.Run())
	}
	return b
}

// cpus pins the proxy under test to one core and the load generator and
// upstreams to the other, the set-up our reference figures come from.
func cpus() (proxyCPU, loadCPU string) {
	if runtime.NumCPU() < 2 {
		return "0", "0"
	}
	return "0", "1"
}

// startUpstreams starts n bench upstreams on the load CPU and returns ports.
func startUpstreams(dir, bin string, n int) ([]int, []*proc) {
	_, loadCPU := cpus()
	var ports []int
	var procs []*proc
	for i := range n {
		port := freePort()
		procs = append(procs, start(dir, "upstream-"+strconv.Itoa(i+1), loadCPU, []string{"GOMAXPROCS=1"}, bin, "-listen", fmt.Sprintf("127.0.0.1:%d", port)))
		ports = append(ports, port)
	}
	for _, p := range ports {
		waitHTTP(fmt.Sprintf("http://127.0.0.1:%d/", p), 200)
	}
	return ports, procs
}

// startGateway runs the gateway binary against consul, pinned like nginx.
func startGateway(dir, bin, consulAddr string, cpu string, extra ...string) (*proc, string, string) {
	return startGatewayEnv(dir, "gateway", bin, consulAddr, cpu, nil, extra...)
}

// startGatewayEnv is startGateway logging to dir/name.log with env added
// to its environment.
func startGatewayEnv(dir, name, bin, consulAddr string, cpu string, env []string, extra ...string) (*proc, string, string) {
	listen := fmt.Sprintf("127.0.0.1:%d", freePort())
	admin := fmt.Sprintf("127.0.0.1:%d", freePort())
	args := append([]string{bin, "-listen", listen, "-admin", admin, "-consul", consulAddr, "-access-log=false", "-log-level", "warn"}, extra...)
	p := start(dir, name, cpu, append([]string{"GOMAXPROCS=1"}, env...), args...)
	waitHTTP("http://"+admin+"/health", 200)
	return p, listen, admin
}
