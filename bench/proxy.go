package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

const benchRoute = `route "bench" {
  path_prefix = "/"
  service     = "bench"
}
`

// Reference figures from issue 15, measured side by side on our machines
// in this set-up (each proxy on one core, wrk -c32).
const references = `Reference (issue 15, one run, each proxy on one core, wrk -c32): CPU/request nginx 27.9–30.1 µs, Traefik v3.6 68.0–69.9 µs, gateway before this work 59.8–65.0 µs (access log off) and 70.7–73.5 µs (on). p99: nginx 3.4–3.8 ms, Traefik 7.3–9.0 ms. RSS: nginx 6 MB, Traefik 143 MB, gateway 20 MB.`

// proxyOptions are the proxy mode's flags.
type proxyOptions struct {
	dur      time.Duration
	conns    int
	out      string
	profile  string // non-empty: take a CPU profile named so (bench/results/profile-NAME.txt)
	baseline string // non-empty: a gateway binary to measure too, for a before/after in one run
	traefik  string // non-empty: a Traefik binary to measure too (bench/build-traefik.sh builds one)
}

func proxyBench(dir string, bin binaries, o proxyOptions) {
	proxyCPU, loadCPU := cpus()
	client, consulAddr := startConsul(dir)
	ports, ups := startUpstreams(dir, bin.upstream, 3)
	for i, p := range ports {
		register(client, "bench", fmt.Sprintf("bench-%d", i+1), p, false)
	}
	putKV(client, "gateway/routes/bench.hcl", benchRoute)
	ngx, ngxAddr := startNginx(dir, ports, proxyCPU)

	results := []result{
		runWrk("direct (one upstream)", fmt.Sprintf("http://127.0.0.1:%d/", ports[0]), ups[0].pid(), loadCPU, o.conns, o.dur),
		runWrk(rowNginx, "http://"+ngxAddr+"/api/bench", ngx.pid(), loadCPU, o.conns, o.dur),
	}
	results[0].measuredProc, results[1].measuredProc = "upstream", "nginx"
	if o.traefik != "" {
		tr, trAddr := startTraefik(dir, o.traefik, ports, proxyCPU)
		r := runWrk(rowTraefik, "http://"+trAddr+"/api/bench", tr.pid(), loadCPU, o.conns, o.dur)
		r.measuredProc = "traefik"
		results = append(results, r)
		stop(tr)
	}
	// The floor: the least a proxy on net/http's server does, over each
	// upstream client (see bench/floor).
	upstreams := make([]string, len(ports))
	for i, p := range ports {
		upstreams[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	for _, client := range []string{"nethttp", "h1"} {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort())
		fl := start(dir, "floor-"+client, proxyCPU, []string{"GOMAXPROCS=1"}, bin.floor, "-listen", addr, "-client", client, "-upstreams", strings.Join(upstreams, ","))
		waitHTTP("http://"+addr+"/api/bench", 200)
		r := runWrk(floorName+client, "http://"+addr+"/api/bench", fl.pid(), loadCPU, o.conns, o.dur)
		r.measuredProc = "floor"
		results = append(results, r)
		stop(fl)
	}

	if o.baseline != "" {
		gw, gwAddr, admin := startGatewayEnv(dir, "gateway-baseline", o.baseline, consulAddr, proxyCPU, nil)
		waitRoutes(admin, 1, 3)
		r := runWrk(rowBaseline, "http://"+gwAddr+"/api/bench", gw.pid(), loadCPU, o.conns, o.dur)
		r.measuredProc = "baseline"
		results = append(results, r)
		stop(gw)
	}

	// The gateway runs twice, access log off then on, one process at a
	// time so each has the core to itself; the access log goes to a file
	// as it would in production.
	gwBin := bin.gateway
	var env []string
	prof := ""
	if o.profile != "" {
		gwBin = buildProfiling(dir)
		prof = filepath.Join(dir, "gateway.cpu.pprof")
		env = []string{"GATEWAY_CPUPROFILE=" + prof}
	}
	gw, gwAddr, admin := startGatewayEnv(dir, "gateway", gwBin, consulAddr, proxyCPU, env)
	waitRoutes(admin, 1, 3)
	begin, end := func() { sendSignal(gw, syscall.SIGUSR1) }, func() { sendSignal(gw, syscall.SIGUSR2) }
	if prof == "" {
		begin, end = nil, nil
	}
	r := runWrkAround(rowOff, "http://"+gwAddr+"/api/bench", gw.pid(), loadCPU, o.conns, o.dur, begin, end)
	r.measuredProc = "gateway"
	results = append(results, r)
	stop(gw)

	gw, gwAddr, admin = startGatewayEnv(dir, "gateway-accesslog", bin.gateway, consulAddr, proxyCPU, nil, "-access-log=true")
	waitRoutes(admin, 1, 3)
	r = runWrk(rowOn, "http://"+gwAddr+"/api/bench", gw.pid(), loadCPU, o.conns, o.dur)
	r.measuredProc = "gateway"
	results = append(results, r)
	stop(gw)

	rep := report(results, o.dur, o.conns)
	fmt.Print(rep)
	must(os.MkdirAll(filepath.Dir(o.out), 0o755))
	must(os.WriteFile(o.out, []byte(rep), 0o644))
	if prof != "" {
		writeProfileTop(prof, gwBin, filepath.Join(filepath.Dir(o.out), "profile-"+o.profile+".txt"), rep)
	}
}

// buildProfiling builds the gateway with the benchprofile tag (see
// main_benchprofile.go): signals start and stop a CPU profile.
func buildProfiling(dir string) string {
	out := filepath.Join(dir, "gateway-profiling")
	cmd := exec.Command("go", "build", "-tags", "benchprofile", "-o", out, ".")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	must(cmd.Run())
	return out
}

func sendSignal(p *proc, s syscall.Signal) { must(p.cmd.Process.Signal(s)) }

// writeProfileTop writes the profile's 25 heaviest functions (flat and
// cumulative) to out, headed by the run's figures.
func writeProfileTop(prof, bin, out, rep string) {
	// The profile is flushed when the signal handler stops it; wait for
	// the file to be complete.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, err := os.Stat(prof); err == nil && st.Size() > 0 {
			if exec.Command("go", "tool", "pprof", "-raw", prof).Run() == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			fail("no complete CPU profile at %s", prof)
		}
		time.Sleep(100 * time.Millisecond)
	}
	flat, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=25", bin, prof).CombinedOutput()
	must(err)
	cum, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=25", bin, prof).CombinedOutput()
	must(err)
	var b strings.Builder
	fmt.Fprintf(&b, "CPU profile of the gateway (access log off, GOMAXPROCS=1) during the measured load of this run:\n\n%s\n== top 25 by flat time ==\n%s\n== top 25 by cumulative time ==\n%s", rep, flat, cum)
	must(os.WriteFile(out, []byte(b.String()), 0o644))
}

// stop ends one benchmark process, so the next target has the core.
func stop(p *proc) {
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	_ = p.cmd.Wait()
	for i, q := range started {
		if q == p {
			started = append(started[:i], started[i+1:]...)
			break
		}
	}
}

// startNginx runs nginx as one pinned process (no master) with keep-alive
// to the same three upstreams: the reference a Go proxy is measured against.
func startNginx(dir string, ports []int, cpu string) (*proc, string) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	path := writeNginxConf(dir, "nginx", ports, addr+";")
	p := start(dir, "nginx", cpu, nil, "nginx", "-c", path)
	waitHTTP("http://"+addr+"/", 200)
	return p, addr
}

// startTraefik runs Traefik like nginx: one process pinned to cpu
// (GOMAXPROCS=1), the file provider routing every path to the upstreams
// round robin over kept-alive connections, access log and metrics off.
func startTraefik(dir, bin string, ports []int, cpu string) (*proc, string) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	var servers strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&servers, "          - url: \"http://127.0.0.1:%d\"\n", p)
	}
	dynamic := filepath.Join(dir, "traefik-dynamic.yml")
	must(os.WriteFile(dynamic, []byte(fmt.Sprintf(`http:
  routers:
    bench:
      rule: "PathPrefix(`+"`/`"+`)"
      service: bench
      entryPoints: [web]
  services:
    bench:
      loadBalancer:
        servers:
%s`, servers.String())), 0o644))
	p := start(dir, "traefik", cpu, []string{"GOMAXPROCS=1"}, bin,
		"--entryPoints.web.address="+addr, "--providers.file.filename="+dynamic,
		"--log.level=ERROR", "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
		"--serversTransport.maxIdleConnsPerHost=256")
	waitHTTP("http://"+addr+"/api/bench", 200)
	return p, addr
}

// writeNginxConf writes dir/name.conf: one nginx worker proxying to ports
// over keep-alive connections, listening as listen says (an address and
// its terminating ';', plus any ssl directives), and returns its path. The
// plain and TLS benchmarks run the same proxy so only TLS differs.
func writeNginxConf(dir, name string, ports []int, listen string) string {
	var servers strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&servers, "    server 127.0.0.1:%d;\n", p)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/%[4]s.pid;
error_log %[1]s/%[4]s-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s;
  proxy_temp_path %[1]s;
  fastcgi_temp_path %[1]s;
  uwsgi_temp_path %[1]s;
  scgi_temp_path %[1]s;
  upstream bench {
%[2]s    keepalive 64;
  }
  server {
    listen %[3]s
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, servers.String(), listen, name)
	path := filepath.Join(dir, name+".conf")
	must(os.WriteFile(path, []byte(conf), 0o644))
	return path
}

// floorName starts the names of the floor rows; the client follows.
const floorName = "floor: net/http server, client "

// Row names report finds its figures by.
const (
	rowNginx    = "nginx"
	rowOff      = "gateway, access log off"
	rowOn       = "gateway, access log on"
	rowBaseline = "baseline gateway, access log off"
	rowTraefik  = "Traefik"
)

// row is the result named name; ok false when the run had none.
func row(rs []result, name string) (result, bool) {
	for _, r := range rs {
		if r.name == name {
			return r, true
		}
	}
	return result{}, false
}

func report(rs []result, dur time.Duration, conns int) string {
	var b strings.Builder
	ngx, _ := row(rs, rowNginx)
	off, _ := row(rs, rowOff)
	on, _ := row(rs, rowOn)
	fmt.Fprintf(&b, "# Proxy benchmark\n\n%s, %d CPUs, %s, load average %s before the run. Each proxy pinned to CPU 0 (Go with GOMAXPROCS=1), wrk and the three upstreams on CPU 1; one target at a time; `wrk -t1 -c%d -d%s`, after a 2 s warm-up. CPU/request is the measured process's user+system time from /proc/PID/stat divided by the requests wrk completed.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), loadAvg(), conns, dur)
	fmt.Fprintf(&b, "| target | measured process | req/s | p50 | p99 | CPU/request | RSS idle | RSS load | CPU vs nginx | p99 vs nginx |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %.1f µs | %.1f MB | %.1f MB | %.2f× | %.2f× |\n",
			r.name, r.measuredProc, r.rps, r.p50, r.p99, us(r.cpuPerReq), r.rssIdle, r.rssLoad,
			float64(r.cpuPerReq)/float64(ngx.cpuPerReq), float64(r.p99)/float64(ngx.p99))
	}
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	cpuRatio := float64(off.cpuPerReq) / float64(ngx.cpuPerReq)
	logCost := float64(on.cpuPerReq)/float64(off.cpuPerReq) - 1
	p99Ratio := float64(off.p99) / float64(ngx.p99)
	rss := max(off.rssLoad, on.rssLoad)
	fmt.Fprintf(&b, "\n## Targets (issue 15)\n\n| target | measured | status |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| CPU/request ≤ 1.6× nginx, access log off | %.2f× (%.1f vs %.1f µs) | %s |\n", cpuRatio, us(off.cpuPerReq), us(ngx.cpuPerReq), mark(cpuRatio <= 1.6))
	fmt.Fprintf(&b, "| access log adds ≤ 10 %% | %+.1f %% | %s |\n", 100*logCost, mark(logCost <= 0.10))
	fmt.Fprintf(&b, "| p99 at %d connections ≤ 1.5× nginx | %.2f× (%s vs %s) | %s |\n", conns, p99Ratio, off.p99, ngx.p99, mark(p99Ratio <= 1.5))
	fmt.Fprintf(&b, "| RSS under load ≤ 30 MB | %.1f MB | %s |\n", rss, mark(rss <= 30))
	if fl, ok := row(rs, floorName+"h1"); ok {
		fmt.Fprintf(&b, "\nThe floor (bench/floor: net/http's server and the h1 client, nothing else) costs %.2f× nginx here; the gateway costs %.2f× the floor (%.1f vs %.1f µs), the price of its routing, policies, header hygiene and observability.\n",
			float64(fl.cpuPerReq)/float64(ngx.cpuPerReq), float64(off.cpuPerReq)/float64(fl.cpuPerReq), us(off.cpuPerReq), us(fl.cpuPerReq))
	}
	if tr, ok := row(rs, rowTraefik); ok {
		fmt.Fprintf(&b, "\nAgainst Traefik in this run (its access log off too): CPU/request %.2f× (%.1f vs %.1f µs), p99 %.2f× (%s vs %s), RSS under load %.1f vs %.1f MB.\n",
			float64(off.cpuPerReq)/float64(tr.cpuPerReq), us(off.cpuPerReq), us(tr.cpuPerReq),
			float64(off.p99)/float64(tr.p99), off.p99, tr.p99, off.rssLoad, tr.rssLoad)
	}
	if base, ok := row(rs, rowBaseline); ok {
		fmt.Fprintf(&b, "\nAgainst the baseline gateway in this run (access log off): CPU/request %.2f× (%.1f vs %.1f µs), p99 %.2f× (%s vs %s), req/s %.2f×.\n",
			float64(off.cpuPerReq)/float64(base.cpuPerReq), us(off.cpuPerReq), us(base.cpuPerReq),
			float64(off.p99)/float64(base.p99), off.p99, base.p99, off.rps/base.rps)
	}
	fmt.Fprintf(&b, "\n%s\n", references)
	return b.String()
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
